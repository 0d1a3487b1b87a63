/**
 * The batch store against the stack's Azurite: where batch files land and how they look, reading them back,
 * predictions.csv lookups, the output path template and the access check's messages.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { TokenCredential } from "@azure/core-auth";
import { AccountSASPermissions, BlobServiceClient } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type BatchStore, createBatchStore, fillPathTemplate } from "../../src/azure/blobStore.ts";
import { serializeBatch } from "../../src/batcher/index.ts";
import type { FeatureRow } from "../../src/types.ts";

const stack = inject("stack");
const PATH_TEMPLATE = "runs/{batchId}/{jobId}/predictions.csv";

/** Connection strings carry their own key: the store must never ask this credential for a token. */
const unusedCredential: TokenCredential = {
  getToken: () => Promise.reject(new Error("no token expected with a connection string")),
};

const service = BlobServiceClient.fromConnectionString(stack.blobConnectionString);
const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
const inputName = `bs-in-${suffix}`;
const outputName = `bs-out-${suffix}`;
const input = service.getContainerClient(inputName);
const output = service.getContainerClient(outputName);

function store(options: { prefix?: string; inputContainer?: string; outputContainer?: string } = {}) {
  return createBatchStore({
    input: {
      connectionString: stack.blobConnectionString,
      container: options.inputContainer ?? inputName,
      prefix: options.prefix ?? "batches",
    },
    output: {
      connectionString: stack.blobConnectionString,
      container: options.outputContainer ?? outputName,
      pathTemplate: PATH_TEMPLATE,
    },
    credential: unusedCredential,
  });
}

/** A batch of one file, as the connector uploads it. */
function sealedBatch(rowCount = 3) {
  const batchId = `b-${randomUUID()}`;
  const rows: FeatureRow[] = Array.from({ length: rowCount }, (_, i) => ({
    store_id: `TX_${i}`,
    features: [i, 0.5, -1.25, 1e-7],
  }));
  const batch = { batchId, fileName: `${batchId}-0.json` };
  const body = serializeBatch(rows);
  return { batch, rows, body, files: [{ fileName: batch.fileName, body }] };
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

beforeAll(async () => {
  await input.create();
  await output.create();
});
afterAll(async () => {
  await input.deleteIfExists();
  await output.deleteIfExists();
});

describe("batch store (Azurite)", () => {
  it("uploads the serialized batch to <prefix>/<batchId>/<fileName> as JSON and returns its folder", async () => {
    const s: BatchStore = store({ prefix: "/batches/v1/" }); // slashes around the prefix do not matter
    const { batch, body, files } = sealedBatch(4);
    const uploaded = await s.uploadBatch(batch.batchId, files);

    const blobPath = `batches/v1/${batch.batchId}/${batch.fileName}`;
    expect(uploaded).toEqual({
      blobPaths: [blobPath],
      folderUri: `${input.url}/batches/v1/${batch.batchId}`,
    });
    const blob = input.getBlobClient(blobPath);
    const properties = await blob.getProperties();
    expect(properties.contentType).toBe("application/json");
    expect(properties.contentLength).toBe(body.length);
    expect(properties.metadata).toEqual({ batchid: batch.batchId });
    expect((await blob.downloadToBuffer()).equals(body)).toBe(true);
    // The folder holds exactly this batch's file.
    const listed: string[] = [];
    for await (const item of input.listBlobsFlat({ prefix: `batches/v1/${batch.batchId}/` }))
      listed.push(item.name);
    expect(listed).toEqual([blobPath]);
  });

  it("without a prefix, the batch folder is at the container's root", async () => {
    const s = store({ prefix: "" });
    const { batch, files } = sealedBatch(1);
    const uploaded = await s.uploadBatch(batch.batchId, files);
    expect(uploaded).toEqual({
      blobPaths: [`${batch.batchId}/${batch.fileName}`],
      folderUri: `${input.url}/${batch.batchId}`,
    });
    expect(await input.getBlobClient(uploaded.blobPaths[0] as string).exists()).toBe(true);
  });

  it("puts every file of a batch in the batch's one folder", async () => {
    const s = store({ prefix: "multi" });
    const first = serializeBatch([{ store_id: "CA_1", features: [1] }]);
    const second = serializeBatch([{ store_id: "CA_1", features: [2] }]);
    const uploaded = await s.uploadBatch("b-two", [
      { fileName: "b-two-0.json", body: first },
      { fileName: "b-two-1.json", body: second },
    ]);
    expect(uploaded).toEqual({
      blobPaths: ["multi/b-two/b-two-0.json", "multi/b-two/b-two-1.json"],
      folderUri: `${input.url}/multi/b-two`,
    });
    expect(await s.readBatchRows("multi/b-two/b-two-1.json")).toEqual([{ store_id: "CA_1", features: [2] }]);
  });

  it("reads a batch's rows back from its blob", async () => {
    const s = store();
    const { batch, rows, files } = sealedBatch(5);
    const uploaded = await s.uploadBatch(batch.batchId, files);
    expect(await s.readBatchRows(uploaded.blobPaths[0] as string)).toEqual(rows);
  });

  it("openPredictions gives undefined for a missing blob and the content otherwise", async () => {
    const s = store();
    const path = s.outputPath({ jobId: "job-1", batchId: "batch-1" });
    expect(await s.openPredictions(path)).toBeUndefined();

    const csv = "b.json CA_1 2.33394885\nb.json TX_1 0.97295016\n";
    await output.getBlockBlobClient(path).upload(csv, Buffer.byteLength(csv));
    const stream = await s.openPredictions(path);
    expect(stream).toBeDefined();
    expect(await readAll(stream as Readable)).toBe(csv);
    // Predictions are read from the output container only.
    expect(await store({ outputContainer: inputName }).openPredictions(path)).toBeUndefined();
  });

  it("an output without an account of its own is read from the input's account", async () => {
    const s = createBatchStore({
      input: { connectionString: stack.blobConnectionString, container: inputName, prefix: "batches" },
      output: { container: outputName, pathTemplate: PATH_TEMPLATE },
      credential: unusedCredential,
    });
    const path = s.outputPath({ jobId: "job-fallback", batchId: "batch-fallback" });
    const csv = "b.json CA_1 1.5\n";
    await output.getBlockBlobClient(path).upload(csv, Buffer.byteLength(csv));
    expect(await readAll((await s.openPredictions(path)) as Readable)).toBe(csv);
    await expect(s.checkAccess()).resolves.toBeUndefined();
  });

  it("outputPath fills the template", () => {
    expect(store().outputPath({ jobId: "batchjob-42", batchId: "b-7" })).toBe(
      "runs/b-7/batchjob-42/predictions.csv",
    );
    expect(fillPathTemplate("{jobId}/{batchId}/{jobId}.csv", { jobId: "j", batchId: "b" })).toBe("j/b/j.csv");
  });

  it("checkAccess passes when both containers exist", async () => {
    await expect(store().checkAccess()).resolves.toBeUndefined();
  });

  it("checkAccess names a missing input container", async () => {
    const missing = `bs-missing-in-${suffix}`;
    const error = await store({ inputContainer: missing })
      .checkAccess()
      .catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(
      `input container "${missing}" does not exist at ${service.getContainerClient(missing).url}`,
    );
  });

  it("checkAccess names a missing output container", async () => {
    const missing = `bs-missing-out-${suffix}`;
    await expect(store({ outputContainer: missing }).checkAccess()).rejects.toThrow(
      `output container "${missing}" does not exist at ${service.getContainerClient(missing).url}`,
    );
  });

  it("checkAccess names both when both are missing", async () => {
    const error = await store({ inputContainer: "nope-in", outputContainer: "nope-out" })
      .checkAccess()
      .catch((e: Error) => e);
    const message = (error as Error).message;
    expect(message).toMatch(/^input container "nope-in" does not exist at .*; output container "nope-out"/);
  });

  it("with a SAS connection string, the folder URI carries no query string (no signature leaks into the job)", async () => {
    const sasUrl = service.generateAccountSasUrl(
      new Date(Date.now() + 3_600_000),
      AccountSASPermissions.parse("rwlc"),
      "sco",
    );
    const sas = new URL(sasUrl).search.slice(1);
    expect(sas).toContain("sig=");
    const connectionString = `BlobEndpoint=${stack.blobEndpoint};SharedAccessSignature=${sas}`;
    const s = createBatchStore({
      input: { connectionString, container: inputName, prefix: "sas" },
      output: { connectionString, container: outputName, pathTemplate: PATH_TEMPLATE },
      credential: unusedCredential,
    });
    const { batch, rows, files } = sealedBatch(2);
    const uploaded = await s.uploadBatch(batch.batchId, files);

    expect(uploaded.folderUri).toBe(`${input.url}/sas/${batch.batchId}`);
    expect(uploaded.folderUri).not.toContain("?");
    expect(uploaded.folderUri).not.toContain("sig=");
    expect(await s.readBatchRows(uploaded.blobPaths[0] as string)).toEqual(rows);
    await expect(s.checkAccess()).resolves.toBeUndefined();

    const missing = createBatchStore({
      input: { connectionString, container: "sas-missing", prefix: "" },
      output: { connectionString, container: outputName, pathTemplate: PATH_TEMPLATE },
      credential: unusedCredential,
    });
    await expect(missing.checkAccess()).rejects.toThrow(
      `input container "sas-missing" does not exist at ${stack.blobEndpoint}/sas-missing`,
    );
    const message = await missing.checkAccess().catch((e: Error) => e.message);
    expect(message).not.toContain("sig=");
  });
});
