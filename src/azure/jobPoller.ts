import type { EndpointClient, JobState } from "./endpointClient.ts";
import { isKnownJobStatus, isTerminalJobStatus } from "./jobStatus.ts";

export interface JobOutcome {
  readonly jobId: string;
  /**
   * Completed, Failed or Canceled as the service said; TimedOut when the job outlived its timeout; Lost when
   * the service no longer knows a job it knew (it answered 404 several reads in a row for a job seen before).
   */
  readonly status: "Completed" | "Failed" | "Canceled" | "TimedOut" | "Lost";
  readonly error?: JobState["error"];
  readonly durationMs: number;
}

export interface JobPollerOptions {
  readonly client: Pick<EndpointClient, "getJob">;
  /** Mean time between two status reads of one job. */
  readonly pollIntervalMs: number;
  /** Each interval is spread by ±jitter (a fraction) so many jobs do not poll in lockstep. Default 0.2. */
  readonly jitter?: number;
  /** 404 answers in a row, for a job seen before, after which it is Lost. Default 3. */
  readonly lostAfterNotFound?: number;
  /** Status reads in flight at once, across all jobs. Default 4. */
  readonly maxConcurrentPolls?: number;
  /** Instrumentation (src/observability/instrumentation.ts): status changes and failed reads. */
  readonly onEvent?: (event: PollerEvent) => void;
  readonly now?: () => number;
}

/** What the poller reports. A failed read (after the HTTP pipeline's own retries) does not stop the polling. */
export type PollerEvent =
  | { readonly type: "status_changed"; readonly jobId: string; readonly status: string }
  /** Every read that got an answer; a 404 reads as Unknown (notFound). */
  | {
      readonly type: "status_read";
      readonly jobId: string;
      readonly status: string;
      readonly notFound?: boolean;
    }
  /** A status none of KNOWN_JOB_STATUSES (src/azure/jobStatus.ts): told once per status, then treated as running. */
  | { readonly type: "unknown_status"; readonly jobId: string; readonly status: string }
  | { readonly type: "poll_failed"; readonly jobId: string; readonly error: unknown };

export interface WatchOptions {
  /** The job counts as TimedOut this long after submittedAtMs. */
  readonly timeoutMs: number;
  /** Default: now. */
  readonly submittedAtMs?: number;
  /** The job is known to have existed (resumed from the ledger): a 404 counts towards Lost from the first. */
  readonly existed?: boolean;
  /** Stops this watch: its promise rejects with the signal's reason; other watchers of the job go on. */
  readonly abortSignal?: AbortSignal;
}

export interface JobPoller {
  /** Resolves when the job reaches a terminal status or its deadline, whichever comes first. */
  watch(jobId: string, options: WatchOptions): Promise<JobOutcome>;
  watching(): number;
  /** Stops polling; pending watches reject. */
  close(): void;
}

interface Watched {
  readonly jobId: string;
  readonly submittedAtMs: number;
  readonly deadlineMs: number;
  nextPollAtMs: number;
  lastStatus: string | undefined;
  /** A read found the job (or it was known to exist): 404s count towards Lost from then on. */
  seen: boolean;
  notFoundInARow: number;
  polling: boolean;
  readonly outcome: Promise<JobOutcome>;
  /** Watchers still waiting: when the last one aborts, the job is no longer polled. */
  watchers: number;
  resolve(outcome: JobOutcome): void;
  reject(error: Error): void;
}

/**
 * One scheduler for every running job (docs/architecture.md, invariant 6): a single timer armed for the earliest due poll,
 * jittered intervals, a bound on concurrent reads. Unknown statuses are not terminal; every job has a deadline.
 */
export function createJobPoller(options: JobPollerOptions): JobPoller {
  const now = options.now ?? Date.now;
  const jitter = options.jitter ?? 0.2;
  const maxConcurrent = options.maxConcurrentPolls ?? 4;
  const lostAfterNotFound = options.lostAfterNotFound ?? 3;
  const jobs = new Map<string, Watched>();
  // Statuses never heard of, told once each; bounded, so a service that sends ever new strings cannot grow it.
  const unknownStatuses = new Set<string>();
  const maxUnknownStatuses = 100;
  let timer: NodeJS.Timeout | undefined;
  let inFlight = 0;
  let closed = false;

  const emit = (event: PollerEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A throwing listener must not break the schedule (kafkajs instrumentation does the same).
    }
  };

  const interval = () => options.pollIntervalMs * (1 - jitter + Math.random() * 2 * jitter);

  const finish = (job: Watched, outcome: Omit<JobOutcome, "jobId" | "durationMs">) => {
    jobs.delete(job.jobId);
    job.resolve({ jobId: job.jobId, durationMs: now() - job.submittedAtMs, ...outcome });
  };

  const poll = async (job: Watched) => {
    job.polling = true;
    inFlight++;
    try {
      // A read hanging past the job's deadline must not delay its timeout.
      const state = await options.client.getJob(job.jobId, {
        abortSignal: AbortSignal.timeout(Math.max(1, job.deadlineMs - now())),
      });
      if (state.notFound === true) {
        if (job.seen && ++job.notFoundInARow >= lostAfterNotFound) {
          finish(job, {
            status: "Lost",
            error: {
              code: "NotFound",
              message: `the endpoint answered 404 ${job.notFoundInARow} times in a row for a job it knew`,
            },
          });
          return;
        }
      } else {
        job.seen = true;
        job.notFoundInARow = 0;
      }
      emit({
        type: "status_read",
        jobId: job.jobId,
        status: state.status,
        ...(state.notFound === true ? { notFound: true } : {}),
      });
      if (
        !isKnownJobStatus(state.status) &&
        !unknownStatuses.has(state.status) &&
        unknownStatuses.size < maxUnknownStatuses
      ) {
        unknownStatuses.add(state.status);
        emit({ type: "unknown_status", jobId: job.jobId, status: state.status });
      }
      if (state.status !== job.lastStatus) {
        job.lastStatus = state.status;
        emit({ type: "status_changed", jobId: job.jobId, status: state.status });
      }
      if (isTerminalJobStatus(state.status)) {
        finish(job, {
          status: state.status as JobOutcome["status"],
          ...(state.error ? { error: state.error } : {}),
        });
        return;
      }
    } catch (error) {
      emit({ type: "poll_failed", jobId: job.jobId, error });
    } finally {
      job.polling = false;
      inFlight--;
    }
    if (!jobs.has(job.jobId)) return;
    if (now() >= job.deadlineMs) {
      finish(job, {
        status: "TimedOut",
        error: {
          code: "Timeout",
          message: `no terminal status after ${job.deadlineMs - job.submittedAtMs} ms (last: ${job.lastStatus ?? "none"})`,
        },
      });
      return;
    }
    job.nextPollAtMs = Math.min(now() + interval(), job.deadlineMs);
  };

  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (closed) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const job of jobs.values()) if (!job.polling) earliest = Math.min(earliest, job.nextPollAtMs);
    if (earliest === Number.POSITIVE_INFINITY) return;
    timer = setTimeout(tick, Math.max(0, earliest - now()));
  };

  const tick = () => {
    timer = undefined;
    const due = [...jobs.values()]
      .filter((job) => !job.polling && job.nextPollAtMs <= now())
      .sort((a, b) => a.nextPollAtMs - b.nextPollAtMs);
    for (const job of due) {
      if (inFlight >= maxConcurrent) break;
      void poll(job).finally(arm);
    }
    // Jobs left due for want of a slot are picked up when a poll ends (arm runs then).
    if (inFlight < maxConcurrent) arm();
  };

  return {
    watch(jobId, watchOptions) {
      if (closed) return Promise.reject(new Error("job poller is closed"));
      const abortSignal = watchOptions.abortSignal;
      if (abortSignal?.aborted) return Promise.reject(abortSignal.reason);
      // A second watcher of the same job shares its reads and its outcome.
      let job = jobs.get(jobId);
      if (!job) {
        const { promise, resolve, reject } = Promise.withResolvers<JobOutcome>();
        const submittedAtMs = watchOptions.submittedAtMs ?? now();
        job = {
          jobId,
          submittedAtMs,
          deadlineMs: submittedAtMs + watchOptions.timeoutMs,
          // First read soon after submission: a bad job can fail at once.
          nextPollAtMs: now() + Math.min(interval(), 1000),
          lastStatus: undefined,
          seen: watchOptions.existed === true,
          notFoundInARow: 0,
          polling: false,
          outcome: promise,
          watchers: 0,
          resolve,
          reject,
        };
        jobs.set(jobId, job);
        arm();
      }
      const watched = job;
      watched.watchers++;
      if (!abortSignal) return watched.outcome;
      return new Promise<JobOutcome>((resolve, reject) => {
        const onAbort = () => {
          reject(abortSignal.reason);
          // The last watcher gone: stop reading the job's status (the job itself runs on at the service).
          if (--watched.watchers === 0 && jobs.get(jobId) === watched) jobs.delete(jobId);
        };
        abortSignal.addEventListener("abort", onAbort, { once: true });
        watched.outcome
          .then(resolve, reject)
          .finally(() => abortSignal.removeEventListener("abort", onAbort));
      });
    },
    watching: () => jobs.size,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const job of jobs.values()) job.reject(new Error(`stopped watching job ${job.jobId}`));
      jobs.clear();
    },
  };
}
