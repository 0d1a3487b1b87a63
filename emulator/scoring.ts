/**
 * Finishes a job the way the batch endpoint would: read the input from blob storage, predict every valid row, write
 * one predictions.csv. Every failure becomes the job's outcome (Failed + error), never an exception: a job that cannot
 * be scored is a failed job, not a broken emulator.
 */
import { type BlobServiceClient, RestError } from "@azure/storage-blob";
import { DEFAULT_JOB_ERROR } from "./faults.ts";
import { predict } from "./formula.ts";
import { InputError, readInput } from "./input.ts";
import type { JobOutcome, JobRecord } from "./jobs.ts";
import { renderPredictions } from "./output.ts";
import { parseBlobUri } from "./uris.ts";

export interface Scorer {
  finish(job: JobRecord): Promise<JobOutcome>;
}

export function createScorer(deps: {
  readonly service: BlobServiceClient;
  /** Container of the default datastore: outputs go there, datastore input URIs resolve there. */
  readonly outputContainer: string;
  /** Other datastores, by name (options.datastores). */
  readonly datastores?: Readonly<Record<string, string>>;
}): Scorer {
  const { service, outputContainer } = deps;
  const uriContext = {
    accountName: service.accountName,
    datastoreContainer: outputContainer,
    ...(deps.datastores ? { datastores: deps.datastores } : {}),
  };

  return {
    async finish(job) {
      if (job.faults.outcome === "fail") {
        return { status: "Failed", error: job.faults.error ?? DEFAULT_JOB_ERROR };
      }
      let input: Awaited<ReturnType<typeof readInput>>;
      try {
        input = await readInput(service, parseBlobUri(job.inputUri, uriContext), job.inputType);
      } catch (error) {
        if (error instanceof InputError) return failed("UserError", error.message);
        return failed("UserError", `cannot read input ${job.inputUri}: ${describe(error)}`);
      }
      const scored = input.rows.map((row) => ({ ...row, prediction: predict(row.features) }));
      const { text, rowsWritten } = renderPredictions(scored, job.faults);
      try {
        // The real service will not overwrite an existing output (it fails or silently keeps the old file);
        // failing makes a client that reuses output paths see its mistake.
        await service
          .getContainerClient(job.outputContainer)
          .getBlockBlobClient(job.outputBlobPath)
          .upload(text, Buffer.byteLength(text), {
            conditions: { ifNoneMatch: "*" },
            blobHTTPHeaders: { blobContentType: "text/csv" },
          });
      } catch (error) {
        if (error instanceof RestError && (error.statusCode === 409 || error.statusCode === 412)) {
          return failed("UserError", `output ${job.outputContainer}/${job.outputBlobPath} already exists`);
        }
        return failed(
          "SystemError",
          `cannot write ${job.outputContainer}/${job.outputBlobPath}: ${describe(error)}`,
        );
      }
      return {
        status: "Completed",
        rowsRead: input.rows.length,
        rowsSkipped: input.rowsSkipped,
        rowsWritten,
      };
    },
  };
}

function failed(code: string, message: string): JobOutcome {
  return { status: "Failed", error: { code, message } };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
