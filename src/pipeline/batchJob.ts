import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { BatchStore } from "../azure/blobStore.ts";
import type { EndpointClient } from "../azure/endpointClient.ts";
import { EndpointError } from "../azure/errors.ts";
import type { JobOutcome, JobPoller } from "../azure/jobPoller.ts";
import { planBatchFiles, serializeBatchFile } from "../batcher/index.ts";
import type { ApiFlavor } from "../config/types.ts";
import { type BatchMatchResult, createBatchMatcher } from "../results/matchPredictions.ts";
import { parsePredictions } from "../results/parsePredictions.ts";
import type { BatchMember, SealedBatch } from "../types.ts";

/** One uploaded input file: its name, where it is, and the events it holds in file order. */
export interface UploadedFile {
  readonly fileName: string;
  readonly blobPath: string;
  readonly members: readonly BatchMember[];
}

/** What outlives the upload of a batch (design note 8): no features, just what maps results back. */
export interface UploadedBatchRecord {
  readonly batchId: string;
  readonly members: readonly BatchMember[];
  readonly files: readonly UploadedFile[];
  readonly folderUri: string;
}

export type BatchResult =
  | {
      readonly kind: "scored";
      readonly batch: UploadedBatchRecord;
      readonly jobId: string;
      readonly predictions: BatchMatchResult["predictions"];
      readonly missing: BatchMatchResult["missing"];
      readonly predictedAt: Date;
    }
  | {
      readonly kind: "failed";
      readonly batch: UploadedBatchRecord;
      readonly jobId?: string;
      readonly detail: string;
    };

/** Instrumentation of a batch's life (design note 7): each step is an event, for logs and metrics. */
export type BatchJobEvent =
  | { type: "uploaded"; batchId: string; files: number; bytes: number; durationMs: number; folderUri: string }
  | { type: "submitted"; batchId: string; jobId: string; attempt: number }
  | { type: "submit_failed"; batchId: string; attempt: number; error: string; retriable: boolean }
  | { type: "finished"; batchId: string; jobId: string; attempt: number; outcome: JobOutcome }
  | { type: "resubmitting"; batchId: string; attempt: number; reason: string }
  | { type: "step_failed"; batchId: string; step: string; error: string }
  | {
      type: "results_parsed";
      batchId: string;
      jobId: string;
      predicted: number;
      missing: number;
      malformedRows: number;
      unmatchedRows: number;
      duplicateRows: number;
    };

export interface BatchJobDeps {
  readonly store: BatchStore;
  readonly endpoint: EndpointClient;
  readonly poller: JobPoller;
  readonly apiFlavor: ApiFlavor;
  /** v2 flavor: the datastore named in the job's output URI. */
  readonly outputDatastore: string;
  readonly jobTimeoutMs: number;
  readonly maxAttempts: number;
  /** First wait before resubmitting after the endpoint could not be reached at all; doubles up to 60 s. Default 1 s. */
  readonly submitRetryDelayMs?: number;
  /** Deadline of one try of a blob step (upload, reading results). Default 5 minutes. */
  readonly stepTimeoutMs?: number;
  /** Aborts the batch (shutdown): it then rejects, and its events stay uncommitted. */
  readonly signal?: AbortSignal;
  readonly onEvent?: (event: BatchJobEvent) => void;
}

/**
 * A stable repeatability id per (batch, attempt): every HTTP retry of one submission carries the same id,
 * so the service answers with the job it already created instead of starting a second one.
 */
export function repeatabilityId(batchId: string, attempt: number): string {
  const hex = createHash("sha256").update(`${batchId}#${attempt}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * A sealed batch's upload: its files written to its folder. Returns what the job needs; the sealed batch
 * (with every feature row) is not referenced once this resolves, so the features live in the blob only
 * while the job runs for minutes (design note 8). Kept apart from scoreBatch for exactly that reason.
 */
export async function uploadBatch(
  sealed: SealedBatch,
  deps: Pick<BatchJobDeps, "store" | "signal" | "onEvent" | "submitRetryDelayMs" | "stepTimeoutMs">,
): Promise<UploadedBatchRecord> {
  const plan = planBatchFiles(sealed.batchId, sealed.members);
  const bodies = plan.map((file) => ({
    fileName: file.fileName,
    body: serializeBatchFile(sealed.rows, file),
  }));
  const uploadStarted = Date.now();
  const uploaded = await untilDone("upload", sealed.batchId, deps, (signal) =>
    deps.store.uploadBatch(sealed.batchId, bodies, signal),
  );
  deps.onEvent?.({
    type: "uploaded",
    batchId: sealed.batchId,
    files: plan.length,
    bytes: bodies.reduce((sum, f) => sum + f.body.length, 0),
    durationMs: Date.now() - uploadStarted,
    folderUri: uploaded.folderUri,
  });
  const members = sealed.members;
  return {
    batchId: sealed.batchId,
    members,
    files: plan.map((file, i) => ({
      fileName: file.fileName,
      blobPath: uploaded.blobPaths[i] as string,
      members: file.memberIndexes.map((m) => members[m] as BatchMember),
    })),
    folderUri: uploaded.folderUri,
  };
}

/**
 * An uploaded batch through the rest of its life: submitted -> finished -> results. Failed or timed-out
 * jobs are resubmitted up to maxAttempts; then the batch is reported failed. A submission the endpoint
 * cannot take right now is retried without spending an attempt (see submitUntilAnswered). It never
 * publishes or commits: the coordinator does, from the BatchResult.
 */
export async function scoreBatch(batch: UploadedBatchRecord, deps: BatchJobDeps): Promise<BatchResult> {
  const emit = deps.onEvent ?? (() => {});
  let lastDetail = "";
  let lastJobId: string | undefined;
  for (let attempt = 1; attempt <= deps.maxAttempts; attempt++) {
    if (attempt > 1) emit({ type: "resubmitting", batchId: batch.batchId, attempt, reason: lastDetail });
    // v2: the caller names the output location before the job exists, so {jobId} stands for batch + attempt.
    const v2OutputPath = deps.store.outputPath({
      jobId: `${batch.batchId}-attempt${attempt}`,
      batchId: batch.batchId,
    });
    const submitted = await submitUntilAnswered(batch, attempt, v2OutputPath, deps, emit);
    if (!submitted.ok) {
      lastDetail = submitted.detail;
      break; // the endpoint rejected this batch's request as such: another attempt would be rejected too
    }
    const jobId = submitted.jobId;
    lastJobId = jobId;
    emit({ type: "submitted", batchId: batch.batchId, jobId, attempt });

    const outcome = await deps.poller.watch(jobId, { timeoutMs: deps.jobTimeoutMs });
    emit({ type: "finished", batchId: batch.batchId, jobId, attempt, outcome });
    if (outcome.status !== "Completed") {
      lastDetail = `job ${jobId} ended ${outcome.status}${outcome.error?.message ? `: ${outcome.error.message}` : ""}`;
      continue;
    }
    const outputPath =
      deps.apiFlavor === "v2" ? v2OutputPath : deps.store.outputPath({ jobId, batchId: batch.batchId });
    return collectResults(batch, jobId, outputPath, deps, emit);
  }
  return { kind: "failed", batch, ...(lastJobId ? { jobId: lastJobId } : {}), detail: lastDetail };
}

/**
 * HTTP statuses that say the request itself is wrong for this batch (bad input URI or body): resending it
 * cannot help, so the batch fails at once. Anything else (401/403 while a role assignment is fixed, 404 of a
 * redeployed endpoint, throttling, 5xx, network) is about the endpoint, not the batch.
 */
const BATCH_REJECTED_STATUSES: ReadonlySet<number> = new Set([400, 409, 413, 415, 422]);

/**
 * Submits one attempt. The HTTP pipeline has already retried transient failures; when even that fails and
 * the fault is the endpoint's, the batch waits and tries again with the same repeatability id, rather than
 * dead-lettering events for an outage: flow control pauses the input meanwhile, and the errors are in the
 * logs and in forecast_connector_jobs_failed_total{reason="submit_error"}. Ends on the abort signal.
 */
async function submitUntilAnswered(
  batch: UploadedBatchRecord,
  attempt: number,
  v2OutputPath: string,
  deps: BatchJobDeps,
  emit: (event: BatchJobEvent) => void,
): Promise<{ ok: true; jobId: string } | { ok: false; detail: string }> {
  for (let failures = 0; ; failures++) {
    deps.signal?.throwIfAborted();
    try {
      const state = await deps.endpoint.submitJob({
        inputUri: batch.folderUri,
        inputType: "UriFolder",
        repeatabilityId: repeatabilityId(batch.batchId, attempt),
        ...(deps.apiFlavor === "v2"
          ? { outputUri: `azureml://datastores/${deps.outputDatastore}/paths/${v2OutputPath}` }
          : {}),
        ...(deps.signal ? { abortSignal: deps.signal } : {}),
      });
      return { ok: true, jobId: state.jobId };
    } catch (error) {
      deps.signal?.throwIfAborted();
      const message = (error as Error).message;
      // Rejected: the request is wrong for this batch (a 4xx in the list), or the answer was unusable (a 2xx
      // without a job id): sending the same request again would get the same answer.
      const rejected =
        error instanceof EndpointError &&
        (BATCH_REJECTED_STATUSES.has(error.status ?? 0) ||
          (!error.retriable && (error.status === undefined || error.status < 300)));
      emit({ type: "submit_failed", batchId: batch.batchId, attempt, error: message, retriable: !rejected });
      if (rejected) return { ok: false, detail: `submission rejected: ${message}` };
      const delayMs = Math.min((deps.submitRetryDelayMs ?? 1000) * 2 ** failures, 60_000);
      await sleep(
        delayMs * (0.8 + Math.random() * 0.4),
        undefined,
        deps.signal ? { signal: deps.signal } : {},
      );
    }
  }
}

/**
 * Runs a blob step (upload, reading results) until it succeeds: a storage error that outlasted the SDK's own
 * retries (RBAC still propagating, a network partition, a stalled download) must neither lose the batch nor
 * leave its events tracked forever. Each try has a deadline; the loop ends only on the abort signal.
 */
async function untilDone<T>(
  step: string,
  batchId: string,
  deps: Pick<BatchJobDeps, "signal" | "onEvent" | "submitRetryDelayMs" | "stepTimeoutMs">,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  for (let failures = 0; ; failures++) {
    deps.signal?.throwIfAborted();
    const deadline = AbortSignal.timeout(deps.stepTimeoutMs ?? 5 * 60_000);
    try {
      return await run(deps.signal ? AbortSignal.any([deps.signal, deadline]) : deadline);
    } catch (error) {
      deps.signal?.throwIfAborted();
      deps.onEvent?.({ type: "step_failed", batchId, step, error: (error as Error).message });
      const delayMs = Math.min((deps.submitRetryDelayMs ?? 1000) * 2 ** failures, 60_000);
      await sleep(
        delayMs * (0.8 + Math.random() * 0.4),
        undefined,
        deps.signal ? { signal: deps.signal } : {},
      );
    }
  }
}

/** Streams predictions.csv, matching each row to its event as it arrives. */
async function collectResults(
  batch: UploadedBatchRecord,
  jobId: string,
  outputPath: string,
  deps: BatchJobDeps,
  emit: (event: BatchJobEvent) => void,
): Promise<BatchResult> {
  // A read that fails halfway starts over with a fresh matcher: the whole file is read again.
  const { matched, malformedRows } = await untilDone(
    "read predictions",
    batch.batchId,
    deps,
    async (signal) => {
      const matcher = createBatchMatcher(batch.files);
      let malformed = 0;
      const stream = await deps.store.openPredictions(outputPath, signal);
      // A Completed job without output leaves every event without a prediction: all become dead letters.
      if (stream) {
        for await (const line of parsePredictions(stream)) {
          if (line.ok) matcher.add(line.row);
          else malformed++;
        }
      }
      return { matched: matcher.finish(), malformedRows: malformed };
    },
  );
  emit({
    type: "results_parsed",
    batchId: batch.batchId,
    jobId,
    predicted: matched.predictions.length,
    missing: matched.missing.length,
    malformedRows,
    unmatchedRows: matched.unmatchedRows,
    duplicateRows: matched.duplicateRows,
  });
  return {
    kind: "scored",
    batch,
    jobId,
    predictions: matched.predictions,
    missing: matched.missing,
    predictedAt: new Date(),
  };
}
