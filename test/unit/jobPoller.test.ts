/**
 * The job poller with a fake endpoint client under vitest's fake timers: one timer for every job, a bound on
 * concurrent status reads, terminal and non-terminal statuses, deadlines, poll errors and close().
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { JobState } from "../../src/azure/endpointClient.ts";
import {
  createJobPoller,
  type JobOutcome,
  type JobPollerOptions,
  type PollerEvent,
} from "../../src/azure/jobPoller.ts";
import { isTerminalJobStatus, jobStatusLabel, KNOWN_JOB_STATUSES } from "../../src/azure/jobStatus.ts";

const START = Date.UTC(2025, 0, 1, 12, 0, 0);

type Script = ReadonlyArray<Omit<JobState, "jobId"> | Error>;

/**
 * A fake status API: each job answers from its script (the last entry repeats); `latencyMs` delays every
 * answer (on the fake clock). Records when each read started and how many were in flight at once.
 */
function fakeClient(scripts: Record<string, Script>, latencyMs = 0) {
  const calls: Array<{ jobId: string; at: number }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const client = {
    async getJob(jobId: string): Promise<JobState> {
      calls.push({ jobId, at: Date.now() - START });
      const script = scripts[jobId] ?? [{ status: "Running" }];
      const made = calls.filter((c) => c.jobId === jobId).length;
      const answer = script[Math.min(made, script.length) - 1] as Script[number];
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
        if (answer instanceof Error) throw answer;
        return { jobId, ...answer };
      } finally {
        inFlight--;
      }
    },
  };
  return {
    client,
    calls,
    callsOf: (jobId: string) => calls.filter((c) => c.jobId === jobId).map((c) => c.at),
    maxInFlight: () => maxInFlight,
  };
}

function poller(client: JobPollerOptions["client"], options: Partial<JobPollerOptions> = {}) {
  return createJobPoller({ client, pollIntervalMs: 1000, jitter: 0, ...options });
}

/** Records how a promise settled, without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state: { value?: T; error?: Error; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { value, settled: true }),
    (error: Error) => Object.assign(state, { error, settled: true }),
  );
  return state;
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(START);
});
afterEach(() => {
  vi.useRealTimers();
});

describe("createJobPoller", () => {
  it("arms one timer for many jobs and polls each on its interval (first read after at most 1 s)", async () => {
    const fake = fakeClient({});
    const p = poller(fake.client, { pollIntervalMs: 5000, maxConcurrentPolls: 100 });
    const ids = Array.from({ length: 25 }, (_, i) => `job-${i}`);
    for (const [i, id] of ids.entries()) {
      vi.setSystemTime(START + i * 10); // staggered submissions
      void p.watch(id, { timeoutMs: 600_000 }).catch(() => {});
    }
    expect(p.watching()).toBe(25);
    expect(vi.getTimerCount()).toBe(1);

    await vi.advanceTimersByTimeAsync(20_000 - 240);
    expect(vi.getTimerCount()).toBe(1);
    // Each job: first read 1 s after its watch began (min(interval, 1 s)), then every 5 s.
    for (const [i, id] of ids.entries()) {
      expect(fake.callsOf(id)).toEqual([1000, 6000, 11_000, 16_000].map((t) => t + i * 10));
    }
    p.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("spreads intervals by the jitter", async () => {
    const fake = fakeClient({});
    const p = poller(fake.client, { pollIntervalMs: 10_000, jitter: 0.2 });
    void p.watch("job", { timeoutMs: 3_600_000 }).catch(() => {});
    await vi.advanceTimersByTimeAsync(200_000);
    const times = fake.callsOf("job");
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    expect(times[0]).toBeLessThanOrEqual(1000);
    expect(gaps.length).toBeGreaterThan(15);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(8000);
      expect(gap).toBeLessThanOrEqual(12_000);
    }
    expect(new Set(gaps).size).toBeGreaterThan(1); // not lockstep
    p.close();
  });

  it("keeps at most maxConcurrentPolls status reads in flight, and still reads every job", async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `job-${i}`);
    const fake = fakeClient({}, 100);
    const p = poller(fake.client, { maxConcurrentPolls: 3 });
    for (const id of ids) void p.watch(id, { timeoutMs: 600_000 }).catch(() => {});

    await vi.advanceTimersByTimeAsync(1000);
    expect(fake.calls).toHaveLength(3); // all due at once: only three start
    await vi.advanceTimersByTimeAsync(99);
    expect(fake.calls).toHaveLength(3);
    // The next three start as the first ones end (a 0 ms timeout fires after 1 ms, as in Node).
    await vi.advanceTimersByTimeAsync(2);
    expect(fake.calls).toHaveLength(6);
    expect(fake.calls.slice(3).map((c) => c.at)).toEqual([1101, 1101, 1101]);
    await vi.advanceTimersByTimeAsync(300);
    expect(new Set(fake.calls.map((c) => c.jobId))).toEqual(new Set(ids));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(fake.maxInFlight()).toBe(3);
    for (const id of ids) expect(fake.callsOf(id).length).toBeGreaterThanOrEqual(8);
    p.close();
  });

  it("defaults to four concurrent reads", async () => {
    const fake = fakeClient({}, 500);
    const p = createJobPoller({ client: fake.client, pollIntervalMs: 1000 });
    for (let i = 0; i < 12; i++) void p.watch(`job-${i}`, { timeoutMs: 600_000 }).catch(() => {});
    await vi.advanceTimersByTimeAsync(5000);
    expect(fake.maxInFlight()).toBe(4);
    p.close();
  });

  it("resolves on Completed, Failed (with its error) and Canceled, reporting each status change", async () => {
    const fake = fakeClient({
      done: [{ status: "NotStarted" }, { status: "Queued" }, { status: "Running" }, { status: "Completed" }],
      failed: [
        { status: "Running" },
        { status: "Failed", error: { code: "UserError", message: "no input rows" } },
      ],
      canceled: [{ status: "CancelRequested" }, { status: "Canceled" }],
    });
    const statuses: string[] = [];
    const p = poller(fake.client, {
      onEvent: (e) => {
        if (e.type === "status_changed") statuses.push(`${e.jobId}:${e.status}`);
      },
    });
    const done = p.watch("done", { timeoutMs: 60_000 });
    const failed = p.watch("failed", { timeoutMs: 60_000 });
    const canceled = p.watch("canceled", { timeoutMs: 60_000 });
    await vi.advanceTimersByTimeAsync(10_000);

    await expect(done).resolves.toEqual({ jobId: "done", status: "Completed", durationMs: 4000 });
    await expect(failed).resolves.toEqual({
      jobId: "failed",
      status: "Failed",
      error: { code: "UserError", message: "no input rows" },
      durationMs: 2000,
    });
    await expect(canceled).resolves.toEqual({ jobId: "canceled", status: "Canceled", durationMs: 2000 });
    expect(fake.callsOf("done")).toHaveLength(4); // no read after the terminal status
    expect(fake.callsOf("failed")).toHaveLength(2);
    expect(p.watching()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(statuses.filter((s) => s.startsWith("done:"))).toEqual([
      "done:NotStarted",
      "done:Queued",
      "done:Running",
      "done:Completed",
    ]);
  });

  it("reports a repeated status once", async () => {
    const fake = fakeClient({ job: [{ status: "Queued" }, { status: "Queued" }, { status: "Completed" }] });
    const statuses: string[] = [];
    const p = poller(fake.client, {
      onEvent: (e) => {
        if (e.type === "status_changed") statuses.push(e.status);
      },
    });
    const outcome = p.watch("job", { timeoutMs: 60_000 });
    await vi.advanceTimersByTimeAsync(5000);
    await expect(outcome).resolves.toMatchObject({ status: "Completed" });
    expect(statuses).toEqual(["Queued", "Completed"]);
  });

  it("treats unknown and unlisted statuses as not terminal", async () => {
    const nonTerminal = ["NotResponding", "Paused", "SomethingNew", "Unknown", "CancelRequested"];
    const fake = fakeClient({ job: [...nonTerminal.map((status) => ({ status })), { status: "Completed" }] });
    const p = poller(fake.client);
    const outcome = track(p.watch("job", { timeoutMs: 60_000 }));
    await vi.advanceTimersByTimeAsync(nonTerminal.length * 1000);
    expect(fake.callsOf("job")).toHaveLength(nonTerminal.length);
    expect(outcome.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(outcome.value).toMatchObject({ jobId: "job", status: "Completed" });
  });

  it("waits out every documented non-terminal status, NotResponding recovering, and ends only on Completed, Failed or Canceled", async () => {
    const nonTerminal = KNOWN_JOB_STATUSES.filter((status) => !isTerminalJobStatus(status));
    expect(nonTerminal).toEqual([
      "NotStarted",
      "Scheduled",
      "Starting",
      "Provisioning",
      "Preparing",
      "Queued",
      "Running",
      "NotResponding",
      "Paused",
      "Finalizing",
      "CancelRequested",
      "Unknown",
    ]);
    for (const end of ["Completed", "Failed", "Canceled"]) {
      const journey = [...nonTerminal, "Running", "NotResponding", "Running"];
      const fake = fakeClient({ job: [...journey.map((status) => ({ status })), { status: end }] });
      const reads: string[] = [];
      const p = poller(fake.client, {
        onEvent: (e) => {
          if (e.type === "status_read") reads.push(e.status);
        },
      });
      const outcome = track(p.watch("job", { timeoutMs: 600_000 }));
      await vi.advanceTimersByTimeAsync(journey.length * 1000);
      expect(outcome.settled, end).toBe(false);
      await vi.advanceTimersByTimeAsync(1000);
      expect(outcome.value, end).toMatchObject({ status: end });
      expect(reads).toEqual([...journey, end]);
    }
  });

  it("tells a status never seen before once, across jobs, and treats it as running", async () => {
    const fake = fakeClient({
      a: [
        { status: "Hibernating" },
        { status: "Hibernating" },
        { status: "Thawing" },
        { status: "Completed" },
      ],
      b: [{ status: "Hibernating" }, { status: "Completed" }],
    });
    const events: PollerEvent[] = [];
    const p = poller(fake.client, { onEvent: (e) => events.push(e) });
    const a = p.watch("a", { timeoutMs: 60_000 });
    const b = p.watch("b", { timeoutMs: 60_000 });
    await vi.advanceTimersByTimeAsync(5000);
    await expect(a).resolves.toMatchObject({ status: "Completed" });
    await expect(b).resolves.toMatchObject({ status: "Completed" });
    expect(events.filter((e) => e.type === "unknown_status").map((e) => e.status)).toEqual([
      "Hibernating",
      "Thawing",
    ]);
    // Every read is told, known or not, for the per-status metric.
    expect(events.filter((e) => e.type === "status_read")).toHaveLength(6);
  });

  it("labels statuses for the metric with a bounded set: the documented ones, else other", () => {
    for (const status of KNOWN_JOB_STATUSES) expect(jobStatusLabel(status)).toBe(status);
    expect(jobStatusLabel("Hibernating")).toBe("other");
    expect(jobStatusLabel("completed")).toBe("other");
  });

  it("gives TimedOut at the deadline, naming the last status", async () => {
    const fake = fakeClient({ job: [{ status: "Queued" }, { status: "Running" }] });
    const p = poller(fake.client, { pollIntervalMs: 3000 });
    const outcome = track(p.watch("job", { timeoutMs: 10_000 }));
    await vi.advanceTimersByTimeAsync(9999);
    expect(outcome.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome.value).toEqual({
      jobId: "job",
      status: "TimedOut",
      error: { code: "Timeout", message: "no terminal status after 10000 ms (last: Running)" },
      durationMs: 10_000,
    });
    // Reads at 1 s, 4 s, 7 s and one last at the deadline itself.
    expect(fake.callsOf("job")).toEqual([1000, 4000, 7000, 10_000]);
    expect(p.watching()).toBe(0);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(fake.calls).toHaveLength(4);
  });

  it("counts the deadline from submittedAtMs", async () => {
    const fake = fakeClient({});
    const p = poller(fake.client);
    const outcome = track(p.watch("job", { timeoutMs: 5000, submittedAtMs: START - 4000 }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(outcome.value).toMatchObject({ status: "TimedOut", durationMs: 5000 });
    expect(fake.calls).toHaveLength(1);
  });

  it("a status read at the deadline that says Completed wins over the timeout", async () => {
    const fake = fakeClient({ job: [{ status: "Running" }, { status: "Running" }, { status: "Completed" }] });
    const p = poller(fake.client, { pollIntervalMs: 2000 });
    const outcome = track(p.watch("job", { timeoutMs: 5000 }));
    await vi.advanceTimersByTimeAsync(5000);
    expect(fake.callsOf("job")).toEqual([1000, 3000, 5000]);
    expect(outcome.value).toMatchObject({ status: "Completed", durationMs: 5000 });
  });

  it("reports failed reads as poll_failed events and goes on polling", async () => {
    const boom = new Error("status of job job failed with HTTP 503");
    const fake = fakeClient({
      job: [boom, boom, { status: "Running" }, new Error("socket hang up"), { status: "Completed" }],
    });
    const errors: Array<[string, unknown]> = [];
    const p = poller(fake.client, {
      onEvent: (e) => {
        if (e.type === "poll_failed") errors.push([e.jobId, e.error]);
      },
    });
    const outcome = p.watch("job", { timeoutMs: 60_000 });
    await vi.advanceTimersByTimeAsync(5000);

    await expect(outcome).resolves.toMatchObject({ jobId: "job", status: "Completed" });
    expect(fake.callsOf("job")).toEqual([1000, 2000, 3000, 4000, 5000]);
    expect(errors.map(([jobId, error]) => [jobId, (error as Error).message])).toEqual([
      ["job", "status of job job failed with HTTP 503"],
      ["job", "status of job job failed with HTTP 503"],
      ["job", "socket hang up"],
    ]);
  });

  it("a job whose reads keep failing still ends at its deadline", async () => {
    const fake = fakeClient({ job: [new Error("unreachable")] });
    const errors: unknown[] = [];
    const p = poller(fake.client, {
      onEvent: (e) => {
        if (e.type === "poll_failed") errors.push(e.error);
      },
    });
    const outcome = p.watch("job", { timeoutMs: 3000 });
    await vi.advanceTimersByTimeAsync(3000);
    await expect(outcome).resolves.toMatchObject({
      status: "TimedOut",
      error: { code: "Timeout", message: expect.stringContaining("last: none") },
    });
    expect(errors).toHaveLength(3);
  });

  it("a second watch of the same job shares its reads and its outcome", async () => {
    const fake = fakeClient({ job: [{ status: "Running" }, { status: "Completed" }] });
    const p = poller(fake.client);
    const first = p.watch("job", { timeoutMs: 60_000 });
    const second = p.watch("job", { timeoutMs: 60_000 });
    expect(p.watching()).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    const outcomes = await Promise.all([first, second]);
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]?.status).toBe("Completed");
    expect(fake.calls).toHaveLength(2);
  });

  it("an aborted watch rejects with the reason and, as the last watcher, stops the job's polling", async () => {
    const fake = fakeClient({ job: [{ status: "Running" }] });
    const p = poller(fake.client);
    const controller = new AbortController();
    const watched = track(p.watch("job", { timeoutMs: 60_000, abortSignal: controller.signal }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(fake.calls).toHaveLength(1);
    controller.abort(new Error("shutting down"));
    await vi.advanceTimersByTimeAsync(0);
    expect(watched.error?.message).toBe("shutting down");
    expect(p.watching()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(fake.calls).toHaveLength(1);
  });

  it("an aborted watch leaves another watcher of the job polling to its outcome", async () => {
    const fake = fakeClient({ job: [{ status: "Running" }, { status: "Completed" }] });
    const p = poller(fake.client);
    const controller = new AbortController();
    const aborted = track(p.watch("job", { timeoutMs: 60_000, abortSignal: controller.signal }));
    const other = p.watch("job", { timeoutMs: 60_000 });
    controller.abort(new Error("gone"));
    await vi.advanceTimersByTimeAsync(2000);
    expect(aborted.error?.message).toBe("gone");
    await expect(other).resolves.toMatchObject({ status: "Completed" });
  });

  it("a watch whose signal is already aborted rejects at once and polls nothing", async () => {
    const fake = fakeClient({ job: [{ status: "Running" }] });
    const p = poller(fake.client);
    const watched = track(
      p.watch("job", { timeoutMs: 60_000, abortSignal: AbortSignal.abort(new Error("no")) }),
    );
    await vi.advanceTimersByTimeAsync(5000);
    expect(watched.error?.message).toBe("no");
    expect(fake.calls).toHaveLength(0);
  });

  it("a job the endpoint answered for and then answers 404 three reads in a row for is Lost", async () => {
    const notFound = { status: "Unknown", notFound: true };
    const fake = fakeClient({
      job: [{ status: "Running" }, notFound, { status: "Running" }, notFound, notFound, notFound],
    });
    const p = poller(fake.client);
    const outcome = p.watch("job", { timeoutMs: 60_000 });
    await vi.advanceTimersByTimeAsync(6000);
    // A 404 between two answers does not count: only three in a row after the job was seen.
    await expect(outcome).resolves.toMatchObject({ status: "Lost", error: { code: "NotFound" } });
    expect(fake.callsOf("job")).toHaveLength(6);
  });

  it("a just-submitted job unknown to the status API is not Lost: only its timeout bounds it", async () => {
    const fake = fakeClient({ job: [{ status: "Unknown", notFound: true }] });
    const p = poller(fake.client);
    const outcome = p.watch("job", { timeoutMs: 5000 });
    await vi.advanceTimersByTimeAsync(5000);
    await expect(outcome).resolves.toMatchObject({ status: "TimedOut" });
  });

  it("a job known to have existed (resumed from the ledger) is Lost after three 404s from the first read", async () => {
    const fake = fakeClient({ job: [{ status: "Unknown", notFound: true }] });
    const p = poller(fake.client);
    const outcome = p.watch("job", { timeoutMs: 60_000, existed: true });
    await vi.advanceTimersByTimeAsync(3000);
    await expect(outcome).resolves.toMatchObject({ status: "Lost" });
    expect(fake.callsOf("job")).toHaveLength(3);
  });

  it("close() rejects pending watches and stops polling", async () => {
    const fake = fakeClient({ a: [{ status: "Running" }], b: [{ status: "Queued" }] }, 50);
    const p = poller(fake.client);
    const a = track(p.watch("a", { timeoutMs: 60_000 }));
    const b = track(p.watch("b", { timeoutMs: 60_000 }));
    await vi.advanceTimersByTimeAsync(1020); // both reads in flight
    expect(fake.calls).toHaveLength(2);
    p.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(a.error?.message).toBe("stopped watching job a");
    expect(b.error?.message).toBe("stopped watching job b");
    expect(p.watching()).toBe(0);

    await vi.advanceTimersByTimeAsync(60_000);
    expect(fake.calls).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
    await expect(p.watch("c", { timeoutMs: 1000 })).rejects.toThrow("job poller is closed");
  });

  it("reports the duration from submission", async () => {
    const fake = fakeClient({ job: [{ status: "Running" }, { status: "Completed" }] });
    const p = poller(fake.client);
    const outcome: Promise<JobOutcome> = p.watch("job", { timeoutMs: 60_000, submittedAtMs: START - 30_000 });
    await vi.advanceTimersByTimeAsync(2000);
    await expect(outcome).resolves.toMatchObject({ status: "Completed", durationMs: 32_000 });
  });
});
