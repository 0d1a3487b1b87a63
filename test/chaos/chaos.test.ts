/**
 * Crashes, rollouts, rebalances, zombies and outages, with jobs long enough that every blow lands while they
 * run. Each scenario prints its accounting and asserts, in both delivery modes:
 *   events in = unique predictions + unique dead letters, every value right, offsets committed to the end;
 *   exactly-once: no duplicate seen by a read_committed consumer; at-least-once: nothing lost;
 *   one job per batch, from the emulator's own record (a restarted emulator forgets its jobs: at most two).
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import { restartStackKafka } from "../../stack/src/stack.ts";
import { type Accounting, createWorld, type LogLine, type Mode, type World, waitFor } from "./world.ts";

const EVENTS = 400;
let world: World | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

function report(name: string, mode: Mode, accounting: Accounting): void {
  console.log(`[chaos] ${mode} | ${name} | ${JSON.stringify(accounting)}`);
  if (accounting.duplicated && world) {
    // What the connectors said about writes, for the record of a failure.
    for (const proc of world.processes) {
      const lines = proc.logs.filter((l) => /write|fenced|taken over|abandon|failed/i.test(String(l.msg)));
      console.log(`[chaos] ${proc.name}: ${JSON.stringify(lines.slice(0, 40))}`);
    }
  }
}

function expectAccounted(mode: Mode, a: Accounting, maxJobsPerBatch = 1): void {
  expect(a.wrongValues).toBe(0);
  expect(a.uniquePredictions).toBe(a.valid);
  expect(a.uniqueDeadLetters).toBe(a.events - a.valid);
  expect(a.uniquePredictions + a.uniqueDeadLetters).toBe(a.events);
  expect(a.committedAtEnd).toBe(true);
  if (mode === "exactly-once") expect(a.duplicates).toBe(0);
  expect(a.maxJobsPerBatch).toBeLessThanOrEqual(maxJobsPerBatch);
}

const msg = (text: string) => (line: LogLine) => line.msg === text;

/** kill -9 at each stage of a batch's life, then a restart that finishes the work. */
const STAGES: Array<[string, (line: LogLine) => boolean]> = [
  ["after sealing", msg("batch sealed")],
  ["after upload", msg("batch uploaded")],
  ["after the intent record", (l) => l.msg === "ledger recorded" && l.state === "intent"],
  ["after submit", msg("batch submitted")],
  ["while polling", (l) => l.msg === "job status" && l.status === "Running"],
  ["in the middle of publishing", msg("batch results published")],
];

describe.each<Mode>(["exactly-once", "at-least-once"])("chaos, %s", (mode) => {
  for (const [stage, match] of STAGES) {
    it(`kill -9 ${stage}, then a restart: every event once, one job per batch`, async () => {
      world = await createWorld({ mode });
      const first = world.start("first");
      await world.produce(EVENTS);
      await first.waitForLog(match, stage);
      first.signal("SIGKILL");
      await first.exited;
      world.start("second");
      const accounting = await world.settled();
      report(`kill -9 ${stage}`, mode, accounting);
      expectAccounted(mode, accounting);
    });
  }

  it("two replicas, one stopped with SIGTERM mid-run: it leaves at once, the other finishes its work", async () => {
    world = await createWorld({ mode });
    const a = world.start("a");
    world.start("b");
    await world.produce(EVENTS);
    await a.waitForLog(msg("batch submitted"), "a submitting");
    const signalled = Date.now();
    a.signal("SIGTERM");
    expect(await a.exited).toBe(0);
    const stopMs = Date.now() - signalled;
    const accounting = await world.settled();
    report(`SIGTERM of one replica (stopped in ${stopMs} ms)`, mode, accounting);
    expect(stopMs).toBeLessThan(10_000);
    // Nothing new after the signal: no upload or submission logged once it was received.
    const signalAt = a.logs.findIndex((l) => l.msg === "shutdown requested");
    expect(signalAt).toBeGreaterThanOrEqual(0);
    const after = a.logs.slice(signalAt + 1);
    expect(after.filter((l) => l.msg === "batch uploaded" || l.msg === "batch submitted")).toEqual([]);
    expectAccounted(mode, accounting);
  });

  it("two replicas, one killed mid-run: the other resumes its jobs after the session timeout", async () => {
    world = await createWorld({ mode });
    const a = world.start("a");
    world.start("b");
    await world.produce(EVENTS);
    await a.waitForLog(msg("batch submitted"), "a submitting");
    a.signal("SIGKILL");
    const accounting = await world.settled();
    report("SIGKILL of one replica", mode, accounting);
    expectAccounted(mode, accounting);
  });

  it("a third replica added mid-run: partitions move, jobs are resumed, not resubmitted", async () => {
    world = await createWorld({ mode });
    const a = world.start("a");
    world.start("b");
    await world.produce(EVENTS);
    await a.waitForLog(msg("batch submitted"), "a submitting");
    const c = world.start("c");
    await c.waitForLog(msg("partitions assigned"), "c joining");
    const accounting = await world.settled();
    report("a third replica added", mode, accounting);
    expectAccounted(mode, accounting);
  });

  it("a zombie (SIGSTOP past the session timeout, then SIGCONT) cannot publish for the partitions it lost", async () => {
    world = await createWorld({ mode, runMs: 4000 });
    const a = world.start("a");
    const b = world.start("b");
    await world.produce(EVENTS);
    await a.waitForLog(msg("batch submitted"), "a submitting");
    a.signal("SIGSTOP");
    // b takes a's partitions once a's session expires, fencing a's producers.
    await b.waitForLog(
      (l) =>
        l.msg === "partition taken over: previous owner fenced, ledger read" &&
        b.logs.filter((x) => x.msg === "partition taken over: previous owner fenced, ledger read").length > 2,
      "b taking over",
      60_000,
    );
    await new Promise((r) => setTimeout(r, 3000));
    a.signal("SIGCONT");
    const accounting = await world.settled();
    report("zombie", mode, accounting);
    expectAccounted(mode, accounting);
  });

  it("the broker restarted with jobs running: the connector reconnects, every event once", async () => {
    const stackName = inject("stackName");
    if (!stackName)
      throw new Error("the broker-restart scenario needs the local stack (FC_TEST_SERVICES=local)");
    world = await createWorld({ mode, runMs: 4000 });
    const only = world.start("only");
    await world.produce(EVENTS);
    await only.waitForLog(msg("batch submitted"), "a submission");
    await restartStackKafka(stackName, 2000);
    const accounting = await world.settled(180_000);
    report("broker restarted", mode, accounting);
    expectAccounted(mode, accounting);
  });

  it("the endpoint answering 429 and 500 for a while: held, then scored, no dead letter for it", async () => {
    world = await createWorld({ mode });
    world.setFaults({ throttle: { count: 40, retryAfterSeconds: 1 }, serverError: { count: 40 } });
    world.start("only");
    await world.produce(EVENTS);
    await new Promise((r) => setTimeout(r, 5000));
    world.setFaults({});
    const accounting = await world.settled();
    report("endpoint 429/500 for a while", mode, accounting);
    expectAccounted(mode, accounting);
  });

  it("the emulator restarted with jobs running (its jobs gone): noticed, resubmitted, every event accounted", async () => {
    world = await createWorld({ mode, runMs: 4000 });
    const only = world.start("only");
    await world.produce(EVENTS);
    await only.waitForLog(msg("batch submitted"), "a submission");
    await new Promise((r) => setTimeout(r, 1000));
    await world.restartEmulator();
    const accounting = await world.settled();
    report("emulator restarted", mode, accounting);
    // A lost job is submitted again, as a new attempt: at most twice per batch.
    expectAccounted(mode, accounting, 2);
  });

  it("blob storage unreachable for a while: uploads and reads wait, then everything is scored", async () => {
    world = await createWorld({ mode, blobProxy: true });
    const only = world.start("only");
    await only.waitForLog(msg("forecast-connector started"), "start");
    world.blobProxy?.cut();
    await world.produce(EVENTS);
    await waitFor("an upload failing", () => only.logs.some((l) => l.msg === "batch step_failed"), 60_000);
    await new Promise((r) => setTimeout(r, 3000));
    world.blobProxy?.restore();
    const accounting = await world.settled();
    report("blob storage unreachable for a while", mode, accounting);
    expectAccounted(mode, accounting);
  });
});
