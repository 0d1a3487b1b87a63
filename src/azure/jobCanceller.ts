/**
 * Cancels jobs the connector no longer wants, through ARM, without waiting: a cancel takes the job to
 * CancelRequested, which can last minutes before Canceled, and nothing the connector does depends on it. It
 * only stops the workspace's compute from working (and billing) for nothing. Each request is bounded by a
 * timeout and counted; none is made on shutdown: those jobs are resumed by the partitions' next owners
 * (docs/architecture.md, "Shutdown").
 */
import type { EndpointClient } from "./endpointClient.ts";
import { describeServiceError, EndpointError } from "./errors.ts";

/** Why a job is cancelled: it timed out and is resubmitted, or its batch was given up for good. */
export type CancelReason = "timed_out" | "given_up";

/** accepted/not_found/rejected: ARM's answer; failed: no answer after the pipeline's retries; timeout; aborted (close). */
export type CancelOutcome = "accepted" | "not_found" | "rejected" | "failed" | "timeout" | "aborted";

export type CancelEvent = {
  readonly type: "cancel_finished";
  readonly jobId: string;
  readonly batchId: string;
  readonly reason: CancelReason;
  readonly outcome: CancelOutcome;
  readonly durationMs: number;
  /** What ARM or the transport said, for the log: the service's code and message. */
  readonly detail?: string;
};

export interface JobCancellerOptions {
  readonly client: Pick<EndpointClient, "cancelJob">;
  /** Bound of one cancel request, the pipeline's retries (and their Retry-After waits) included. */
  readonly timeoutMs: number;
  readonly onEvent?: (event: CancelEvent) => void;
}

export interface JobCanceller {
  /** Fire and forget: returns at once; the outcome is only reported (onEvent). */
  cancel(jobId: string, context: { readonly batchId: string; readonly reason: CancelReason }): void;
  /** Cancels in flight. */
  pending(): number;
  /** Resolves when every cancel in flight has its outcome (tests). */
  idle(): Promise<void>;
  /** Aborts the cancels in flight (their outcome: aborted) and refuses new ones. */
  close(): void;
}

export function createJobCanceller(options: JobCancellerOptions): JobCanceller {
  const inFlight = new Set<Promise<void>>();
  const closing = new AbortController();

  const emit = (event: CancelEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A throwing listener must not turn a finished cancel into an unhandled rejection.
    }
  };

  const run = async (jobId: string, batchId: string, reason: CancelReason) => {
    const started = Date.now();
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const report = (outcome: CancelOutcome, detail?: string) =>
      emit({
        type: "cancel_finished",
        jobId,
        batchId,
        reason,
        outcome,
        durationMs: Date.now() - started,
        ...(detail ? { detail } : {}),
      });
    try {
      const result = await options.client.cancelJob(jobId, {
        abortSignal: AbortSignal.any([timeout, closing.signal]),
      });
      report(result.outcome, result.error ? describeServiceError(result.error) : undefined);
    } catch (error) {
      if (closing.signal.aborted) report("aborted");
      else if (timeout.aborted) report("timeout", `no answer within ${options.timeoutMs} ms`);
      else
        report(
          "failed",
          error instanceof EndpointError || error instanceof Error ? error.message : String(error),
        );
    }
  };

  return {
    cancel(jobId, { batchId, reason }) {
      if (closing.signal.aborted) return;
      const task = run(jobId, batchId, reason).finally(() => inFlight.delete(task));
      inFlight.add(task);
    },
    pending: () => inFlight.size,
    async idle() {
      await Promise.allSettled([...inFlight]);
    },
    close() {
      closing.abort(new Error("the connector is stopping"));
    },
  };
}
