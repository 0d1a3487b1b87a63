/**
 * The job canceller: fire and forget, each request bounded by its timeout, every outcome reported, nothing
 * after close().
 */
import { describe, expect, it } from "vitest";
import type { CancelResult, EndpointCallOptions } from "../../src/azure/endpointClient.ts";
import { EndpointError } from "../../src/azure/errors.ts";
import { type CancelEvent, createJobCanceller } from "../../src/azure/jobCanceller.ts";

/** A cancel API answering per job: a result, an error, or never (until the request's signal aborts). */
function fakeClient(answers: Record<string, CancelResult | Error | "hang">) {
  const calls: string[] = [];
  return {
    calls,
    client: {
      cancelJob(jobId: string, options?: EndpointCallOptions): Promise<CancelResult> {
        calls.push(jobId);
        const answer = answers[jobId] ?? { outcome: "accepted", status: 202 };
        if (answer === "hang") {
          return new Promise((_resolve, reject) =>
            options?.abortSignal?.addEventListener("abort", () => reject(new Error("aborted")), {
              once: true,
            }),
          );
        }
        return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
      },
    },
  };
}

describe("createJobCanceller", () => {
  it("returns at once and reports each outcome, with the service's words", async () => {
    const fake = fakeClient({
      ok: { outcome: "accepted", status: 202 },
      gone: {
        outcome: "not_found",
        status: 404,
        error: { code: "ResourceNotFound", message: "no such job" },
      },
      refused: { outcome: "rejected", status: 409, error: { code: "UserError", message: "already ended" } },
      broken: new EndpointError("cancel of job broken failed with HTTP 503", {
        status: 503,
        retriable: true,
      }),
    });
    const events: CancelEvent[] = [];
    const canceller = createJobCanceller({
      client: fake.client,
      timeoutMs: 1000,
      onEvent: (e) => events.push(e),
    });
    for (const jobId of ["ok", "gone", "refused", "broken"])
      expect(canceller.cancel(jobId, { batchId: "b-1", reason: "timed_out" })).toBeUndefined();
    expect(canceller.pending()).toBe(4);
    await canceller.idle();
    expect(canceller.pending()).toBe(0);
    expect(events.map(({ jobId, outcome, reason, detail }) => ({ jobId, outcome, reason, detail }))).toEqual([
      { jobId: "ok", outcome: "accepted", reason: "timed_out", detail: undefined },
      { jobId: "gone", outcome: "not_found", reason: "timed_out", detail: "ResourceNotFound: no such job" },
      { jobId: "refused", outcome: "rejected", reason: "timed_out", detail: "UserError: already ended" },
      {
        jobId: "broken",
        outcome: "failed",
        reason: "timed_out",
        detail: "cancel of job broken failed with HTTP 503",
      },
    ]);
  });

  it("bounds a request that gets no answer by its timeout", async () => {
    const fake = fakeClient({ slow: "hang" });
    const events: CancelEvent[] = [];
    const canceller = createJobCanceller({
      client: fake.client,
      timeoutMs: 30,
      onEvent: (e) => events.push(e),
    });
    canceller.cancel("slow", { batchId: "b-2", reason: "given_up" });
    await canceller.idle();
    expect(events).toMatchObject([{ jobId: "slow", batchId: "b-2", reason: "given_up", outcome: "timeout" }]);
  });

  it("close() aborts the requests in flight and sends no more", async () => {
    const fake = fakeClient({ slow: "hang" });
    const events: CancelEvent[] = [];
    const canceller = createJobCanceller({
      client: fake.client,
      timeoutMs: 60_000,
      onEvent: (e) => events.push(e),
    });
    canceller.cancel("slow", { batchId: "b-3", reason: "timed_out" });
    canceller.close();
    await canceller.idle();
    canceller.cancel("later", { batchId: "b-3", reason: "timed_out" });
    await canceller.idle();
    expect(fake.calls).toEqual(["slow"]);
    expect(events.map((e) => e.outcome)).toEqual(["aborted"]);
  });
});
