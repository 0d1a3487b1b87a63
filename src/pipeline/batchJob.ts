/**
 * A batch's job, from sealed batch to result: upload -> submit -> watch -> read predictions.csv. It never
 * publishes or commits: the coordinator does, from the BatchResult (docs/architecture.md, invariant 2).
 */
import { createHash } from "node:crypto";
import type { BatchStore } from "../azure/blobStore.ts";
import type { EndpointClient } from "../azure/endpointClient.ts";
import { describeServiceError, EndpointError } from "../azure/errors.ts";
import type { CancelReason } from "../azure/jobCanceller.ts";
import { type JobInputOptions, jobInput } from "../azure/jobInput.ts";
import type { JobOutcome, JobPoller } from "../azure/jobPoller.ts";
import type { ApiFlavor } from "../azure/settings.ts";
import {
  packMembers,
  packMembersStepwise,
  planBatchFilesStepwise,
  serializeBatchFileSlices,
} from "../batcher/index.ts";
import { createBatchMatcher } from "../results/matchPredictions.ts";
import { parsePredictionChunks } from "../results/parsePredictions.ts";
import type { RetryPolicy } from "../retry.ts";
import type { BatchMember, BatchResult, SealedBatch, UploadedBatch, UploadedFile } from "../types.ts";
import type { JobSettings } from "./settings.ts";

/** Instrumentation of a batch's life (docs/architecture.md, invariant 7): each step is an event. */
export type BatchJobEvent =
  | { type: "uploaded"; batchId: string; files: number; bytes: number; durationMs: number; folderUri: string }
  | { type: "submitted"; batchId: string; jobId: string; attempt: number }
  /** A job submitted before a restart or rebalance, found in the ledger and watched again. */
  | { type: "resumed"; batchId: string; jobId: string; attempt: number }
  /** retriable: the connector submits again (an endpoint outage); false: the request was rejected for this batch. */
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
      /** Rows that matched no event, duplicates included. */
      unmatchedRows: number;
      /** Of unmatchedRows, the extra rows for an event already matched. */
      duplicateRows: number;
    };

export interface BatchJobOptions extends JobSettings {
  readonly store: BatchStore;
  readonly endpoint: Pick<EndpointClient, "submitJob">;
  readonly poller: JobPoller;
  readonly apiFlavor: ApiFlavor;
  /** v2 flavor: how the job's input is named (https or azureml://, folder or single file). Default: https folder. */
  readonly jobInput?: JobInputOptions;
  /**
   * Asks the service to cancel a job that timed out (before the next attempt) or whose batch is given up;
   * fire and forget (src/azure/jobCanceller.ts). Never called on abort: those jobs are resumed elsewhere.
   */
  readonly cancelJob?: (jobId: string, context: { batchId: string; reason: CancelReason }) => void;
  /** Paces blob steps that outlasted the storage SDK's retries, and resubmission after an endpoint outage. */
  readonly retry: RetryPolicy;
  /** Deadline of one try of a blob step (upload, reading results). Default 5 minutes. */
  readonly stepTimeoutMs?: number;
  readonly onEvent?: (event: BatchJobEvent) => void;
}

/** Per-call options. Aborting ends the batch's work: it rejects, and its events stay uncommitted. */
export interface BatchJobCallOptions {
  readonly abortSignal?: AbortSignal;
}

/** A job's state as the ledger records it (docs/architecture.md, invariant 13). */
export interface JobProgress {
  readonly state: "intent" | "submitted";
  readonly attempt: number;
  readonly repeatabilityId: string;
  readonly jobId?: string;
  readonly submittedAtMs?: number;
}

export interface ScoreOptions extends BatchJobCallOptions {
  /**
   * Records the job's intent before each submission and its job id after it, durably; the submission waits
   * for it. A throw ends the batch's work (e.g. none of its partitions is this member's any more).
   */
  readonly record?: (progress: JobProgress) => Promise<void>;
  /** Resumes a batch found in the ledger: at this attempt, and with this job when it was submitted. */
  readonly resume?: { readonly attempt: number; readonly jobId?: string; readonly submittedAtMs?: number };
}

export interface BatchJobRunner {
  /**
   * Writes a sealed batch's files. The sealed batch (every feature row) is not referenced once this
   * resolves, so the features live in the blob only while the job runs for minutes (invariant 8): that is
   * why upload and scoring are two steps.
   */
  upload(batch: SealedBatch, options?: BatchJobCallOptions): Promise<UploadedBatch>;
  /** Rebuilds an uploaded batch from its manifest (a batch resumed from the ledger); undefined when it is gone. */
  restore(manifestPath: string, options?: BatchJobCallOptions): Promise<UploadedBatch | undefined>;
  /**
   * Runs an uploaded batch's job and reads its results. Failed or timed-out jobs are resubmitted up to
   * maxAttempts; then the batch is reported failed. A submission the endpoint cannot take right now is
   * retried without spending an attempt.
   */
  score(batch: UploadedBatch, options?: ScoreOptions): Promise<BatchResult>;
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
 * HTTP statuses that say the request itself is wrong for this batch (bad input URI or body): resending it
 * cannot help, so the batch fails at once. Anything else (401/403 while a role assignment is fixed, 404 of a
 * redeployed endpoint, throttling, 5xx, network) is about the endpoint, not the batch.
 */
const BATCH_REJECTED_STATUSES: ReadonlySet<number> = new Set([400, 409, 413, 415, 422]);

/**
 * Rejected: the request is wrong for this batch (a 4xx in the list), or the answer was unusable (a 2xx
 * without a job id): sending the same request again would get the same answer.
 */
function isRejection(error: unknown): boolean {
  return (
    error instanceof EndpointError &&
    (BATCH_REJECTED_STATUSES.has(error.status ?? 0) ||
      (!error.retriable && (error.status === undefined || error.status < 300)))
  );
}

/** A batch's manifest: every file with its events in file order, as [partition, offset, timestampMs, storeId]. */
interface Manifest {
  readonly v: 1;
  readonly batchId: string;
  readonly topic: string;
  readonly folderUri: string;
  readonly files: ReadonlyArray<{
    readonly fileName: string;
    readonly blobPath: string;
    readonly members: ReadonlyArray<readonly [number, string, number, string]>;
  }>;
}

/** Events laid out (planned, serialised, packed, written to the manifest) between two turns of the event loop. */
const EVENTS_PER_TURN = 16_384;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Drives a stepwise generator (src/batcher/files.ts), giving the event loop a turn at each of its steps. */
async function stepwise<T>(steps: Generator<void, T>): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
    await nextTurn();
  }
}

/**
 * The manifest's JSON (the Manifest shape, as JSON.stringify would write it), EVENTS_PER_TURN members at a
 * time: a million-event batch's manifest is tens of MiB.
 */
function* manifestText(
  batchId: string,
  topic: string,
  folderUri: string,
  files: readonly UploadedFile[],
  members: readonly BatchMember[],
): Generator<void, Buffer> {
  const json = JSON.stringify;
  const head = `{"v":1,"batchId":${json(batchId)},"topic":${json(topic)},"folderUri":${json(folderUri)}`;
  const parts: string[] = [`${head},"files":[`];
  let sinceTurn = 0;
  for (let f = 0; f < files.length; f++) {
    const file = files[f] as UploadedFile;
    const open = `{"fileName":${json(file.fileName)},"blobPath":${json(file.blobPath)},"members":[`;
    parts.push(f > 0 ? `,${open}` : open);
    const indexes = file.memberIndexes;
    let slice: string[] = [];
    for (let k = 0; k < indexes.length; k++) {
      const { source, storeId } = members[indexes[k] as number] as BatchMember;
      const tuple = `[${source.partition},${json(source.offset)},${json(source.timestampMs)},${json(storeId)}]`;
      slice.push(k > 0 ? `,${tuple}` : tuple);
      if (++sinceTurn === EVENTS_PER_TURN) {
        parts.push(slice.join(""));
        slice = [];
        sinceTurn = 0;
        yield;
      }
    }
    parts.push(slice.join(""), "]}");
  }
  parts.push("]}");
  return Buffer.from(parts.join(""), "utf8");
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function createBatchJobRunner(options: BatchJobOptions): BatchJobRunner {
  const { store, endpoint, poller, retry } = options;
  const emit = (event: BatchJobEvent) => options.onEvent?.(event);
  const stepTimeoutMs = options.stepTimeoutMs ?? 5 * 60_000;

  /**
   * A blob step (upload, reading results) until it succeeds: a storage error that outlasted the SDK's own
   * retries (RBAC still propagating, a network partition, a stalled download) must neither lose the batch
   * nor leave its events tracked forever. Each try has a deadline; the run ends only on the abort signal.
   */
  const blobStep = <T>(
    step: string,
    batchId: string,
    call: BatchJobCallOptions,
    run: (abortSignal: AbortSignal) => Promise<T>,
  ): Promise<T> =>
    retry.run(({ abortSignal }) => run(abortSignal), {
      ...call,
      attemptTimeoutMs: stepTimeoutMs,
      onRetry: ({ error }) => emit({ type: "step_failed", batchId, step, error: errorMessage(error) }),
    });

  /**
   * Submits one attempt. The HTTP pipeline has already retried transient failures; when even that fails
   * and the fault is the endpoint's, the batch waits and tries again with the same repeatability id, rather
   * than dead-lettering events for an outage: flow control pauses the input meanwhile, and the errors are
   * in the logs and in forecast_connector_jobs_failed_total{reason="submit_error"}. Ends on the abort signal.
   */
  const submit = async (
    batch: UploadedBatch,
    attempt: number,
    v2OutputPath: string,
    call: BatchJobCallOptions,
  ): Promise<{ ok: true; jobId: string } | { ok: false; detail: string }> => {
    const failed = (error: unknown, retriable: boolean) =>
      emit({
        type: "submit_failed",
        batchId: batch.batchId,
        attempt,
        error: (error as Error).message,
        retriable,
      });
    // The guide flavor's body has no input type: its input is always the folder's https URL.
    const input =
      options.apiFlavor === "v2"
        ? jobInput(batch, options.jobInput)
        : { uri: batch.folderUri, type: "UriFolder" as const };
    try {
      const state = await retry.run(
        ({ abortSignal }) =>
          endpoint.submitJob(
            {
              inputUri: input.uri,
              inputType: input.type,
              repeatabilityId: repeatabilityId(batch.batchId, attempt),
              ...(options.apiFlavor === "v2"
                ? { outputUri: `azureml://datastores/${options.outputDatastore}/paths/${v2OutputPath}` }
                : {}),
            },
            { abortSignal },
          ),
        { ...call, isRetriable: (error) => !isRejection(error), onRetry: ({ error }) => failed(error, true) },
      );
      return { ok: true, jobId: state.jobId };
    } catch (error) {
      call.abortSignal?.throwIfAborted();
      if (!isRejection(error)) throw error;
      failed(error, false);
      return { ok: false, detail: `submission rejected: ${errorMessage(error)}` };
    }
  };

  /** Streams predictions.csv, matching each row to its event as it arrives. */
  const collectResults = async (
    batch: UploadedBatch,
    jobId: string,
    outputPath: string,
    call: BatchJobCallOptions,
  ): Promise<BatchResult> => {
    // A read that fails halfway starts over with a fresh matcher: the whole file is read again.
    const { matched, malformedRows } = await blobStep(
      "read predictions",
      batch.batchId,
      call,
      async (signal) => {
        const matcher = createBatchMatcher(batch.members, batch.files);
        let malformed = 0;
        const stream = await store.openPredictions(outputPath, { abortSignal: signal });
        // A Completed job without output leaves every event without a prediction: all become dead letters.
        if (stream) {
          for await (const lines of parsePredictionChunks(stream)) {
            for (const line of lines) {
              if (line.ok) matcher.add(line.row);
              else malformed++;
            }
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
  };

  return {
    async upload(sealed, call = {}) {
      // A batch may hold up to a million events: it is laid out a slice at a time, with turns in between.
      const plan = await stepwise(planBatchFilesStepwise(sealed.batchId, sealed.members, EVENTS_PER_TURN));
      const bodies: Array<{ fileName: string; body: Buffer }> = [];
      for (const file of plan) {
        const pieces: Buffer[] = [];
        for (const piece of serializeBatchFileSlices(sealed.rowJson, file, EVENTS_PER_TURN)) {
          pieces.push(piece);
          await nextTurn();
        }
        bodies.push({
          fileName: file.fileName,
          body: pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces),
        });
      }
      const uploadStarted = Date.now();
      const uploaded = await blobStep("upload", sealed.batchId, call, (abortSignal) =>
        store.uploadBatch(sealed.batchId, bodies, { abortSignal }),
      );
      emit({
        type: "uploaded",
        batchId: sealed.batchId,
        files: plan.length,
        bytes: bodies.reduce((sum, f) => sum + f.body.length, 0),
        durationMs: Date.now() - uploadStarted,
        folderUri: uploaded.folderUri,
      });
      // From here on only the columns are kept (invariant 8): no object per event.
      const members = await stepwise(packMembersStepwise(sealed.members, EVENTS_PER_TURN));
      const files: UploadedFile[] = plan.map((file, i) => ({
        fileName: file.fileName,
        blobPath: uploaded.blobPaths[i] as string,
        memberIndexes: Uint32Array.from(file.memberIndexes),
      }));
      const manifest = await stepwise(
        manifestText(sealed.batchId, members.topic, uploaded.folderUri, files, sealed.members),
      );
      const manifestPath = await blobStep("upload manifest", sealed.batchId, call, (abortSignal) =>
        store.writeManifest(sealed.batchId, manifest, { abortSignal }),
      );
      return { batchId: sealed.batchId, members, files, folderUri: uploaded.folderUri, manifestPath };
    },

    async restore(manifestPath, call = {}) {
      const body = await blobStep("read manifest", manifestPath, call, (abortSignal) =>
        store.readManifest(manifestPath, { abortSignal }),
      );
      if (body === undefined) return undefined;
      const manifest = JSON.parse(body.toString("utf8")) as Manifest;
      // Every row of every file, with where it sits; member order only matters within a partition (offset
      // order), which sorting restores.
      const rows = manifest.files.flatMap((file, f) =>
        file.members.map(([partition, offset, timestampMs, storeId], k) => ({
          member: { source: { topic: manifest.topic, partition, offset, timestampMs }, storeId },
          offset: BigInt(offset),
          f,
          k,
        })),
      );
      rows.sort(
        (a, b) => a.member.source.partition - b.member.source.partition || (a.offset < b.offset ? -1 : 1),
      );
      const files: UploadedFile[] = manifest.files.map((file) => ({
        fileName: file.fileName,
        blobPath: file.blobPath,
        memberIndexes: new Uint32Array(file.members.length),
      }));
      rows.forEach((row, memberIndex) => {
        (files[row.f] as UploadedFile).memberIndexes[row.k] = memberIndex;
      });
      const members = packMembers(rows.map((row) => row.member));
      return { batchId: manifest.batchId, members, files, folderUri: manifest.folderUri, manifestPath };
    },

    async score(batch, scoreOptions = {}) {
      const { record, resume } = scoreOptions;
      const call: BatchJobCallOptions = scoreOptions.abortSignal
        ? { abortSignal: scoreOptions.abortSignal }
        : {};
      const firstAttempt = resume?.attempt ?? 1;
      let lastDetail = "";
      let lastJobId: string | undefined;
      for (let attempt = firstAttempt; attempt <= options.maxAttempts; attempt++) {
        if (attempt > firstAttempt)
          emit({ type: "resubmitting", batchId: batch.batchId, attempt, reason: lastDetail });
        // v2: the caller names the output location before the job exists, so {jobId} stands for batch + attempt.
        const v2OutputPath = store.outputPath({
          jobId: `${batch.batchId}-attempt${attempt}`,
          batchId: batch.batchId,
        });
        const id = repeatabilityId(batch.batchId, attempt);
        let jobId: string;
        let submittedAtMs: number;
        const resumedJobId = attempt === firstAttempt ? resume?.jobId : undefined;
        if (resumedJobId !== undefined) {
          // Submitted before a restart or rebalance: watch that job, never submit it again.
          jobId = resumedJobId;
          submittedAtMs = resume?.submittedAtMs ?? Date.now();
          emit({ type: "resumed", batchId: batch.batchId, jobId, attempt });
        } else {
          call.abortSignal?.throwIfAborted();
          await record?.({ state: "intent", attempt, repeatabilityId: id });
          const submitted = await submit(batch, attempt, v2OutputPath, call);
          if (!submitted.ok) {
            lastDetail = submitted.detail;
            break; // the endpoint rejected this batch's request as such: another attempt would be rejected too
          }
          jobId = submitted.jobId;
          submittedAtMs = Date.now();
          emit({ type: "submitted", batchId: batch.batchId, jobId, attempt });
          await record?.({ state: "submitted", attempt, repeatabilityId: id, jobId, submittedAtMs });
        }
        lastJobId = jobId;

        const outcome = await poller.watch(jobId, {
          timeoutMs: options.jobTimeoutMs,
          submittedAtMs,
          // A job resumed from the ledger existed: a 404 for it means the endpoint lost it.
          ...(resumedJobId !== undefined ? { existed: true } : {}),
          ...call,
        });
        emit({ type: "finished", batchId: batch.batchId, jobId, attempt, outcome });
        if (outcome.status !== "Completed") {
          // The service's own words (code, message, details) go to the dead letters' dlq.detail.
          lastDetail = `job ${jobId} ended ${outcome.status}${outcome.error ? `: ${describeServiceError(outcome.error)}` : ""}`;
          // A timed-out job still runs at the service: stop it, without waiting, before the next attempt or
          // for good. Failed and Canceled have ended; a Lost job is unknown to the service.
          if (outcome.status === "TimedOut") {
            options.cancelJob?.(jobId, {
              batchId: batch.batchId,
              reason: attempt < options.maxAttempts ? "timed_out" : "given_up",
            });
          }
          continue;
        }
        const outputPath =
          options.apiFlavor === "v2" ? v2OutputPath : store.outputPath({ jobId, batchId: batch.batchId });
        return collectResults(batch, jobId, outputPath, call);
      }
      return { kind: "failed", batch, ...(lastJobId ? { jobId: lastJobId } : {}), detail: lastDetail };
    },
  };
}
