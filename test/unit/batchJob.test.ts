/**
 * A batch's job (src/pipeline/batchJob.ts) against in-memory fakes of the blob store, the endpoint and the
 * job poller, with a real retry policy of 1-2 ms waits: upload, submission (guide and v2 bodies), the
 * repeatability id, resubmission after a failed job, endpoint outages and rejections, reading
 * predictions.csv, and abort. Azurite and the emulator are covered by the integration suites.
 */

import { Readable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import type { BatchStore, UploadedFolder } from "../../src/azure/blobStore.ts";
import type { EndpointCallOptions, JobState, SubmitJobRequest } from "../../src/azure/endpointClient.ts";
import { EndpointError } from "../../src/azure/errors.ts";
import type { JobOutcome, JobPoller, WatchOptions } from "../../src/azure/jobPoller.ts";
import { serializeRow } from "../../src/batcher/index.ts";
import { packMembers, unpackMembers } from "../../src/batcher/members.ts";
import {
  type BatchJobEvent,
  type BatchJobOptions,
  createBatchJobRunner,
  repeatabilityId,
} from "../../src/pipeline/batchJob.ts";
import { createRetryPolicy } from "../../src/retry.ts";
import type { BatchMember, BatchResult, FeatureRow, SealedBatch } from "../../src/types.ts";

const B = "b-20250101-0001";
const F0 = `${B}-0.json`;
const F1 = `${B}-1.json`;
const F2 = `${B}-2.json`;
const CONTAINER_URL = "https://account.blob.core.windows.net/input";

/** CA_1 three times: planBatchFiles lays it out as F0 = [0, 1, 3], F1 = [2], F2 = [4]. */
const STORES = ["CA_1", "CA_2", "CA_1", "TX_1", "CA_1"];

function sealedBatch(storeIds: readonly string[] = STORES, batchId = B): SealedBatch {
  const rows: FeatureRow[] = storeIds.map((store_id, i) => ({
    store_id,
    features: Array.from({ length: 13 }, (_, k) => i + k / 10),
  }));
  const members: BatchMember[] = storeIds.map((storeId, i) => ({
    source: {
      topic: "feature-events",
      partition: i % 2,
      offset: String(100 + i),
      timestampMs: 1_700_000_000_000 + i,
    },
    storeId,
  }));
  return {
    batchId,
    rows,
    rowJson: rows.map(serializeRow),
    members,
    trigger: "count",
    sizeBytes: 1234,
    openedAtMs: 1_700_000_000_000,
    sealedAtMs: 1_700_000_001_000,
  };
}

type PredictionsAnswer = Readable | undefined | Error;

/**
 * An in-memory BatchStore. Uploads fail with `uploadFailures` first (one per call), then succeed;
 * `predictions(path, nth)` answers the nth opening (1-based) of a predictions path.
 */
function fakeStore(
  options: {
    uploadFailures?: Error[];
    predictions?: (path: string, nth: number) => PredictionsAnswer;
    /** The first `hangingUploads` uploads end only when their signal aborts. */
    hangingUploads?: number;
  } = {},
) {
  const uploadFailures = [...(options.uploadFailures ?? [])];
  const uploads: Array<{
    batchId: string;
    files: Array<{ fileName: string; rows: FeatureRow[]; bytes: number }>;
    signal: AbortSignal | undefined;
  }> = [];
  const opened: Array<{ path: string; signal: AbortSignal | undefined }> = [];
  const manifests = new Map<string, Buffer>();
  let hanging = options.hangingUploads ?? 0;
  const store: BatchStore = {
    async uploadBatch(batchId, files, call = {}): Promise<UploadedFolder> {
      uploads.push({
        batchId,
        files: files.map((f) => ({
          fileName: f.fileName,
          rows: JSON.parse(f.body.toString("utf8")) as FeatureRow[],
          bytes: f.body.length,
        })),
        signal: call.abortSignal,
      });
      if (hanging > 0) {
        hanging--;
        await new Promise((_resolve, reject) =>
          call.abortSignal?.addEventListener("abort", () => reject(new Error("upload aborted")), {
            once: true,
          }),
        );
      }
      const failure = uploadFailures.shift();
      if (failure) throw failure;
      return {
        folderUri: `${CONTAINER_URL}/batches/${batchId}`,
        blobPaths: files.map((f) => `batches/${batchId}/${f.fileName}`),
      };
    },
    async writeManifest(batchId, body) {
      const path = `batches/_manifests/${batchId}.json`;
      manifests.set(path, body);
      return path;
    },
    async readManifest(path) {
      return manifests.get(path);
    },
    async readBatchRows() {
      throw new Error("readBatchRows is not used by the batch job");
    },
    outputPath: ({ jobId, batchId }) => `predictions/${batchId}/${jobId}/predictions.csv`,
    async openPredictions(path, call = {}) {
      opened.push({ path, signal: call.abortSignal });
      const answer = options.predictions?.(path, opened.filter((o) => o.path === path).length);
      if (answer instanceof Error) throw answer;
      return answer;
    },
    async checkAccess() {},
  };
  return { store, uploads, opened };
}

type SubmitAnswer = Omit<JobState, "status"> | Error;

/** An endpoint that answers submissions from a script (the last entry repeats). */
function fakeEndpoint(script: readonly SubmitAnswer[]) {
  const calls: Array<{ request: SubmitJobRequest; signal: AbortSignal | undefined }> = [];
  const endpoint = {
    async submitJob(request: SubmitJobRequest, call?: EndpointCallOptions): Promise<JobState> {
      calls.push({ request, signal: call?.abortSignal });
      const answer = script[Math.min(calls.length, script.length) - 1] as SubmitAnswer;
      if (answer instanceof Error) throw answer;
      return { status: "Queued", ...answer };
    },
    async getJob(): Promise<JobState> {
      throw new Error("getJob is the poller's business");
    },
  };
  return { endpoint, calls };
}

type Ending = Omit<JobOutcome, "jobId" | "durationMs"> | "hang";

/** A poller that ends each job as told; "hang" waits for the watch's abort signal. */
function fakePoller(endings: Record<string, Ending>) {
  const watches: Array<{ jobId: string; options: WatchOptions }> = [];
  const poller: JobPoller = {
    async watch(jobId, options) {
      watches.push({ jobId, options });
      const ending = endings[jobId] ?? { status: "Completed" };
      if (ending === "hang") {
        return new Promise<JobOutcome>((_resolve, reject) =>
          options.abortSignal?.addEventListener("abort", () => reject(options.abortSignal?.reason), {
            once: true,
          }),
        );
      }
      return { jobId, durationMs: 1000, ...ending };
    },
    watching: () => 0,
    close() {},
  };
  return { poller, watches };
}

function setup(
  parts: {
    store?: ReturnType<typeof fakeStore>;
    endpoint?: ReturnType<typeof fakeEndpoint>;
    poller?: ReturnType<typeof fakePoller>;
  } = {},
  options: Partial<BatchJobOptions> = {},
) {
  const store = parts.store ?? fakeStore();
  const endpoint = parts.endpoint ?? fakeEndpoint([{ jobId: "job-1" }]);
  const poller = parts.poller ?? fakePoller({});
  const events: BatchJobEvent[] = [];
  const runner = createBatchJobRunner({
    store: store.store,
    endpoint: endpoint.endpoint,
    poller: poller.poller,
    apiFlavor: "guide",
    retry: createRetryPolicy({ initialDelayMs: 1, maxDelayMs: 2 }),
    jobTimeoutMs: 600_000,
    maxAttempts: 3,
    outputDatastore: "workspaceblobstore",
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { runner, store, endpoint, poller, events };
}

/** predictions.csv as the guide's scoring script writes it: `<file_name> <store_id> <prediction>` per line. */
function csv(...lines: string[]): Readable {
  return Readable.from(lines.map((line) => `${line}\n`));
}

/** A download that breaks after some lines. */
function brokenCsv(lines: readonly string[], error: Error): Readable {
  return Readable.from(
    (async function* () {
      for (const line of lines) yield `${line}\n`;
      throw error;
    })(),
  );
}

/** A row for every member: F0 = CA_1, CA_2, TX_1; F1 = CA_1; F2 = CA_1. */
const FULL_PREDICTIONS = [
  `${F0} CA_1 [1.5]`,
  `${F0} CA_2 2`,
  `${F0} TX_1 3.25`,
  `${F1} CA_1 4`,
  `${F2} CA_1 5.5`,
];

/** Uploads a sealed batch through a runner of its own, so score tests start from a real UploadedBatch. */
async function uploadedBatch(storeIds: readonly string[] = STORES, batchId = B) {
  const sealed = sealedBatch(storeIds, batchId);
  const batch = await setup().runner.upload(sealed);
  return { batch, members: sealed.members };
}

function scored(result: BatchResult) {
  if (result.kind !== "scored") throw new Error(`expected a scored result, got ${JSON.stringify(result)}`);
  return result;
}

function outage(message = "job submission failed with HTTP 503: endpoint busy") {
  return new EndpointError(message, { status: 503, retriable: true });
}

describe("createBatchJobRunner", () => {
  describe("upload", () => {
    it("writes the batch as files in which each store appears at most once, and returns where they are", async () => {
      const sealed = sealedBatch();
      const { runner, store, events } = setup();
      const uploaded = await runner.upload(sealed);

      const [m0, m1, m2, m3, m4] = sealed.members;
      const [r0, r1, r2, r3, r4] = sealed.rows;
      expect(store.uploads).toHaveLength(1);
      const upload = store.uploads[0];
      expect(upload?.batchId).toBe(B);
      expect(upload?.files.map((f) => f.fileName)).toEqual([F0, F1, F2]);
      expect(upload?.files.map((f) => f.rows)).toEqual([[r0, r1, r3], [r2], [r4]]);
      for (const file of upload?.files ?? []) {
        const stores = file.rows.map((r) => r.store_id);
        expect(new Set(stores).size).toBe(stores.length);
      }
      expect(upload?.signal).toBeInstanceOf(AbortSignal);
      expect(upload?.signal?.aborted).toBe(false);

      // Invariant 8: the members in columns, no object per event; file k's rows are the members it lists.
      expect(uploaded).toEqual({
        batchId: B,
        members: packMembers(sealed.members),
        files: [
          { fileName: F0, blobPath: `batches/${B}/${F0}`, memberIndexes: Uint32Array.from([0, 1, 3]) },
          { fileName: F1, blobPath: `batches/${B}/${F1}`, memberIndexes: Uint32Array.from([2]) },
          { fileName: F2, blobPath: `batches/${B}/${F2}`, memberIndexes: Uint32Array.from([4]) },
        ],
        folderUri: `${CONTAINER_URL}/batches/${B}`,
        manifestPath: `batches/_manifests/${B}.json`,
      });
      expect(unpackMembers(uploaded.members)).toEqual([m0, m1, m2, m3, m4]);
      expect(uploaded.members.storeIds).toEqual(["CA_1", "CA_2", "TX_1"]);
      // Invariant 8: nothing of the features outlives the upload.
      expect(JSON.stringify(uploaded, (_, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(
        '"features"',
      );

      const bytes = [[r0, r1, r3], [r2], [r4]].reduce((sum, rows) => sum + JSON.stringify(rows).length, 0);
      expect(upload?.files.reduce((sum, f) => sum + f.bytes, 0)).toBe(bytes);
      expect(events).toEqual([
        {
          type: "uploaded",
          batchId: B,
          files: 3,
          bytes,
          durationMs: expect.any(Number),
          folderUri: `${CONTAINER_URL}/batches/${B}`,
        },
      ]);
    });

    it("writes a manifest from which restore rebuilds the batch: members in partition and offset order, every file's rows still mapped to their events", async () => {
      const sealed = sealedBatch();
      const { runner } = setup();
      const uploaded = await runner.upload(sealed);
      const restored = await runner.restore(uploaded.manifestPath);
      if (restored === undefined) throw new Error("manifest not found");

      const [m0, m1, m2, m3, m4] = sealed.members;
      // Partitions 0, 1, 0, 1, 0: partition 0's events first, each partition in offset order.
      expect(unpackMembers(restored.members)).toEqual([m0, m2, m4, m1, m3]);
      expect(restored.files).toEqual([
        { fileName: F0, blobPath: `batches/${B}/${F0}`, memberIndexes: Uint32Array.from([0, 3, 4]) },
        { fileName: F1, blobPath: `batches/${B}/${F1}`, memberIndexes: Uint32Array.from([1]) },
        { fileName: F2, blobPath: `batches/${B}/${F2}`, memberIndexes: Uint32Array.from([2]) },
      ]);
      const eventsOfFiles = (batch: typeof uploaded) =>
        batch.files.map((file) => Array.from(file.memberIndexes, (i) => unpackMembers(batch.members)[i]));
      expect(eventsOfFiles(restored)).toEqual(eventsOfFiles(uploaded));
      expect(restored).toMatchObject({
        batchId: B,
        folderUri: uploaded.folderUri,
        manifestPath: uploaded.manifestPath,
      });
    });

    it("lays out a batch larger than one slice (files, manifest) the same: every event restored, every file's rows its events", async () => {
      const stores = Array.from({ length: 40_000 }, (_, i) => `S_${i % 3}`);
      const sealed = sealedBatch(stores);
      const { runner, store } = setup();
      const uploaded = await runner.upload(sealed);
      const files = store.uploads[0]?.files ?? [];
      expect(files.map((f) => f.rows.length)).toEqual(
        Array.from({ length: files.length }, (_, k) => (k < 13_333 ? 3 : 1)),
      );
      expect(files.flatMap((f) => f.rows.map((r) => r.store_id)).sort()).toEqual([...stores].sort());
      const restored = await runner.restore(uploaded.manifestPath);
      if (restored === undefined) throw new Error("manifest not found");
      const eventsOfFiles = (batch: typeof uploaded) => {
        const all = unpackMembers(batch.members);
        return batch.files.map((file) => Array.from(file.memberIndexes, (i) => all[i]));
      };
      expect(eventsOfFiles(restored)).toEqual(eventsOfFiles(uploaded));
      expect(restored.members.length).toBe(40_000);

      // Distinct stores: one file of 40,000 rows, written in slices, the same JSON.
      const distinct = sealedBatch(
        Array.from({ length: 40_000 }, (_, i) => `D_${i}`),
        "b-distinct",
      );
      const one = setup();
      await one.runner.upload(distinct);
      expect(one.store.uploads[0]?.files.map((f) => f.rows)).toEqual([distinct.rows]);
      expect(one.store.uploads[0]?.files[0]?.bytes).toBe(JSON.stringify(distinct.rows).length);
    });

    it("makes one file of a batch of distinct stores", async () => {
      const sealed = sealedBatch(["A", "B", "C"]);
      const { runner, store } = setup();
      const uploaded = await runner.upload(sealed);
      expect(store.uploads[0]?.files).toEqual([
        { fileName: F0, rows: sealed.rows, bytes: JSON.stringify(sealed.rows).length },
      ]);
      expect(uploaded.files).toEqual([
        { fileName: F0, blobPath: `batches/${B}/${F0}`, memberIndexes: Uint32Array.from([0, 1, 2]) },
      ]);
    });

    it("tries an upload again after a store failure, reporting it as a failed step", async () => {
      const sealed = sealedBatch();
      const store = fakeStore({ uploadFailures: [new Error("503 blob service unavailable")] });
      const { runner, events } = setup({ store });
      const uploaded = await runner.upload(sealed);

      expect(store.uploads).toHaveLength(2);
      expect(store.uploads[1]?.files).toEqual(store.uploads[0]?.files);
      expect(store.uploads[1]?.signal).not.toBe(store.uploads[0]?.signal);
      expect(uploaded.folderUri).toBe(`${CONTAINER_URL}/batches/${B}`);
      expect(uploaded.files.map((f) => f.blobPath)).toEqual([F0, F1, F2].map((f) => `batches/${B}/${f}`));
      expect(events.map((e) => e.type)).toEqual(["step_failed", "uploaded"]);
      expect(events[0]).toEqual({
        type: "step_failed",
        batchId: B,
        step: "upload",
        error: "503 blob service unavailable",
      });
    });

    it("gives each upload try a deadline of stepTimeoutMs, then tries again", async () => {
      const store = fakeStore({ hangingUploads: 1 });
      const { runner, events } = setup({ store }, { stepTimeoutMs: 20 });
      const uploaded = await runner.upload(sealedBatch());
      expect(store.uploads).toHaveLength(2);
      expect(store.uploads[0]?.signal?.reason).toHaveProperty("name", "TimeoutError");
      expect(events.map((e) => e.type)).toEqual(["step_failed", "uploaded"]);
      expect(events[0]).toEqual({ type: "step_failed", batchId: B, step: "upload", error: "upload aborted" });
      expect(uploaded.files).toHaveLength(3);
    });

    it("rejects with the abort reason when aborted while retrying the upload", async () => {
      const store = fakeStore({ uploadFailures: Array.from({ length: 100 }, () => new Error("down")) });
      const controller = new AbortController();
      const reason = new Error("shutdown");
      const events: BatchJobEvent[] = [];
      const { runner } = setup(
        { store },
        {
          onEvent: (event) => {
            events.push(event);
            // Abort as the second failure is told: the run is about to wait.
            if (event.type === "step_failed" && events.length === 2) controller.abort(reason);
          },
        },
      );
      await expect(runner.upload(sealedBatch(), { abortSignal: controller.signal })).rejects.toBe(reason);
      expect(store.uploads).toHaveLength(2);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(store.uploads).toHaveLength(2);
      expect(events).toEqual([
        { type: "step_failed", batchId: B, step: "upload", error: "down" },
        { type: "step_failed", batchId: B, step: "upload", error: "down" },
      ]);
    });
  });

  describe("score", () => {
    it("guide flavor: submits the folder, watches the job, and matches predictions.csv to the members", async () => {
      const { batch } = await uploadedBatch();
      const store = fakeStore({
        predictions: () =>
          csv(
            `${F0} CA_1 [1.5]`,
            `${F0} TX_1 3.25`,
            `${F1} CA_1 2.5`,
            "",
            `${F0} CA_1 9.75`, // a second row for F0's only CA_1: a duplicate, the first row wins
            `${B}-7.json CA_1 4`, // a file of no member
            `${F0} ZZ_9 5`, // a store of no member
            `${F0} CA_2`, // malformed: two fields
          ),
      });
      const endpoint = fakeEndpoint([{ jobId: "job-1" }]);
      const poller = fakePoller({ "job-1": { status: "Completed" } });
      const { runner, events } = setup({ store, endpoint, poller }, { jobTimeoutMs: 900_000 });

      const result = await runner.score(batch);

      expect(endpoint.calls).toHaveLength(1);
      expect(endpoint.calls[0]?.request).toStrictEqual({
        inputUri: `${CONTAINER_URL}/batches/${B}`,
        inputType: "UriFolder",
        repeatabilityId: repeatabilityId(B, 1),
      });
      expect(endpoint.calls[0]?.request).not.toHaveProperty("outputUri");
      expect(endpoint.calls[0]?.signal).toBeInstanceOf(AbortSignal);
      expect(poller.watches).toStrictEqual([
        { jobId: "job-1", options: { timeoutMs: 900_000, submittedAtMs: expect.any(Number) } },
      ]);
      expect(store.opened.map((o) => o.path)).toEqual([`predictions/${B}/job-1/predictions.csv`]);
      expect(store.opened[0]?.path).toBe(store.store.outputPath({ jobId: "job-1", batchId: B }));
      expect(store.opened[0]?.signal).toBeInstanceOf(AbortSignal);

      expect(result).toEqual({
        kind: "scored",
        batch,
        jobId: "job-1",
        predictions: [
          { memberIndex: 0, fileName: F0, prediction: 1.5 },
          { memberIndex: 3, fileName: F0, prediction: 3.25 },
          { memberIndex: 2, fileName: F1, prediction: 2.5 },
        ],
        missing: [
          { memberIndex: 1, fileName: F0 },
          { memberIndex: 4, fileName: F2 },
        ],
        predictedAt: expect.any(Date),
      });
      expect(events).toEqual([
        { type: "submitted", batchId: B, jobId: "job-1", attempt: 1 },
        {
          type: "finished",
          batchId: B,
          jobId: "job-1",
          attempt: 1,
          outcome: { jobId: "job-1", status: "Completed", durationMs: 1000 },
        },
        {
          type: "results_parsed",
          batchId: B,
          jobId: "job-1",
          predicted: 3,
          missing: 2,
          malformedRows: 1,
          unmatchedRows: 3,
          duplicateRows: 1,
        },
      ]);
    });

    it("v2 flavor: names the output location before the job exists and reads predictions from there", async () => {
      const { batch } = await uploadedBatch();
      const v2Path = `predictions/${B}/${B}-attempt1/predictions.csv`;
      const store = fakeStore({
        predictions: (path) => (path === v2Path ? csv(...FULL_PREDICTIONS) : undefined),
      });
      const endpoint = fakeEndpoint([{ jobId: "azureml-job-9f3" }]);
      const { runner, events } = setup(
        { store, endpoint },
        { apiFlavor: "v2", outputDatastore: "forecasts_ds" },
      );

      const result = scored(await runner.score(batch));

      expect(store.store.outputPath({ jobId: `${B}-attempt1`, batchId: B })).toBe(v2Path);
      expect(endpoint.calls.map((c) => c.request)).toStrictEqual([
        {
          inputUri: `${CONTAINER_URL}/batches/${B}`,
          inputType: "UriFolder",
          repeatabilityId: repeatabilityId(B, 1),
          outputUri: `azureml://datastores/forecasts_ds/paths/${v2Path}`,
        },
      ]);
      expect(store.opened.map((o) => o.path)).toEqual([v2Path]);
      expect(result.jobId).toBe("azureml-job-9f3");
      expect(result.predictions.map((p) => [p.memberIndex, p.prediction])).toEqual([
        [0, 1.5],
        [1, 2],
        [3, 3.25],
        [2, 4],
        [4, 5.5],
      ]);
      expect(result.missing).toEqual([]);
      expect(events.at(-1)).toEqual({
        type: "results_parsed",
        batchId: B,
        jobId: "azureml-job-9f3",
        predicted: 5,
        missing: 0,
        malformedRows: 0,
        unmatchedRows: 0,
        duplicateRows: 0,
      });
    });

    it("v2 flavor: each attempt names an output location of its own", async () => {
      const { batch } = await uploadedBatch();
      const store = fakeStore({ predictions: () => csv(...FULL_PREDICTIONS) });
      const endpoint = fakeEndpoint([{ jobId: "job-1" }, { jobId: "job-2" }]);
      const poller = fakePoller({ "job-1": { status: "Failed" } });
      const { runner } = setup({ store, endpoint, poller }, { apiFlavor: "v2" });
      scored(await runner.score(batch));
      expect(endpoint.calls.map((c) => c.request.outputUri)).toEqual([
        `azureml://datastores/workspaceblobstore/paths/predictions/${B}/${B}-attempt1/predictions.csv`,
        `azureml://datastores/workspaceblobstore/paths/predictions/${B}/${B}-attempt2/predictions.csv`,
      ]);
      expect(store.opened.map((o) => o.path)).toEqual([`predictions/${B}/${B}-attempt2/predictions.csv`]);
    });

    it("cancels a timed-out job before the next attempt, and the last one as given up, without waiting", async () => {
      const { batch } = await uploadedBatch();
      const endpoint = fakeEndpoint([{ jobId: "job-1" }, { jobId: "job-2" }]);
      const timedOut = { status: "TimedOut", error: { code: "Timeout", message: "no terminal status" } };
      const poller = fakePoller({ "job-1": timedOut as Ending, "job-2": timedOut as Ending });
      const cancels: Array<{ jobId: string; batchId: string; reason: string }> = [];
      const { runner } = setup(
        { endpoint, poller },
        { maxAttempts: 2, cancelJob: (jobId, context) => cancels.push({ jobId, ...context }) },
      );
      const result = await runner.score(batch);
      expect(result.kind).toBe("failed");
      expect(cancels).toEqual([
        { jobId: "job-1", batchId: B, reason: "timed_out" },
        { jobId: "job-2", batchId: B, reason: "given_up" },
      ]);
    });

    it("never cancels a job that ended by itself (Failed, Canceled), was lost, or whose watch was aborted", async () => {
      const { batch } = await uploadedBatch();
      const cancels: string[] = [];
      const ended = setup(
        {
          endpoint: fakeEndpoint([{ jobId: "f" }, { jobId: "c" }, { jobId: "l" }]),
          poller: fakePoller({ f: { status: "Failed" }, c: { status: "Canceled" }, l: { status: "Lost" } }),
        },
        { maxAttempts: 3, cancelJob: (jobId) => cancels.push(jobId) },
      );
      expect((await ended.runner.score(batch)).kind).toBe("failed");
      const controller = new AbortController();
      const stopped = setup(
        { endpoint: fakeEndpoint([{ jobId: "h" }]), poller: fakePoller({ h: "hang" }) },
        { cancelJob: (jobId) => cancels.push(jobId) },
      );
      const scoring = stopped.runner.score(batch, { abortSignal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 5));
      controller.abort(new Error("shutdown"));
      await expect(scoring).rejects.toThrow("shutdown");
      expect(cancels).toEqual([]);
    });

    it("puts the service's whole error body (code, message, details) in the failed batch's detail", async () => {
      const { batch } = await uploadedBatch();
      const poller = fakePoller({
        "job-1": {
          status: "Failed",
          error: {
            code: "UserError",
            message: "Execution failed.",
            details: [
              { code: "ScriptExecution.StreamAccess.NotFound", message: "input not found", target: "input" },
            ],
          },
        },
      });
      const { runner } = setup({ endpoint: fakeEndpoint([{ jobId: "job-1" }]), poller }, { maxAttempts: 1 });
      const result = await runner.score(batch);
      expect(result).toMatchObject({
        kind: "failed",
        detail:
          "job job-1 ended Failed: UserError: Execution failed. [details: ScriptExecution.StreamAccess.NotFound: input not found (input)]",
      });
    });

    it("v2 flavor: names the input as the folder's https URL, its azureml:// datastore path, or its one file", async () => {
      const one = await uploadedBatch(["CA_1", "TX_1"]);
      const folder = one.batch.folderUri;
      const path = one.batch.files[0]?.blobPath as string;
      const cases = [
        [{}, { inputUri: folder, inputType: "UriFolder" }],
        [{ inputType: "auto" as const }, { inputUri: `${folder}/${B}-0.json`, inputType: "UriFile" }],
        [
          { inputUriForm: "azureml" as const, inputDatastore: "fcinput" },
          {
            inputUri: `azureml://datastores/fcinput/paths/${path.slice(0, path.lastIndexOf("/"))}/`,
            inputType: "UriFolder",
          },
        ],
        [
          { inputUriForm: "azureml" as const, inputDatastore: "fcinput", inputType: "auto" as const },
          { inputUri: `azureml://datastores/fcinput/paths/${path}`, inputType: "UriFile" },
        ],
      ] as const;
      for (const [jobInput, expected] of cases) {
        const endpoint = fakeEndpoint([{ jobId: "job-1" }]);
        const { runner } = setup(
          { endpoint, store: fakeStore({ predictions: () => csv() }) },
          { apiFlavor: "v2", jobInput },
        );
        await runner.score(one.batch);
        expect(endpoint.calls[0]?.request, JSON.stringify(jobInput)).toMatchObject(expected);
      }
      // A batch of several files is always a folder, whatever the setting.
      const several = await uploadedBatch(["CA_1", "CA_1"]);
      expect(several.batch.files.length).toBe(2);
      const endpoint = fakeEndpoint([{ jobId: "job-1" }]);
      const { runner } = setup(
        { endpoint, store: fakeStore({ predictions: () => csv() }) },
        { apiFlavor: "v2", jobInput: { inputType: "auto" } },
      );
      await runner.score(several.batch);
      expect(endpoint.calls[0]?.request).toMatchObject({
        inputUri: several.batch.folderUri,
        inputType: "UriFolder",
      });
    });

    it("resubmits a Failed job as a new attempt with a new repeatability id", async () => {
      const { batch } = await uploadedBatch();
      const store = fakeStore({ predictions: () => csv(...FULL_PREDICTIONS) });
      const endpoint = fakeEndpoint([{ jobId: "job-1" }, { jobId: "job-2" }]);
      const failedOutcome = {
        status: "Failed",
        error: { code: "ScriptError", message: "scoring script crashed" },
      };
      const poller = fakePoller({ "job-1": failedOutcome as Ending, "job-2": { status: "Completed" } });
      const { runner, events } = setup({ store, endpoint, poller });

      const result = scored(await runner.score(batch));

      expect(endpoint.calls.map((c) => c.request.repeatabilityId)).toEqual([
        repeatabilityId(B, 1),
        repeatabilityId(B, 2),
      ]);
      expect(repeatabilityId(B, 1)).not.toBe(repeatabilityId(B, 2));
      expect(poller.watches.map((w) => w.jobId)).toEqual(["job-1", "job-2"]);
      expect(store.opened.map((o) => o.path)).toEqual([`predictions/${B}/job-2/predictions.csv`]);
      expect(result.jobId).toBe("job-2");
      expect(result.predictions).toHaveLength(5);
      expect(events).toEqual([
        { type: "submitted", batchId: B, jobId: "job-1", attempt: 1 },
        {
          type: "finished",
          batchId: B,
          jobId: "job-1",
          attempt: 1,
          outcome: { jobId: "job-1", durationMs: 1000, ...failedOutcome },
        },
        {
          type: "resubmitting",
          batchId: B,
          attempt: 2,
          reason: "job job-1 ended Failed: ScriptError: scoring script crashed",
        },
        { type: "submitted", batchId: B, jobId: "job-2", attempt: 2 },
        {
          type: "finished",
          batchId: B,
          jobId: "job-2",
          attempt: 2,
          outcome: { jobId: "job-2", status: "Completed", durationMs: 1000 },
        },
        {
          type: "results_parsed",
          batchId: B,
          jobId: "job-2",
          predicted: 5,
          missing: 0,
          malformedRows: 0,
          unmatchedRows: 0,
          duplicateRows: 0,
        },
      ]);
    });

    it("reports the batch failed once every attempt has failed, with the last job and its error", async () => {
      const { batch } = await uploadedBatch();
      const store = fakeStore({ predictions: () => csv(...FULL_PREDICTIONS) });
      const endpoint = fakeEndpoint([{ jobId: "job-1" }, { jobId: "job-2" }, { jobId: "job-3" }]);
      const poller = fakePoller({
        "job-1": { status: "Failed", error: { message: "scoring script crashed" } },
        "job-2": { status: "Failed", error: { code: "OutOfMemory", message: "out of memory" } },
      });
      const { runner, events } = setup({ store, endpoint, poller }, { maxAttempts: 2 });

      const result = await runner.score(batch);

      expect(result).toEqual({
        kind: "failed",
        batch,
        jobId: "job-2",
        detail: "job job-2 ended Failed: OutOfMemory: out of memory",
      });
      expect(endpoint.calls).toHaveLength(2);
      expect(poller.watches.map((w) => w.jobId)).toEqual(["job-1", "job-2"]);
      expect(store.opened).toEqual([]);
      expect(events.map((e) => e.type)).toEqual([
        "submitted",
        "finished",
        "resubmitting",
        "submitted",
        "finished",
      ]);
    });

    it("names a Canceled or TimedOut job's status in the detail, with the error message when there is one", async () => {
      const { batch } = await uploadedBatch();
      const canceled = setup(
        {
          endpoint: fakeEndpoint([{ jobId: "job-c" }]),
          poller: fakePoller({ "job-c": { status: "Canceled" } }),
        },
        { maxAttempts: 1 },
      );
      expect(await canceled.runner.score(batch)).toEqual({
        kind: "failed",
        batch,
        jobId: "job-c",
        detail: "job job-c ended Canceled",
      });

      const timedOut = setup(
        {
          endpoint: fakeEndpoint([{ jobId: "job-t" }]),
          poller: fakePoller({
            "job-t": {
              status: "TimedOut",
              error: { code: "Timeout", message: "no terminal status after 600000 ms (last: Running)" },
            },
          }),
        },
        { maxAttempts: 1 },
      );
      expect(await timedOut.runner.score(batch)).toEqual({
        kind: "failed",
        batch,
        jobId: "job-t",
        detail: "job job-t ended TimedOut: Timeout: no terminal status after 600000 ms (last: Running)",
      });
    });

    it("waits out an endpoint outage with the same repeatability id, without spending an attempt", async () => {
      const { batch } = await uploadedBatch();
      const store = fakeStore({ predictions: () => csv(...FULL_PREDICTIONS) });
      const endpoint = fakeEndpoint([outage(), outage(), { jobId: "job-1" }]);
      // One attempt in all: if the outage spent it, the batch would fail.
      const { runner, events } = setup({ store, endpoint }, { maxAttempts: 1 });

      const result = scored(await runner.score(batch));

      expect(result.jobId).toBe("job-1");
      expect(endpoint.calls.map((c) => c.request.repeatabilityId)).toEqual([
        repeatabilityId(B, 1),
        repeatabilityId(B, 1),
        repeatabilityId(B, 1),
      ]);
      const submitFailed = {
        type: "submit_failed",
        batchId: B,
        attempt: 1,
        error: "job submission failed with HTTP 503: endpoint busy",
        retriable: true,
      };
      expect(events.map((e) => e.type)).toEqual([
        "submit_failed",
        "submit_failed",
        "submitted",
        "finished",
        "results_parsed",
      ]);
      expect(events.slice(0, 3)).toEqual([
        submitFailed,
        submitFailed,
        { type: "submitted", batchId: B, jobId: "job-1", attempt: 1 },
      ]);
    });

    it.each([
      [401, false],
      [403, false],
      [404, false],
      [429, true],
      [500, true],
    ])(
      "retries a submission that failed with HTTP %i (error retriable: %s): the endpoint's fault",
      async (status, retriable) => {
        const { batch } = await uploadedBatch();
        const error = new EndpointError(`job submission failed with HTTP ${status}`, { status, retriable });
        const endpoint = fakeEndpoint([error, { jobId: "job-1" }]);
        const { runner, events } = setup({ endpoint }, { maxAttempts: 1 });
        const result = await runner.score(batch);
        expect(result.kind).toBe("scored");
        expect(endpoint.calls).toHaveLength(2);
        expect(events[0]).toEqual({
          type: "submit_failed",
          batchId: B,
          attempt: 1,
          error: `job submission failed with HTTP ${status}`,
          retriable: true,
        });
      },
    );

    it("retries a submission that failed with an error that is not an EndpointError", async () => {
      const { batch } = await uploadedBatch();
      const endpoint = fakeEndpoint([new TypeError("fetch failed"), { jobId: "job-1" }]);
      const { runner, events } = setup({ endpoint });
      expect((await runner.score(batch)).kind).toBe("scored");
      expect(endpoint.calls).toHaveLength(2);
      expect(events[0]).toEqual({
        type: "submit_failed",
        batchId: B,
        attempt: 1,
        error: "fetch failed",
        retriable: true,
      });
    });

    it("fails the batch at once when the endpoint rejects the request (HTTP 400)", async () => {
      const { batch } = await uploadedBatch();
      const message = "job submission failed with HTTP 400: input uri not found";
      const endpoint = fakeEndpoint([new EndpointError(message, { status: 400, retriable: false })]);
      const poller = fakePoller({});
      const { runner, store, events } = setup({ endpoint, poller }, { maxAttempts: 3 });

      const result = await runner.score(batch);

      expect(result).toEqual({ kind: "failed", batch, detail: `submission rejected: ${message}` });
      expect(result).not.toHaveProperty("jobId");
      expect(result.kind === "failed" && result.detail.startsWith("submission rejected:")).toBe(true);
      expect(endpoint.calls).toHaveLength(1);
      expect(poller.watches).toEqual([]);
      expect(store.opened).toEqual([]);
      expect(events).toEqual([
        { type: "submit_failed", batchId: B, attempt: 1, error: message, retriable: false },
      ]);
    });

    it.each([409, 413, 415, 422])("fails the batch at once on HTTP %i", async (status) => {
      const { batch } = await uploadedBatch();
      const message = `job submission failed with HTTP ${status}`;
      const endpoint = fakeEndpoint([new EndpointError(message, { status, retriable: false })]);
      const { runner, poller } = setup({ endpoint });
      expect(await runner.score(batch)).toEqual({
        kind: "failed",
        batch,
        detail: `submission rejected: ${message}`,
      });
      expect(endpoint.calls).toHaveLength(1);
      expect(poller.watches).toEqual([]);
    });

    it("fails the batch at once when the endpoint's answer has no job id", async () => {
      const { batch } = await uploadedBatch();
      const message = "the endpoint's answer has no job id";
      const endpoint = fakeEndpoint([new EndpointError(message, { retriable: false })]);
      const { runner, events } = setup({ endpoint });
      expect(await runner.score(batch)).toEqual({
        kind: "failed",
        batch,
        detail: `submission rejected: ${message}`,
      });
      expect(endpoint.calls).toHaveLength(1);
      expect(events).toEqual([
        { type: "submit_failed", batchId: B, attempt: 1, error: message, retriable: false },
      ]);
    });

    it("reports every member missing when a Completed job wrote no predictions.csv", async () => {
      const { batch } = await uploadedBatch();
      const store = fakeStore({ predictions: () => undefined });
      const { runner, events } = setup({ store });

      const result = scored(await runner.score(batch));

      expect(result.predictions).toEqual([]);
      expect(result.missing).toEqual([
        { memberIndex: 0, fileName: F0 },
        { memberIndex: 1, fileName: F0 },
        { memberIndex: 3, fileName: F0 },
        { memberIndex: 2, fileName: F1 },
        { memberIndex: 4, fileName: F2 },
      ]);
      expect(store.opened).toHaveLength(1);
      expect(events.at(-1)).toEqual({
        type: "results_parsed",
        batchId: B,
        jobId: "job-1",
        predicted: 0,
        missing: 5,
        malformedRows: 0,
        unmatchedRows: 0,
        duplicateRows: 0,
      });
    });

    it("reads predictions.csv again from the start when a read fails halfway", async () => {
      const { batch } = await uploadedBatch();
      const store = fakeStore({
        predictions: (_path, nth) =>
          nth === 1
            ? brokenCsv(FULL_PREDICTIONS.slice(0, 2), new Error("connection reset"))
            : csv(...FULL_PREDICTIONS),
      });
      const { runner, events } = setup({ store });

      const result = scored(await runner.score(batch));

      expect(store.opened.map((o) => o.path)).toEqual([
        `predictions/${B}/job-1/predictions.csv`,
        `predictions/${B}/job-1/predictions.csv`,
      ]);
      expect(result.predictions.map((p) => p.prediction)).toEqual([1.5, 2, 3.25, 4, 5.5]);
      expect(events.filter((e) => e.type === "step_failed")).toEqual([
        { type: "step_failed", batchId: B, step: "read predictions", error: "connection reset" },
      ]);
      // A fresh matcher for the second read: the rows of the first read are not counted twice.
      expect(events.at(-1)).toMatchObject({
        type: "results_parsed",
        predicted: 5,
        unmatchedRows: 0,
        duplicateRows: 0,
      });
    });

    it("rejects with the abort reason when aborted while the submission is retried, and submits no more", async () => {
      const { batch } = await uploadedBatch();
      const endpoint = fakeEndpoint([outage()]); // down for good
      const controller = new AbortController();
      const reason = new Error("shutting down");
      const events: BatchJobEvent[] = [];
      const { runner, poller } = setup(
        { endpoint },
        {
          onEvent: (event) => {
            events.push(event);
            if (event.type === "submit_failed" && events.length === 2) controller.abort(reason);
          },
        },
      );

      await expect(runner.score(batch, { abortSignal: controller.signal })).rejects.toBe(reason);
      expect(endpoint.calls).toHaveLength(2);
      expect(endpoint.calls[1]?.signal?.aborted).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(endpoint.calls).toHaveLength(2);
      expect(events.map((e) => e.type)).toEqual(["submit_failed", "submit_failed"]);
      expect(poller.watches).toEqual([]);
    });

    it("rejects without submitting when aborted before the start", async () => {
      const { batch } = await uploadedBatch();
      const reason = new Error("already stopped");
      const { runner, endpoint, events } = setup();
      await expect(runner.score(batch, { abortSignal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      expect(endpoint.calls).toEqual([]);
      expect(events).toEqual([]);
    });

    it("hands its abort signal to the poller: an abort while the job runs rejects with the reason", async () => {
      const { batch } = await uploadedBatch();
      const poller = fakePoller({ "job-1": "hang" });
      const controller = new AbortController();
      const reason = new Error("shutting down");
      const { runner, store, events } = setup({ poller });
      const done = runner.score(batch, { abortSignal: controller.signal });
      await vi.waitFor(() => expect(poller.watches).toHaveLength(1), { interval: 1 });
      expect(poller.watches[0]?.options).toStrictEqual({
        timeoutMs: 600_000,
        submittedAtMs: expect.any(Number),
        abortSignal: controller.signal,
      });
      controller.abort(reason);
      await expect(done).rejects.toBe(reason);
      expect(store.opened).toEqual([]);
      expect(events.map((e) => e.type)).toEqual(["submitted"]);
    });
  });
});

describe("repeatabilityId", () => {
  const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/;

  it("is stable for a (batch, attempt)", () => {
    expect(repeatabilityId("b-1", 1)).toBe(repeatabilityId("b-1", 1));
    expect(repeatabilityId(B, 3)).toBe(repeatabilityId(B, 3));
    // Pinned: derived from sha256("b-1#1"), so it does not change between releases.
    expect(repeatabilityId("b-1", 1)).toBe("e76ff4bb-8160-436e-8b58-97bd28d7d06d");
    expect(repeatabilityId("b-1", 2)).toBe("92234f45-76d2-4ee2-8d70-229241e0292a");
  });

  it("differs across attempts and across batches", () => {
    const ids = [
      repeatabilityId("b-1", 1),
      repeatabilityId("b-1", 2),
      repeatabilityId("b-1", 3),
      repeatabilityId("b-2", 1),
      repeatabilityId("b-2", 2),
      repeatabilityId("b-11", 1),
    ];
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("has the shape of a UUID v4 (version nibble 4, variant 8)", () => {
    for (const batchId of ["b-1", B, "x", ""]) {
      for (const attempt of [1, 2, 100]) {
        const id = repeatabilityId(batchId, attempt);
        expect(id).toMatch(UUID_V4);
        expect(id).toHaveLength(36);
        expect(id[14]).toBe("4");
        expect(id[19]).toBe("8");
      }
    }
  });
});
