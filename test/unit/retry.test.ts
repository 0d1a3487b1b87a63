/**
 * The retry policy of the pipeline's own steps (src/retry.ts): backoff with cap and jitter, the bound on
 * attempts, classification, abort, per-try deadlines and a throwing listener.
 *
 * Waits run under vitest's fake timers. The policy sleeps with `node:timers/promises`, which vitest fakes
 * only with `fakeNodeBuiltins: true`. `AbortSignal.timeout` is never faked, so the per-try deadline tests
 * run on real timers with delays of a few ms.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createRetryPolicy, type RetryAttempt, type RetryContext } from "../../src/retry.ts";

/** An operation that fails with the given errors, one per try, then resolves with `value`. */
function failingThen<T>(errors: readonly unknown[], value: T) {
  const contexts: RetryContext[] = [];
  const operation = vi.fn(async (context: RetryContext): Promise<T> => {
    contexts.push(context);
    const error = errors[contexts.length - 1];
    if (contexts.length <= errors.length) throw error;
    return value;
  });
  return { operation, contexts };
}

/** An operation that always fails, with a new error per try ("failure 1", "failure 2", ...). */
function alwaysFailing() {
  const errors: Error[] = [];
  const operation = vi.fn(async (_context: RetryContext): Promise<never> => {
    const error = new Error(`failure ${errors.length + 1}`);
    errors.push(error);
    throw error;
  });
  return { operation, errors };
}

/** Records how a promise settled, without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { value, settled: true }),
    (error: unknown) => Object.assign(state, { error, settled: true }),
  );
  return state;
}

describe("createRetryPolicy", () => {
  describe("on the fake clock", () => {
    beforeEach(() => {
      vi.useFakeTimers({ fakeNodeBuiltins: true });
    });
    afterEach(() => {
      vi.restoreAllMocks();
      vi.useRealTimers();
    });

    it("returns the value of a first try that succeeds, calling the operation once with attempt 1 and a signal", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000 });
      const onRetry = vi.fn();
      const { operation, contexts } = failingThen([], "value");

      await expect(policy.run(operation, { onRetry })).resolves.toBe("value");
      expect(operation).toHaveBeenCalledTimes(1);
      expect(contexts).toHaveLength(1);
      expect(contexts[0]?.attempt).toBe(1);
      expect(contexts[0]?.abortSignal).toBeInstanceOf(AbortSignal);
      expect(contexts[0]?.abortSignal.aborted).toBe(false);
      expect(onRetry).not.toHaveBeenCalled();
      expect(vi.getTimerCount()).toBe(0);
    });

    it("hands each try the caller's signal when there is no per-try deadline", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000 });
      const controller = new AbortController();
      const { operation, contexts } = failingThen([], 1);
      await policy.run(operation, { abortSignal: controller.signal });
      expect(contexts[0]?.abortSignal).toBe(controller.signal);
    });

    it("retries failures until success, telling onRetry each failure; waits double and are capped (jitter 0)", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 350, jitter: 0 });
      const errors = [new Error("e1"), new Error("e2"), new Error("e3"), new Error("e4")];
      const { operation, contexts } = failingThen(errors, "done");
      const onRetry = vi.fn((_attempt: RetryAttempt) => {});
      const run = track(policy.run(operation, { onRetry }));

      await vi.advanceTimersByTimeAsync(0);
      expect(operation).toHaveBeenCalledTimes(1);
      // Each wait as told, to the ms: the next try starts exactly then, not a ms earlier.
      for (const [i, wait] of [100, 200, 350, 350].entries()) {
        await vi.advanceTimersByTimeAsync(wait - 1);
        expect(operation).toHaveBeenCalledTimes(i + 1);
        await vi.advanceTimersByTimeAsync(1);
        expect(operation).toHaveBeenCalledTimes(i + 2);
      }
      expect(run).toEqual({ settled: true, value: "done" });
      expect(contexts.map((c) => c.attempt)).toEqual([1, 2, 3, 4, 5]);
      expect(onRetry.mock.calls.map(([attempt]) => attempt)).toEqual([
        { attempt: 1, error: errors[0], delayMs: 100 },
        { attempt: 2, error: errors[1], delayMs: 200 },
        { attempt: 3, error: errors[2], delayMs: 350 },
        { attempt: 4, error: errors[3], delayMs: 350 },
      ]);
      expect(vi.getTimerCount()).toBe(0);
    });

    it("computes delayMs(n) as initial * 2^(n-1), capped at maxDelayMs (jitter 0)", () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 350, jitter: 0 });
      expect([1, 2, 3, 4, 5].map((n) => policy.delayMs(n))).toEqual([100, 200, 350, 350, 350]);
      // 2 ** n overflows to Infinity long before this: the cap still holds.
      expect(policy.delayMs(5000)).toBe(350);
      const uncapped = createRetryPolicy({ initialDelayMs: 1, maxDelayMs: 1_000_000, jitter: 0 });
      expect([1, 2, 3, 10, 11].map((n) => uncapped.delayMs(n))).toEqual([1, 2, 4, 512, 1024]);
    });

    it("spreads each wait by ±jitter around the capped base", () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 350, jitter: 0.25 });
      const random = vi.spyOn(Math, "random");
      random.mockReturnValue(0);
      expect(policy.delayMs(1)).toBeCloseTo(75, 9);
      expect(policy.delayMs(3)).toBeCloseTo(262.5, 9);
      random.mockReturnValue(0.5);
      expect(policy.delayMs(2)).toBeCloseTo(200, 9);
      random.mockReturnValue(1 - Number.EPSILON);
      expect(policy.delayMs(1)).toBeCloseTo(125, 9);
      expect(policy.delayMs(9)).toBeCloseTo(437.5, 9);
      random.mockRestore();

      const samples = Array.from({ length: 500 }, () => policy.delayMs(2));
      for (const sample of samples) {
        expect(sample).toBeGreaterThanOrEqual(150);
        expect(sample).toBeLessThanOrEqual(250);
      }
      expect(new Set(samples).size).toBeGreaterThan(1); // not lockstep
    });

    it("uses a jitter of 0.2 by default", () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000 });
      const random = vi.spyOn(Math, "random");
      random.mockReturnValue(0);
      expect(policy.delayMs(1)).toBeCloseTo(80, 9);
      random.mockReturnValue(1 - Number.EPSILON);
      expect(policy.delayMs(1)).toBeCloseTo(120, 9);
    });

    it("waits the jittered delay it tells onRetry", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 });
      vi.spyOn(Math, "random").mockReturnValue(0); // every wait at its low end: 50, 100
      const onRetry = vi.fn((_attempt: RetryAttempt) => {});
      const { operation } = failingThen([new Error("a"), new Error("b")], "ok");
      const run = track(policy.run(operation, { onRetry }));

      await vi.advanceTimersByTimeAsync(49);
      expect(operation).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(operation).toHaveBeenCalledTimes(2);
      await vi.advanceTimersByTimeAsync(99);
      expect(operation).toHaveBeenCalledTimes(2);
      await vi.advanceTimersByTimeAsync(1);
      expect(operation).toHaveBeenCalledTimes(3);
      expect(run).toEqual({ settled: true, value: "ok" });
      expect(onRetry.mock.calls.map(([a]) => a.delayMs)).toEqual([50, 100]);
    });

    it("rejects at once with the operation's error when the policy calls it not retriable", async () => {
      const isRetriable = vi.fn((_error: unknown) => false);
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, isRetriable });
      const fatal = new Error("fatal");
      const { operation } = failingThen([fatal], "never");
      const onRetry = vi.fn();

      await expect(policy.run(operation, { onRetry })).rejects.toBe(fatal);
      expect(operation).toHaveBeenCalledTimes(1);
      expect(isRetriable).toHaveBeenCalledExactlyOnceWith(fatal);
      expect(onRetry).not.toHaveBeenCalled();
      expect(vi.getTimerCount()).toBe(0);
    });

    it("lets a run's isRetriable override the policy's, both ways", async () => {
      const fatal = new Error("fatal");
      const transient = new Error("transient");

      // The policy retries everything; this run knows `fatal` cannot succeed.
      const retriesAll = createRetryPolicy({ initialDelayMs: 10, maxDelayMs: 10, jitter: 0 });
      const first = failingThen([transient, fatal], "never");
      const onRetry = vi.fn((_attempt: RetryAttempt) => {});
      const run = track(
        retriesAll.run(first.operation, { isRetriable: (error) => error !== fatal, onRetry }),
      );
      await vi.advanceTimersByTimeAsync(1000);
      expect(run).toEqual({ settled: true, error: fatal });
      expect(first.operation).toHaveBeenCalledTimes(2);
      expect(onRetry.mock.calls.map(([a]) => a)).toEqual([{ attempt: 1, error: transient, delayMs: 10 }]);

      // The policy retries nothing; this run says its error can be retried.
      const retriesNone = createRetryPolicy({
        initialDelayMs: 10,
        maxDelayMs: 10,
        jitter: 0,
        isRetriable: () => false,
      });
      const neverRetried = failingThen([transient], "never");
      const onRetryNever = vi.fn();
      await expect(retriesNone.run(neverRetried.operation, { onRetry: onRetryNever })).rejects.toBe(
        transient,
      );
      expect(neverRetried.operation).toHaveBeenCalledTimes(1);
      expect(onRetryNever).not.toHaveBeenCalled();

      const second = failingThen([transient], "ok");
      const retried = track(retriesNone.run(second.operation, { isRetriable: () => true }));
      await vi.advanceTimersByTimeAsync(10);
      expect(retried).toEqual({ settled: true, value: "ok" });
      expect(second.operation).toHaveBeenCalledTimes(2);
    });

    it("with maxAttempts 3 makes three tries, then rejects with the last error", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 0, maxAttempts: 3 });
      const { operation, errors } = alwaysFailing();
      const onRetry = vi.fn((_attempt: RetryAttempt) => {});
      const run = track(policy.run(operation, { onRetry }));

      await vi.advanceTimersByTimeAsync(299);
      expect(run.settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(run).toEqual({ settled: true, error: errors[2] });
      expect(errors.map((e) => e.message)).toEqual(["failure 1", "failure 2", "failure 3"]);
      expect(operation).toHaveBeenCalledTimes(3);
      expect(onRetry.mock.calls.map(([a]) => [a.attempt, a.error])).toEqual([
        [1, errors[0]],
        [2, errors[1]],
      ]);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(operation).toHaveBeenCalledTimes(3);
      expect(vi.getTimerCount()).toBe(0);
    });

    it("with maxAttempts 1 makes a single try", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 1 });
      const { operation, errors } = alwaysFailing();
      const onRetry = vi.fn();
      await expect(policy.run(operation, { onRetry })).rejects.toBe(errors[0]);
      expect(operation).toHaveBeenCalledTimes(1);
      expect(onRetry).not.toHaveBeenCalled();
    });

    it("ends a wait on abort: rejects with the abort reason at once and makes no further try", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 10_000, maxDelayMs: 10_000, jitter: 0 });
      const controller = new AbortController();
      const { operation } = alwaysFailing();
      const onRetry = vi.fn();
      const run = track(policy.run(operation, { abortSignal: controller.signal, onRetry }));

      await vi.advanceTimersByTimeAsync(500);
      expect(operation).toHaveBeenCalledTimes(1);
      expect(onRetry).toHaveBeenCalledTimes(1);
      expect(vi.getTimerCount()).toBe(1); // the wait

      const reason = new Error("shutting down");
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0); // no time passes: only the promise callbacks run
      expect(run).toEqual({ settled: true, error: reason });
      expect(vi.getTimerCount()).toBe(0); // the wait's timer is cleared

      await vi.advanceTimersByTimeAsync(60_000);
      expect(operation).toHaveBeenCalledTimes(1);
      expect(onRetry).toHaveBeenCalledTimes(1);
    });

    it("rejects with the default AbortError when aborted without a reason", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 1000, maxDelayMs: 1000 });
      const controller = new AbortController();
      const { operation } = alwaysFailing();
      const run = track(policy.run(operation, { abortSignal: controller.signal }));
      await vi.advanceTimersByTimeAsync(10);
      controller.abort();
      await vi.advanceTimersByTimeAsync(0);
      expect(run.settled).toBe(true);
      expect(run.error).toBe(controller.signal.reason);
      expect((run.error as DOMException).name).toBe("AbortError");
      expect(operation).toHaveBeenCalledTimes(1);
    });

    it("rejects without calling the operation when aborted before the start", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000 });
      const reason = new Error("already aborted");
      const { operation } = failingThen([], "never");
      await expect(policy.run(operation, { abortSignal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      expect(operation).not.toHaveBeenCalled();
    });

    it("rejects with the abort reason, not the operation's error, when a try fails because the caller aborted", async () => {
      const isRetriable = vi.fn(() => true);
      const policy = createRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, isRetriable });
      const controller = new AbortController();
      const reason = new Error("caller gave up");
      const signals: AbortSignal[] = [];
      // Waits for its signal, then fails with an error of its own, as an SDK call does.
      const operation = vi.fn(
        ({ abortSignal }: RetryContext) =>
          new Promise<never>((_resolve, reject) => {
            signals.push(abortSignal);
            abortSignal.addEventListener("abort", () => reject(new Error("request aborted")), { once: true });
          }),
      );
      const onRetry = vi.fn();
      const run = track(policy.run(operation, { abortSignal: controller.signal, onRetry }));

      await vi.advanceTimersByTimeAsync(1000);
      expect(run.settled).toBe(false);
      controller.abort(reason);
      await vi.advanceTimersByTimeAsync(0);
      expect(run).toEqual({ settled: true, error: reason });
      expect(signals[0]?.aborted).toBe(true);
      expect(operation).toHaveBeenCalledTimes(1);
      expect(onRetry).not.toHaveBeenCalled();
      expect(isRetriable).not.toHaveBeenCalled();
      await vi.advanceTimersByTimeAsync(10_000);
      expect(operation).toHaveBeenCalledTimes(1);
    });

    it("does not end the run when onRetry throws", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 10, maxDelayMs: 10, jitter: 0 });
      const { operation } = failingThen([new Error("a"), new Error("b")], "survived");
      const onRetry = vi.fn(() => {
        throw new Error("listener broke");
      });
      const run = track(policy.run(operation, { onRetry }));
      await vi.advanceTimersByTimeAsync(20);
      expect(run).toEqual({ settled: true, value: "survived" });
      expect(operation).toHaveBeenCalledTimes(3);
      expect(onRetry).toHaveBeenCalledTimes(2);
    });
  });

  describe("per-try deadline (real timers: AbortSignal.timeout is not faked)", () => {
    it("aborts a try's signal after attemptTimeoutMs and retries with a fresh signal", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 1, maxDelayMs: 1, jitter: 0 });
      const contexts: RetryContext[] = [];
      const abortedAfterMs: number[] = [];
      const abortedAtCall: boolean[] = [];
      const onRetry = vi.fn((_attempt: RetryAttempt) => {});
      const startedAt = performance.now();
      const operation = vi.fn((context: RetryContext) => {
        contexts.push(context);
        abortedAtCall.push(context.abortSignal.aborted);
        if (context.attempt > 1) return Promise.resolve("second try");
        // A hung first try: it ends only when its signal aborts.
        return new Promise<string>((_resolve, reject) => {
          context.abortSignal.addEventListener(
            "abort",
            () => {
              abortedAfterMs.push(performance.now() - startedAt);
              reject(new Error("download stalled", { cause: context.abortSignal.reason }));
            },
            { once: true },
          );
        });
      });

      await expect(policy.run(operation, { attemptTimeoutMs: 30, onRetry })).resolves.toBe("second try");
      expect(operation).toHaveBeenCalledTimes(2);
      expect(contexts.map((c) => c.attempt)).toEqual([1, 2]);
      expect(abortedAtCall).toEqual([false, false]);
      expect(contexts[1]?.abortSignal).not.toBe(contexts[0]?.abortSignal);
      expect(contexts[0]?.abortSignal.aborted).toBe(true);
      expect(contexts[0]?.abortSignal.reason).toHaveProperty("name", "TimeoutError");
      expect(contexts[1]?.abortSignal.aborted).toBe(false);
      expect(abortedAfterMs).toHaveLength(1);
      expect(abortedAfterMs[0]).toBeGreaterThanOrEqual(25); // timers may fire a ms early on a busy machine
      expect(onRetry).toHaveBeenCalledTimes(1);
      expect(onRetry.mock.calls[0]?.[0]).toEqual({
        attempt: 1,
        error: expect.objectContaining({ message: "download stalled" }),
        delayMs: 1,
      });
    });

    it("aborts a try's signal on the caller's abort too, and then rejects with the caller's reason", async () => {
      const policy = createRetryPolicy({ initialDelayMs: 1, maxDelayMs: 1 });
      const controller = new AbortController();
      const reason = new Error("stop");
      const signals: AbortSignal[] = [];
      const operation = vi.fn(
        ({ abortSignal }: RetryContext) =>
          new Promise<never>((_resolve, reject) => {
            signals.push(abortSignal);
            abortSignal.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
          }),
      );
      const run = policy.run(operation, { abortSignal: controller.signal, attemptTimeoutMs: 60_000 });
      setTimeout(() => controller.abort(reason), 5);
      await expect(run).rejects.toBe(reason);
      expect(operation).toHaveBeenCalledTimes(1);
      expect(signals[0]).not.toBe(controller.signal); // combined with the deadline
      expect(signals[0]?.reason).toBe(reason);
    });
  });

  describe("options", () => {
    it.each([
      ["initialDelayMs", 0],
      ["initialDelayMs", -1],
      ["initialDelayMs", Number.NaN],
      ["initialDelayMs", Number.POSITIVE_INFINITY],
      ["maxDelayMs", 0],
      ["maxDelayMs", -5],
      ["maxDelayMs", Number.NaN],
    ] as const)("throws a RangeError for %s = %s", (name, value) => {
      const options = { initialDelayMs: 100, maxDelayMs: 1000, [name]: value };
      expect(() => createRetryPolicy(options)).toThrow(RangeError);
      expect(() => createRetryPolicy(options)).toThrow(`${name} must be a positive number`);
    });

    it("accepts fractional positive delays", () => {
      expect(createRetryPolicy({ initialDelayMs: 0.5, maxDelayMs: 0.5, jitter: 0 }).delayMs(3)).toBe(0.5);
    });
  });
});
