/**
 * The one retry policy of the pipeline's own steps: blob steps, submitting a job after an endpoint outage,
 * publishing outcomes, committing offsets. HTTP requests are retried below this by the Azure SDK's own
 * retry policy (endpoint) and the storage SDK's (blobs); this policy handles what outlasts those.
 *
 * A policy is exponential backoff with a cap and jitter, an optional bound on attempts, and a
 * classification: an error the policy calls not retriable ends the run at once (docs/architecture.md,
 * "Retries"). Every wait ends early on the caller's abort signal, and every failure is told to the
 * caller's `onRetry`, so no loop is silent.
 */
import { setTimeout as sleep } from "node:timers/promises";

export interface RetryPolicyOptions {
  /** Wait after the first failure, in ms; it doubles with each further failure. */
  readonly initialDelayMs: number;
  /** Longest wait between two tries, in ms. */
  readonly maxDelayMs: number;
  /** Each wait is spread by ±jitter (a fraction), so retries of many callers do not come in lockstep. Default 0.2. */
  readonly jitter?: number;
  /** Tries in all, the first included. Default: no bound (the run ends on success, a non-retriable error or abort). */
  readonly maxAttempts?: number;
  /** Whether another try can help. Default: every error is retriable. */
  readonly isRetriable?: (error: unknown) => boolean;
}

/** Told before each wait: which try failed, why, and how long until the next. */
export interface RetryAttempt {
  /** 1 for the first try. */
  readonly attempt: number;
  readonly error: unknown;
  readonly delayMs: number;
}

export interface RetryRunOptions {
  /** This run's classification, where the caller knows better what its errors mean. Default: the policy's. */
  readonly isRetriable?: (error: unknown) => boolean;
  /** Ends the run: the current wait stops and run rejects with the signal's reason. */
  readonly abortSignal?: AbortSignal;
  /** Deadline of each try, in ms: the try's own signal aborts then (a hung download must not hold the run). */
  readonly attemptTimeoutMs?: number;
  readonly onRetry?: (attempt: RetryAttempt) => void;
}

/** What each try is given: its number and a signal that aborts on the caller's abort or the try's deadline. */
export interface RetryContext {
  readonly attempt: number;
  readonly abortSignal: AbortSignal;
}

export interface RetryPolicy {
  /**
   * Runs the operation until it succeeds. Rejects with the operation's error when that error is not
   * retriable or the attempts are spent, and with the abort reason when the caller aborts.
   */
  run<T>(operation: (context: RetryContext) => Promise<T>, options?: RetryRunOptions): Promise<T>;
  /** The wait after `failures` failed tries (1 or more), jitter included. */
  delayMs(failures: number): number;
}

function requirePositive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number`);
}

export function createRetryPolicy(options: RetryPolicyOptions): RetryPolicy {
  requirePositive("initialDelayMs", options.initialDelayMs);
  requirePositive("maxDelayMs", options.maxDelayMs);
  const jitter = options.jitter ?? 0.2;
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError("jitter must be between 0 and 1");
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  if (
    !(maxAttempts === Number.POSITIVE_INFINITY || (Number.isSafeInteger(maxAttempts) && maxAttempts >= 1))
  ) {
    throw new RangeError("maxAttempts must be a positive integer");
  }
  const retriableByDefault = options.isRetriable ?? (() => true);

  const delayMs = (failures: number) => {
    // 2 ** failures overflows to Infinity long before a run could count that high; min() keeps it capped.
    const base = Math.min(options.initialDelayMs * 2 ** Math.max(0, failures - 1), options.maxDelayMs);
    return base * (1 - jitter + Math.random() * 2 * jitter);
  };

  return {
    delayMs,
    async run(operation, runOptions = {}) {
      const { abortSignal, attemptTimeoutMs, onRetry } = runOptions;
      if (attemptTimeoutMs !== undefined) requirePositive("attemptTimeoutMs", attemptTimeoutMs);
      const isRetriable = runOptions.isRetriable ?? retriableByDefault;
      for (let attempt = 1; ; attempt++) {
        abortSignal?.throwIfAborted();
        const signals = [abortSignal, attemptTimeoutMs ? AbortSignal.timeout(attemptTimeoutMs) : undefined];
        const present = signals.filter((s): s is AbortSignal => s !== undefined);
        const trySignal = present.length === 1 ? (present[0] as AbortSignal) : AbortSignal.any(present);
        try {
          return await operation({ attempt, abortSignal: trySignal });
        } catch (error) {
          // An abort by the caller is no failure of the operation: it ends the run as it is.
          abortSignal?.throwIfAborted();
          if (attempt >= maxAttempts || !isRetriable(error)) throw error;
          const wait = delayMs(attempt);
          try {
            onRetry?.({ attempt, error, delayMs: wait });
          } catch {
            // A throwing listener must not end the run (kafkajs instrumentation does the same).
          }
          await sleep(wait, undefined, abortSignal ? { signal: abortSignal } : {}).catch(() => {
            abortSignal?.throwIfAborted();
          });
        }
      }
    },
  };
}
