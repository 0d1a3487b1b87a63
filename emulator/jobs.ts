/**
 * The job store and the job state machine. A job's status is computed from the time elapsed since it was created
 * (NotStarted, then Queued, then Running): no timer per job, so thousands of jobs cost nothing and a stopped emulator
 * leaves nothing behind. The end of a job is only acted on when someone looks (`observe`): the first look after the
 * run time finishes the job (scores it or fails it) before answering, so Completed always means the output exists.
 */
import { randomUUID } from "node:crypto";
import type { KnownJobStatus } from "../src/types.ts";
import type { JobFaultPlan } from "./faults.ts";

/** guide: the endpoint guide's `{"input_data": {"uri"}}` contract; v2: Azure ML's documented REST body. */
export type ApiFlavor = "guide" | "v2";

export type InputType = "UriFile" | "UriFolder";

export interface JobError {
  readonly code: string;
  readonly message: string;
}

/** What a job became when it finished. */
export interface JobOutcome {
  readonly status: "Completed" | "Failed";
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
  readonly status: KnownJobStatus;
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
  observe(job: JobRecord, finish: (job: JobRecord) => Promise<JobOutcome>): Promise<KnownJobStatus>;
  snapshots(): JobSnapshot[];
  /** Resolves when no job is finishing (so close() does not cut a write in half). */
  idle(): Promise<void>;
}

export type LifecyclePhase = "NotStarted" | "Queued" | "Running" | "Due";

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
  readonly now?: () => number;
}): JobStore {
  const now = timing.now ?? Date.now;
  const jobs = new Map<string, JobRecord>();
  const byRepeatability = new Map<string, JobRecord>();

  function phase(job: JobRecord): LifecyclePhase {
    return phaseAt(now() - job.createdAtMs, timing.coldStartMs, timing.runMs, job.faults.outcome === "stuck");
  }

  /** Status without side effects: a job whose time is up but which nobody has looked at yet is still Running. */
  function statusOf(job: JobRecord): KnownJobStatus {
    if (job.outcome !== undefined) return job.outcome.status;
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
      };
      jobs.set(id, job);
      if (job.repeatabilityId !== null) byRepeatability.set(job.repeatabilityId, job);
      return job;
    },
    get: (id) => jobs.get(id),
    byRepeatabilityId: (id) => byRepeatability.get(id),
    async observe(job, finish) {
      if (job.outcome !== undefined) return job.outcome.status;
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
