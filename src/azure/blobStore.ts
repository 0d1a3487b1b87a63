import type { Readable } from "node:stream";
import type { TokenCredential } from "@azure/core-auth";
import { BlobServiceClient, type ContainerClient, RestError } from "@azure/storage-blob";
import type { FeatureRow } from "../types.ts";
import type { InputStorageSettings, OutputStorageSettings } from "./settings.ts";

export interface BatchStoreOptions {
  /** Where batch files go: a connection string, or an account URL used with the credential. */
  readonly input: InputStorageSettings;
  /**
   * The workspace's default datastore, where jobs write predictions.csv: may be another account and
   * container. Without a connection string or account URL of its own, the input's account is used.
   */
  readonly output: OutputStorageSettings;
  /** Used for account URLs (Entra ID); connection strings carry their own key or SAS. */
  readonly credential: TokenCredential;
}

/** Per-call options, as the Azure SDK has them. */
export interface BlobCallOptions {
  readonly abortSignal?: AbortSignal;
}

/** How to reach one blob container. */
interface BlobLocation {
  readonly connectionString?: string;
  readonly accountUrl?: string;
  readonly container: string;
}

export interface UploadedFolder {
  /** https URI of the batch's own folder: the job's input (the folder holds exactly this batch's files). */
  readonly folderUri: string;
  /** Blob path of each file, in the order given. */
  readonly blobPaths: readonly string[];
}

export interface BatchStore {
  /** Writes a batch's files into a folder of its own, <prefix>/<batchId>/. */
  uploadBatch(
    batchId: string,
    files: ReadonlyArray<{ readonly fileName: string; readonly body: Buffer }>,
    options?: BlobCallOptions,
  ): Promise<UploadedFolder>;
  /**
   * Writes a batch's manifest beside (not inside) its input folder, <prefix>/_manifests/<batchId>.json:
   * whoever resumes the batch after a restart or rebalance maps its rows back to events with it.
   */
  writeManifest(batchId: string, body: Buffer, options?: BlobCallOptions): Promise<string>;
  /** A manifest's content, or undefined when it is gone. */
  readManifest(path: string, options?: BlobCallOptions): Promise<Buffer | undefined>;
  /** Reads a batch file back (for dead letters: the features live in the blob, not in memory). */
  readBatchRows(blobPath: string, options?: BlobCallOptions): Promise<FeatureRow[]>;
  /** Where a job's predictions.csv is, by the output path template. */
  outputPath(ids: { jobId: string; batchId: string }): string;
  /** The stream of predictions.csv, or undefined if the job wrote none. */
  openPredictions(path: string, options?: BlobCallOptions): Promise<Readable | undefined>;
  /** Fails with a message naming each container that cannot be reached. */
  checkAccess(options?: BlobCallOptions): Promise<void>;
}

function accountOf(location: BlobLocation): Omit<BlobLocation, "container"> {
  return location.connectionString !== undefined
    ? { connectionString: location.connectionString }
    : location.accountUrl !== undefined
      ? { accountUrl: location.accountUrl }
      : {};
}

function containerClient(location: BlobLocation, credential: TokenCredential): ContainerClient {
  const service = location.connectionString
    ? BlobServiceClient.fromConnectionString(location.connectionString)
    : new BlobServiceClient(location.accountUrl as string, credential);
  return service.getContainerClient(location.container);
}

/** A container's URL without its query: with a SAS connection string the SDK's URL carries the signature. */
function plainUrl(client: ContainerClient): string {
  return client.url.split("?")[0] as string;
}

export function fillPathTemplate(template: string, ids: { jobId: string; batchId: string }): string {
  return template.replaceAll("{jobId}", ids.jobId).replaceAll("{batchId}", ids.batchId);
}

/** Batch files in, predictions out: the two blob containers the connector works with. */
export function createBatchStore(options: BatchStoreOptions): BatchStore {
  const input = containerClient(options.input, options.credential);
  const outputHasOwnAccount =
    options.output.connectionString !== undefined || options.output.accountUrl !== undefined;
  const output = containerClient(
    outputHasOwnAccount
      ? options.output
      : { ...accountOf(options.input), container: options.output.container },
    options.credential,
  );
  const prefix = options.input.prefix.replace(/^\/+|\/+$/g, "");

  return {
    async uploadBatch(batchId, files, callOptions = {}) {
      const { abortSignal } = callOptions;
      // One folder per batch, so the job's input folder holds this batch and nothing else.
      const folder = prefix ? `${prefix}/${batchId}` : batchId;
      const blobPaths = await Promise.all(
        files.map(async ({ fileName, body }) => {
          const blobPath = `${folder}/${fileName}`;
          await input.getBlockBlobClient(blobPath).uploadData(body, {
            blobHTTPHeaders: { blobContentType: "application/json" },
            metadata: { batchid: batchId },
            ...(abortSignal ? { abortSignal } : {}),
          });
          return blobPath;
        }),
      );
      return { folderUri: `${plainUrl(input)}/${folder}`, blobPaths };
    },

    async writeManifest(batchId, body, callOptions = {}) {
      const path = `${prefix ? `${prefix}/` : ""}_manifests/${batchId}.json`;
      await input.getBlockBlobClient(path).uploadData(body, {
        blobHTTPHeaders: { blobContentType: "application/json" },
        metadata: { batchid: batchId },
        ...(callOptions.abortSignal ? { abortSignal: callOptions.abortSignal } : {}),
      });
      return path;
    },

    async readManifest(path, callOptions = {}) {
      try {
        return await input
          .getBlockBlobClient(path)
          .downloadToBuffer(
            0,
            undefined,
            callOptions.abortSignal ? { abortSignal: callOptions.abortSignal } : {},
          );
      } catch (error) {
        if (error instanceof RestError && error.statusCode === 404) return undefined;
        throw error;
      }
    },

    async readBatchRows(blobPath, callOptions = {}) {
      const { abortSignal } = callOptions;
      try {
        const body = await input
          .getBlockBlobClient(blobPath)
          .downloadToBuffer(0, undefined, abortSignal ? { abortSignal } : {});
        return JSON.parse(body.toString("utf8")) as FeatureRow[];
      } catch (error) {
        // Deleted (a lifecycle rule) or never readable again: the dead letters go out without their rows
        // rather than waiting forever for a file that will not come back.
        if (error instanceof RestError && error.statusCode === 404) return [];
        if (error instanceof SyntaxError) return [];
        throw error;
      }
    },

    outputPath: (ids) => fillPathTemplate(options.output.pathTemplate, ids),

    async openPredictions(path, callOptions = {}) {
      const { abortSignal } = callOptions;
      try {
        const download = await output
          .getBlobClient(path)
          .download(0, undefined, abortSignal ? { abortSignal } : {});
        return download.readableStreamBody as Readable | undefined;
      } catch (error) {
        if (error instanceof RestError && error.statusCode === 404) return undefined;
        throw error;
      }
    },

    async checkAccess(callOptions = {}) {
      const { abortSignal } = callOptions;
      const problems: string[] = [];
      for (const [role, client] of [
        ["input", input],
        ["output", output],
      ] as const) {
        try {
          if (!(await client.exists(abortSignal ? { abortSignal } : {}))) {
            problems.push(
              `${role} container "${client.containerName}" does not exist at ${plainUrl(client)}`,
            );
          }
        } catch (error) {
          problems.push(
            `${role} container "${client.containerName}" cannot be reached: ${(error as Error).message}`,
          );
        }
      }
      if (problems.length > 0) throw new Error(problems.join("; "));
    },
  };
}
