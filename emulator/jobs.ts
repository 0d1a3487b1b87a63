/**
 * The job store and the job state machine. A job's status is computed from the time elapsed since it was created
 * (NotStarted, then Queued, then Running): no timer per job, so thousands of jobs cost nothing and a stopped emulator
 * leaves nothing behind. The end of a job is only acted on when someone looks (`observe`): the first look after the
 * run time finishes the job (scores it or fails it) before answering, so Completed always means the output exists.
 */
import { randomUUID } from "node:crypto";
import type { JobFaultPlan } from "./faults.ts";

/** guide: the endpoint guide's `{"input_data": {"uri"}}` contract; v2: Azure ML's documented REST body. */
export type ApiFlavor = "guide" | "v2";

export type InputType = "UriFile" | "UriFolder";

/** The service's error shape: code and message, with nested details (often naming a target). */
export interface JobError {
  readonly code: string;
  readonly message: string;
  readonly target?: string;
  readonly details?: readonly JobError[];
}

/**
 * A job's status as the service reports it: a documented one, or (with the statusJourney fault) any string,
 * as a newer service version could send.
 */
export type JobStatus = string;

/** What a job became when it finished. */
export interface JobOutcome {
  readonly status: "Completed" | "Failed" | "Canceled";
  readonly error?: JobError;
  /** Valid input rows read. */
  readonly rowsRead?: number;
  /** Input rows skipped as invalid (no store_id, non-numeric features), like a failed mini-batch. */
  readonly rowsSkipped?: number;
  /** Prediction rows written to predictions.csv (junk lines not included). */
  readonly rowsWritten?: number;
}

/** A job as tests and the admin API see it. */
export interface JobSnapshot {
  /** The job name, `batchjob-<uuid>`. */
  readonly id: string;
  readonly flavor: ApiFlavor;
  readonly status: JobStatus;
  readonly inputUri: string;
  /** v2 only: the declared input type; guide jobs detect file or folder. */
  readonly inputType?: InputType;
  readonly outputContainer: string;
  /** Blob path of predictions.csv inside outputContainer. */
  readonly outputBlobPath: string;
  readonly repeatabilityId: string | null;
  readonly createdAtMs: number;
  readonly finishedAtMs?: number;
  /** How many POSTs mapped to this job (1 + repeats with the same repeatability id). */
  readonly submitCount: number;
  /** How many GET /jobs/{name} this job answered. */
  readonly statusPolls: number;
  /** How many ARM GETs of the job this job answered. */
  readonly armStatusPolls: number;
  /** How many ARM cancel requests named this job (each answered 202). */
  readonly cancelRequests: number;
  /** When the first cancel of a running job was accepted: CancelRequested from then, for cancelMs. */
  readonly cancelRequestedAtMs?: number;
  readonly faults: JobFaultPlan;
  readonly error?: JobError;
  readonly rowsRead?: number;
  readonly rowsSkipped?: number;
  readonly rowsWritten?: number;
}

/** The mutable record behind a snapshot; only the store and the server touch it. */
export interface JobRecord
  extends Pick<
    JobSnapshot,
    | "id"
    | "flavor"
    | "inputUri"
    | "inputType"
    | "outputContainer"
    | "outputBlobPath"
    | "repeatabilityId"
    | "createdAtMs"
    | "faults"
  > {
  submitCount: number;
  statusPolls: number;
  armStatusPolls: number;
  cancelRequests: number;
  cancelRequestedAtMs?: number;
  outcome?: JobOutcome;
  finishedAtMs?: number;
  /** The finishing work while it runs: concurrent polls of a job wait for the same one. */
  finishing?: Promise<JobOutcome>;
}

export interface NewJob {
  readonly flavor: ApiFlavor;
  readonly inputUri: string;
  readonly inputType?: InputType;
  readonly outputContainer: string;
  /** The output path, or a template in which `{jobId}` is replaced by the job name. */
  readonly outputBlobPath: string;
  readonly repeatabilityId: string | null;
  readonly faults: JobFaultPlan;
}

export interface JobStore {
  create(job: NewJob): JobRecord;
  get(id: string): JobRecord | undefined;
  byRepeatabilityId(repeatabilityId: string): JobRecord | undefined;
  /**
   * The job's status now, finishing it first if its run time is over and it has not finished yet.
   * `finish` does the work (score, or fail) and must not throw: failures are outcomes.
   */
  observe(job: JobRecord, finish: (job: JobRecord) => Promise<JobOutcome>): Promise<JobStatus>;
  /**
   * A cancel request: a job not yet ended (nor being finished) goes to CancelRequested, then Canceled after
   * cancelMs; for a job that has ended it changes nothing (the service treats it as a no-op). Returns whether
   * the job was still running.
   */
  cancel(job: JobRecord): boolean;
  snapshots(): JobSnapshot[];
  /** Resolves when no job is finishing (so close() does not cut a write in half). */
  idle(): Promise<void>;
}

export type LifecyclePhase = "NotStarted" | "Queued" | "Running" | "Due";

/**
 * The status of a job on a status journey (statusJourney fault) `elapsedMs` into its life: the journey's
 * statuses share coldStartMs + runMs evenly, in order; a stuck job stays on the last one. Undefined once due.
 */
export function journeyStatusAt(
  elapsedMs: number,
  coldStartMs: number,
  runMs: number,
  journey: readonly string[],
  stuck: boolean,
): string | undefined {
  const total = coldStartMs + runMs;
  if (elapsedMs >= total && !stuck) return undefined;
  if (total <= 0) return journey[journey.length - 1];
  const index = Math.min(journey.length - 1, Math.floor((elapsedMs * journey.length) / total));
  return journey[index];
}

/**
 * Where a job is in its life after `elapsedMs`: coldStartMs is split evenly between NotStarted and Queued, then runMs
 * Running, then Due (finished, once someone looks). A stuck job never becomes Due.
 */
export function phaseAt(
  elapsedMs: number,
  coldStartMs: number,
  runMs: number,
  stuck: boolean,
): LifecyclePhase {
  if (elapsedMs < coldStartMs / 2) return "NotStarted";
  if (elapsedMs < coldStartMs) return "Queued";
  if (stuck || elapsedMs < coldStartMs + runMs) return "Running";
  return "Due";
}

export function createJobStore(timing: {
  readonly coldStartMs: number;
  readonly runMs: number;
  /** Time a cancelled job spends in CancelRequested before Canceled. Default 0. */
  readonly cancelMs?: number;
  readonly now?: () => number;
}): JobStore {
  const cancelMs = timing.cancelMs ?? 0;
  const now = timing.now ?? Date.now;
  const jobs = new Map<string, JobRecord>();
  const byRepeatability = new Map<string, JobRecord>();

  function phase(job: JobRecord): LifecyclePhase {
    return phaseAt(now() - job.createdAtMs, timing.coldStartMs, timing.runMs, job.faults.outcome === "stuck");
  }

  function cancelDone(job: JobRecord): boolean {
    return job.cancelRequestedAtMs !== undefined && now() >= job.cancelRequestedAtMs + cancelMs;
  }

  /** Status without side effects: a job whose time is up but which nobody has looked at yet is still Running. */
  function statusOf(job: JobRecord): JobStatus {
    if (job.outcome !== undefined) return job.outcome.status;
    if (job.cancelRequestedAtMs !== undefined) return cancelDone(job) ? "Canceled" : "CancelRequested";
    const journey = job.faults.journey;
    if (journey !== undefined && journey.length > 0) {
      const status = journeyStatusAt(
        now() - job.createdAtMs,
        timing.coldStartMs,
        timing.runMs,
        journey,
        job.faults.outcome === "stuck",
      );
      if (status !== undefined) return status;
    }
    const p = phase(job);
    return p === "Due" ? "Running" : p;
  }

  return {
    create(input) {
      const id = `batchjob-${randomUUID()}`;
      const job: JobRecord = {
        ...input,
        id,
        outputBlobPath: input.outputBlobPath.replaceAll("{jobId}", id),
        createdAtMs: now(),
        submitCount: 1,
        statusPolls: 0,
        armStatusPolls: 0,
        cancelRequests: 0,
      };
      jobs.set(id, job);
      if (job.repeatabilityId !== null) byRepeatability.set(job.repeatabilityId, job);
      return job;
    },
    get: (id) => jobs.get(id),
    byRepeatabilityId: (id) => byRepeatability.get(id),
    cancel(job) {
      job.cancelRequests++;
      if (job.outcome !== undefined || job.finishing !== undefined || job.cancelRequestedAtMs !== undefined)
        return false;
      job.cancelRequestedAtMs = now();
      return true;
    },
    async observe(job, finish) {
      if (job.outcome !== undefined) return job.outcome.status;
      if (job.cancelRequestedAtMs !== undefined) {
        if (!cancelDone(job)) return "CancelRequested";
        job.outcome = { status: "Canceled" };
        job.finishedAtMs = job.cancelRequestedAtMs + cancelMs;
        return "Canceled";
      }
      if (phase(job) !== "Due") return statusOf(job);
      if (job.finishing === undefined) {
        job.finishing = finish(job)
          .catch(
            (error: unknown): JobOutcome => ({
              status: "Failed",
              error: { code: "SystemError", message: `emulator failed to finish the job: ${String(error)}` },
            }),
          )
          .then((outcome) => {
            job.outcome = outcome;
            job.finishedAtMs = now();
            return outcome;
          });
      }
      return (await job.finishing).status;
    },
    snapshots() {
      return [...jobs.values()].map((job) => {
        const snapshot: JobSnapshot = {
          id: job.id,
          flavor: job.flavor,
          status: statusOf(job),
          inputUri: job.inputUri,
          ...(job.inputType === undefined ? {} : { inputType: job.inputType }),
          outputContainer: job.outputContainer,
          outputBlobPath: job.outputBlobPath,
          repeatabilityId: job.repeatabilityId,
          createdAtMs: job.createdAtMs,
          ...(job.finishedAtMs === undefined ? {} : { finishedAtMs: job.finishedAtMs }),
          submitCount: job.submitCount,
          statusPolls: job.statusPolls,
          armStatusPolls: job.armStatusPolls,
          cancelRequests: job.cancelRequests,
          ...(job.cancelRequestedAtMs === undefined ? {} : { cancelRequestedAtMs: job.cancelRequestedAtMs }),
          faults: job.faults,
          ...(job.outcome?.error === undefined ? {} : { error: job.outcome.error }),
          ...(job.outcome?.rowsRead === undefined ? {} : { rowsRead: job.outcome.rowsRead }),
          ...(job.outcome?.rowsSkipped === undefined ? {} : { rowsSkipped: job.outcome.rowsSkipped }),
          ...(job.outcome?.rowsWritten === undefined ? {} : { rowsWritten: job.outcome.rowsWritten }),
        };
        return snapshot;
      });
    },
    async idle() {
      const pending = [...jobs.values()].flatMap((job) =>
        job.finishing !== undefined && job.outcome === undefined ? [job.finishing] : [],
      );
      await Promise.allSettled(pending);
    },
  };
}
