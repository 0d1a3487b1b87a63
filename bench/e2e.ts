/**
 * End to end on the real local stack, side by side: a bare kafkajs pipe (the baseline) and the connector, on
 * the same broker and the same input, each contender in a process of its own (bench/e2e/*Process.ts), so CPU
 * time and RSS are its own; Kafka, the registry, Azurite and the endpoint emulator are other processes.
 *   node bench/e2e.ts       (bench/run.ts passes it the stack it started in BENCH_STACK; alone it starts one)
 *
 * Parts (BENCH_E2E_PARTS, comma-separated, default all):
 *   throughput  the baseline, then the connector in exactly-once and at-least-once mode for each batch size,
 *               each reading the same pre-produced input from its beginning (a backlog)
 *   scaleout    one connector instance, then two in one group, input produced once they are assigned
 *   files       files per batch and rows per file, for a skewed input (few stores) and a wide one
 *   memory      live heap and RSS with BENCH_MEMORY_EVENTS in flight (emulator jobs held Running)
 *   stall       longest event-loop stall while one BENCH_STALL_ROWS-row predictions.csv is parsed and published
 * Knobs: BENCH_EVENTS (200000), BENCH_STORES (50), BENCH_BATCH_SIZES (10000,1000), BENCH_JOBS_IN_FLIGHT (8),
 * BENCH_POLL_MS (50), BENCH_MEMORY_EVENTS (1000000), BENCH_STALL_ROWS (1000000), BENCH_FILES_EVENTS (20000),
 * BENCH_STALL_GUARANTEE (at-least-once), BENCH_LOG_LEVEL (connector logs, on stderr; default error),
 * BENCH_CPU_PROF=<folder> (a CPU profile of every contender process, e.g. with BENCH_E2E_PARTS=throughput).
 * The emulator answers at once (cold start 0, run 0), so the connector's own cost is what shows.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BlobServiceClient } from "@azure/storage-blob";
import type { Kafka } from "kafkajs";
import { localConnectorEnv } from "../stack/src/connectorEnv.ts";
import { startEmulatorProcess } from "../stack/src/emulatorService.ts";
import { stackDir } from "../stack/src/paths.ts";
import { freePort, killProcessGroupNow, stopProcessGroup } from "../stack/src/processes.ts";
import { freeStackPorts, startStack } from "../stack/src/stack.ts";
import type { StackEndpoints } from "../stack/src/types.ts";
import type { Report } from "./e2e/connectorProcess.ts";
import { type Contender, type MemoryFigures, spawnContender } from "./e2e/contender.ts";
import {
  type ContenderTopics,
  contenderTopics,
  createTopics,
  type InputSpec,
  kafkaOf,
  PARTITIONS,
  produceInput,
} from "./e2e/input.ts";
import { banner, mib, num, printTable, writeFigures } from "./lib.ts";

const int = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
};
const EVENTS = int("BENCH_EVENTS", 200_000);
const STORES = int("BENCH_STORES", 50);
const BATCH_SIZES = (process.env.BENCH_BATCH_SIZES || "10000,1000").split(",").map(Number);
const JOBS_IN_FLIGHT = int("BENCH_JOBS_IN_FLIGHT", 8);
const POLL_MS = int("BENCH_POLL_MS", 50);
const MEMORY_EVENTS = int("BENCH_MEMORY_EVENTS", 1_000_000);
const STALL_ROWS = int("BENCH_STALL_ROWS", 1_000_000);
const FILES_EVENTS = int("BENCH_FILES_EVENTS", 20_000);
const STALL_GUARANTEE = process.env.BENCH_STALL_GUARANTEE || "at-least-once";
const ALL_PARTS = ["throughput", "scaleout", "files", "memory", "stall"] as const;
type Part = (typeof ALL_PARTS)[number];
const PARTS = new Set((process.env.BENCH_E2E_PARTS || ALL_PARTS.join(",")).split(",") as Part[]);
for (const part of PARTS) if (!ALL_PARTS.includes(part)) throw new RangeError(`unknown part ${part}`);
for (const size of BATCH_SIZES)
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError("BENCH_BATCH_SIZES: positive integers");
const HEADLINE_BATCH = BATCH_SIZES[0] as number;

const CONNECTOR = new URL("./e2e/connectorProcess.ts", import.meta.url);
const BASELINE = new URL("./e2e/baselineProcess.ts", import.meta.url);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const runId = Date.now().toString(36);

type Guarantee = "exactly-once" | "at-least-once";

interface Emulators {
  readonly fast: string;
  readonly holding: string;
  stop(): Promise<void>;
}

/** Two emulator processes: one answering at once, one holding every job Running for 10 minutes. */
async function startEmulators(stack: StackEndpoints): Promise<Emulators & { pids: number[] }> {
  const start = async (name: string, runMs: number) => {
    const dir = join(stackDir("bench"), `emulator-${name}`);
    mkdirSync(dir, { recursive: true });
    return startEmulatorProcess({
      port: await freePort(),
      blobConnectionString: stack.blobConnectionString,
      dir,
      env: { EMULATOR_COLD_START_MS: "0", EMULATOR_RUN_MS: String(runMs) },
    });
  };
  const fast = await start("fast", 0);
  const holding = await start("holding", 600_000).catch(async (error) => {
    await stopProcessGroup(fast.process.pid);
    throw error;
  });
  return {
    fast: fast.scoringUri,
    holding: holding.scoringUri,
    pids: [fast.process.pid, holding.process.pid],
    stop: async () => {
      await Promise.all([stopProcessGroup(fast.process.pid), stopProcessGroup(holding.process.pid)]);
    },
  };
}

interface ConnectorRun {
  readonly guarantee: Guarantee;
  readonly batch: number;
  readonly scoringUri: string;
  readonly input: string;
  readonly group: string;
  readonly topics: ContenderTopics;
  readonly extra?: Readonly<Record<string, string>>;
}

/** The FC_* settings of one connector instance: connection from the stack, tuning as issue 8 §1 measures. */
function connectorEnv(stack: StackEndpoints, run: ConnectorRun): Record<string, string> {
  return {
    ...localConnectorEnv({
      endpoints: stack,
      groupId: run.group,
      topics: {
        input: run.input,
        results: run.topics.results,
        deadLetter: run.topics.deadLetter,
        ledger: run.topics.ledger,
      },
      inputContainer: run.topics.inputContainer,
      scoringUri: run.scoringUri,
    }),
    FC_CREATE_TOPICS: "true",
    FC_DELIVERY_GUARANTEE: run.guarantee,
    FC_KAFKA_SESSION_TIMEOUT_MS: "10000",
    FC_BATCH_MAX_RECORDS: String(run.batch),
    FC_BATCH_MAX_WAIT_MS: "500",
    FC_JOB_POLL_INTERVAL_MS: String(POLL_MS),
    FC_MAX_JOBS_IN_FLIGHT: String(JOBS_IN_FLIGHT),
    // Room for every job slot plus the batch being filled: jobs in flight, not this bound, is what limits.
    FC_MAX_EVENTS_IN_FLIGHT: String(Math.max(50_000, (JOBS_IN_FLIGHT + 1) * run.batch)),
    FC_JOB_TIMEOUT_MS: "120000",
    FC_HTTP_RETRY_DELAY_MS: "20",
    FC_HTTP_MAX_RETRY_DELAY_MS: "200",
    FC_RETRY_INITIAL_DELAY_MS: "20",
    FC_RETRY_MAX_DELAY_MS: "200",
    FC_HTTP_PORT: "0",
    FC_LOG_LEVEL: "error",
    FC_SHUTDOWN_TIMEOUT_MS: "5000",
    ...run.extra,
  };
}

/** The machine's CPU time so far, busy and in all, in clock ticks (/proc/stat); undefined off Linux. */
function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** What one measured run gives: the contenders together, as a user sees their group. */
export interface RunFigures {
  readonly name: string;
  readonly ok: boolean;
  readonly problem?: string;
  readonly events: number;
  readonly instances: number;
  /** Events per second from the first event consumed to the last output acknowledged. */
  readonly eventsPerSecond: number;
  /** Events per second from the start call (connect, checks, group join included) to the last output. */
  readonly eventsPerSecondFromStart: number;
  readonly seconds: number;
  readonly secondsFromStart: number;
  /** The contenders' own CPU (user + system), start call to last output, per event. */
  readonly cpuUsPerEvent: number;
  readonly peakRssBytes: number;
  readonly maxStallMs: number;
  /**
   * Share of the whole machine's CPU that was busy during the run (every process: the contenders, Kafka,
   * Azurite, the emulator, other users). Near 1, the machine, not the contender, bounded the run.
   */
  readonly machineBusy?: number;
  readonly batches?: number;
  readonly jobsSubmitted?: number;
  readonly jobsRetried?: number;
  readonly deadLetters?: number;
  readonly producerSeconds?: number;
  readonly reports?: readonly Report[];
}

/** Waits until the group has `members` members, every one assigned (a live run starts from a settled group). */
async function waitForGroup(kafka: Kafka, groupId: string, members: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const { groups } = await admin.describeGroups([groupId]);
      const group = groups[0];
      if (
        group?.state === "Stable" &&
        group.members.length === members &&
        group.members.every((m) => m.memberAssignment.length > 0)
      )
        return;
      await sleep(100);
    }
    throw new Error(`group ${groupId} did not settle with ${members} members within 60 s`);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Starts the contenders, (for a live run: waits for their group, then produces the input), and waits until
 * `events` outputs are acknowledged, failing when nothing moves for 60 s.
 */
async function measure(
  name: string,
  contenders: readonly Contender[],
  events: number,
  live?: { kafka: Kafka; group: string; topic: string; spec: InputSpec },
  { stuckMs = 120_000 } = {},
): Promise<RunFigures> {
  const failed = (problem: string): RunFigures => ({
    name,
    ok: false,
    problem,
    events,
    instances: contenders.length,
    eventsPerSecond: Number.NaN,
    eventsPerSecondFromStart: Number.NaN,
    seconds: Number.NaN,
    secondsFromStart: Number.NaN,
    cpuUsPerEvent: Number.NaN,
    peakRssBytes: Number.NaN,
    maxStallMs: Number.NaN,
  });
  try {
    const cpuBefore = await Promise.all(contenders.map(async (c) => (await c.progress()).cpuNowUs));
    const machineBefore = machineCpu();
    const started = await Promise.all(contenders.map((c) => c.start()));
    let producerSeconds: number | undefined;
    if (live) {
      await waitForGroup(live.kafka, live.group, contenders.length);
      producerSeconds = await produceInput(live.kafka, live.topic, live.spec);
    }
    // Moving: events consumed, batches sealed, jobs ended or outputs acknowledged (a big batch's job is
    // long, with nothing else moving, while its file is written, scored and read).
    let lastMoved = "";
    let lastMoveAt = Date.now();
    for (;;) {
      const progress = await Promise.all(contenders.map((c) => c.progress()));
      const out = progress.reduce((s, p) => s + p.out, 0);
      if (out >= events) break;
      const moved = progress.map((p) => `${p.consumed}/${p.batches}/${p.jobsCompleted}/${p.out}`).join(",");
      if (moved !== lastMoved) {
        lastMoved = moved;
        lastMoveAt = Date.now();
      } else if (Date.now() - lastMoveAt > stuckMs) {
        return failed(`stuck at ${num(out)} of ${num(events)} outputs for ${stuckMs / 1000} s`);
      }
      await sleep(100);
    }
    const machineAfter = machineCpu();
    const reports = await Promise.all(contenders.map((c) => c.report()));
    const firstConsumed = Math.min(...reports.map((r) => r.firstConsumedAtMs ?? Number.NaN));
    const lastOutAt = Math.max(...reports.map((r) => r.lastOutAtMs ?? Number.NaN));
    const startAt = Math.min(...started.map((s) => s.startedAtMs));
    const cpuUs = reports.reduce((s, r, i) => s + (r.cpuAtLastOutUs - (cpuBefore[i] as number)), 0);
    const predictions = reports.reduce((s, r) => s + r.predictions, 0);
    const deadLetters = reports.reduce((s, r) => s + r.deadLetters, 0);
    const seconds = (lastOutAt - firstConsumed) / 1000;
    const secondsFromStart = (lastOutAt - startAt) / 1000;
    const figures: RunFigures = {
      name,
      ok: predictions === events && deadLetters === 0,
      ...(predictions === events && deadLetters === 0
        ? {}
        : { problem: `${num(predictions)} outputs and ${num(deadLetters)} dead letters for ${num(events)}` }),
      events,
      instances: contenders.length,
      eventsPerSecond: events / seconds,
      eventsPerSecondFromStart: events / secondsFromStart,
      seconds,
      secondsFromStart,
      cpuUsPerEvent: cpuUs / events,
      peakRssBytes: Math.max(...reports.map((r) => r.maxRssBytes)),
      maxStallMs: Math.max(...reports.map((r) => r.maxStallMs)),
      ...(machineBefore && machineAfter
        ? {
            machineBusy:
              (machineAfter.busy - machineBefore.busy) /
              Math.max(1, machineAfter.total - machineBefore.total),
          }
        : {}),
      batches: reports.reduce((s, r) => s + r.batches, 0),
      jobsSubmitted: reports.reduce((s, r) => s + r.jobsSubmitted, 0),
      jobsRetried: reports.reduce((s, r) => s + r.jobsRetried, 0),
      deadLetters,
      ...(producerSeconds === undefined ? {} : { producerSeconds }),
      reports,
    };
    return figures;
  } catch (error) {
    return failed((error as Error).message);
  } finally {
    await Promise.all(contenders.map((c) => c.close()));
  }
}

interface Context {
  readonly stack: StackEndpoints;
  readonly kafka: Kafka;
  readonly emulators: Emulators;
}

let contenderCount = 0;
async function connector(ctx: Context, run: Omit<ConnectorRun, "topics" | "group"> & { group?: string }) {
  const id = `bench-${runId}-${++contenderCount}`;
  const topics = await contenderTopics(ctx.stack, ctx.kafka, id);
  const full: ConnectorRun = { ...run, topics, group: run.group ?? `${id}-group` };
  return {
    id,
    topics,
    contender: (n = 0) => spawnContender(`${id}.${n}`, CONNECTOR, connectorEnv(ctx.stack, full)),
  };
}

async function throughputPart(ctx: Context, input: string): Promise<RunFigures[]> {
  const runs: RunFigures[] = [];
  const outTopic = `bench-${runId}-baseline-out`;
  await createTopics(ctx.kafka, [{ name: outTopic, partitions: PARTITIONS }]);
  const baseline = spawnContender("baseline", BASELINE, {
    BENCH_BROKERS: ctx.stack.kafkaBrokers.join(","),
    BENCH_INPUT_TOPIC: input,
    BENCH_OUTPUT_TOPIC: outTopic,
    BENCH_GROUP: `bench-${runId}-baseline`,
  });
  runs.push(await measure("baseline: bare kafkajs pipe", [baseline], EVENTS));
  for (const batch of BATCH_SIZES) {
    for (const guarantee of ["exactly-once", "at-least-once"] as const) {
      const c = await connector(ctx, { guarantee, batch, scoringUri: ctx.emulators.fast, input });
      runs.push(await measure(`connector, ${guarantee}, batches of ${num(batch)}`, [c.contender()], EVENTS));
    }
  }
  return runs;
}

async function scaleOutPart(ctx: Context): Promise<RunFigures[]> {
  const runs: RunFigures[] = [];
  for (const instances of [1, 2]) {
    const input = `bench-${runId}-scale-${instances}-in`;
    await createTopics(ctx.kafka, [{ name: input, partitions: PARTITIONS }]);
    const c = await connector(ctx, {
      guarantee: "exactly-once",
      batch: HEADLINE_BATCH,
      scoringUri: ctx.emulators.fast,
      input,
    });
    const group = `${c.id}-group`;
    const contenders = Array.from({ length: instances }, (_, n) => c.contender(n));
    runs.push(
      await measure(
        `${instances} instance${instances > 1 ? "s" : ""}, exactly-once, live input`,
        contenders,
        EVENTS,
        {
          kafka: ctx.kafka,
          group,
          topic: input,
          spec: { events: EVENTS, stores: STORES, seed: 29 },
        },
      ),
    );
  }
  return runs;
}

interface FilesFigures {
  readonly name: string;
  readonly events: number;
  readonly stores: number;
  readonly batches: number;
  readonly filesPerBatch: { readonly mean: number; readonly min: number; readonly max: number };
  readonly rowsPerFile: number;
  readonly run: RunFigures;
}

/** Files per batch from the input container: each batch is one folder (its job's input), manifests aside. */
async function filesPart(ctx: Context): Promise<FilesFigures[]> {
  const out: FilesFigures[] = [];
  const cases = [
    { name: "skewed (10 stores, many events each)", stores: 10 },
    { name: "wide (one store per event)", stores: FILES_EVENTS },
  ];
  for (const c of cases) {
    const input = `bench-${runId}-files-${c.stores}-in`;
    await createTopics(ctx.kafka, [{ name: input, partitions: PARTITIONS }]);
    await produceInput(ctx.kafka, input, { events: FILES_EVENTS, stores: c.stores, seed: 37 });
    const run = await connector(ctx, {
      guarantee: "exactly-once",
      batch: HEADLINE_BATCH,
      scoringUri: ctx.emulators.fast,
      input,
    });
    const figures = await measure(`files: ${c.name}`, [run.contender()], FILES_EVENTS);
    const container = BlobServiceClient.fromConnectionString(
      ctx.stack.blobConnectionString,
    ).getContainerClient(run.topics.inputContainer);
    const perFolder = new Map<string, number>();
    for await (const blob of container.listBlobsFlat()) {
      if (blob.name.includes("_manifests/")) continue;
      const folder = blob.name.slice(0, blob.name.lastIndexOf("/"));
      perFolder.set(folder, (perFolder.get(folder) ?? 0) + 1);
    }
    const counts = [...perFolder.values()];
    const files = counts.reduce((s, n) => s + n, 0);
    out.push({
      name: c.name,
      events: FILES_EVENTS,
      stores: c.stores,
      batches: counts.length,
      filesPerBatch: {
        mean: files / Math.max(1, counts.length),
        min: Math.min(...counts),
        max: Math.max(...counts),
      },
      rowsPerFile: FILES_EVENTS / Math.max(1, files),
      run: figures,
    });
  }
  return out;
}

interface MemoryPartFigures {
  readonly ok: boolean;
  readonly problem?: string;
  readonly eventsInFlight: number;
  readonly jobsHeld: number;
  readonly before?: MemoryFigures;
  readonly atHalf?: MemoryFigures;
  readonly atFull?: MemoryFigures;
  /**
   * (live heap + array buffers with them in flight - the same before) / events in flight: what the target
   * counts. A batch's members are kept in typed arrays, whose bytes are array buffers, outside the JS heap.
   */
  readonly bytesPerEvent?: number;
  /** The same between half and all in flight: the slope, fixed costs left out. */
  readonly bytesPerEventSlope?: number;
  /** (live heap with them in flight - live heap before) / events in flight: the JS heap alone. */
  readonly heapBytesPerEvent?: number;
  /** The same between half and all in flight: the slope, fixed costs left out. */
  readonly heapBytesPerEventSlope?: number;
  readonly rssBytesPerEvent?: number;
  readonly peakRssBytes?: number;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

/** What the in-flight events can hold: the JS heap and array buffers (typed arrays); external includes the latter. */
const held = (f: MemoryFigures) => f.heapUsed + f.arrayBuffers;

async function memoryPart(ctx: Context, input: string, spec: InputSpec): Promise<MemoryPartFigures> {
  const events = spec.events;
  const half = Math.floor(events / 2);
  const batch = HEADLINE_BATCH;
  const run = await connector(ctx, {
    guarantee: "exactly-once",
    batch,
    scoringUri: ctx.emulators.holding,
    input,
    extra: {
      FC_MAX_JOBS_IN_FLIGHT: String(Math.min(1000, Math.ceil(events / batch) + 4)),
      FC_MAX_EVENTS_IN_FLIGHT: String(events + batch),
      FC_JOB_POLL_INTERVAL_MS: "1000",
      FC_JOB_TIMEOUT_MS: "900000",
      FC_SHUTDOWN_TIMEOUT_MS: "500",
      // Stopping with jobs held abandons them, which logs an error per batch.
      FC_LOG_LEVEL: "fatal",
    },
  });
  const contender = run.contender();
  try {
    await contender.start();
    await sleep(1000);
    const before = await contender.memory();
    /** Every event consumed, sealed into a batch whose job was submitted and is still running. */
    const allHeld = (n: number) =>
      waitUntil(
        async () => {
          const p = await contender.progress();
          return p.eventsInFlight === n && p.batchedEvents === n && p.jobsSubmitted === p.batches;
        },
        300_000,
        `${num(n)} events uploaded and submitted`,
      );
    await produceInput(ctx.kafka, input, { ...spec, events: half });
    await allHeld(half);
    const atHalf = await contender.memory();
    await produceInput(ctx.kafka, input, {
      ...spec,
      first: half,
      events: events - half,
      seed: spec.seed + 1,
    });
    await allHeld(events);
    const atFull = await contender.memory();
    const p = await contender.progress();
    return {
      ok: true,
      eventsInFlight: events,
      jobsHeld: p.jobsSubmitted - p.jobsCompleted,
      before,
      atHalf,
      atFull,
      bytesPerEvent: (held(atFull) - held(before)) / events,
      bytesPerEventSlope: (held(atFull) - held(atHalf)) / (events - half),
      heapBytesPerEvent: (atFull.heapUsed - before.heapUsed) / events,
      heapBytesPerEventSlope: (atFull.heapUsed - atHalf.heapUsed) / (events - half),
      rssBytesPerEvent: (atFull.rss - before.rss) / events,
      peakRssBytes: atFull.maxRss,
    };
  } catch (error) {
    return { ok: false, problem: (error as Error).message, eventsInFlight: events, jobsHeld: 0 };
  } finally {
    await contender.close(5_000);
  }
}

interface StallFigures {
  readonly ok: boolean;
  readonly problem?: string;
  readonly rows: number;
  readonly guarantee: string;
  /** Longest event-loop delay from the job's completion until every prediction was acknowledged. */
  readonly maxStallMs?: number;
  readonly maxStallWholeRunMs?: number;
  readonly heapAtResultsBytes?: number;
  readonly peakHeapDuringResultsBytes?: number;
  readonly peakRssDuringResultsBytes?: number;
  readonly resultsSeconds?: number;
  readonly run?: RunFigures;
}

async function stallPart(ctx: Context, input: string): Promise<StallFigures> {
  const guarantee = STALL_GUARANTEE as Guarantee;
  const run = await connector(ctx, {
    guarantee,
    batch: STALL_ROWS,
    scoringUri: ctx.emulators.fast,
    input,
    extra: {
      FC_BATCH_MAX_BYTES: "268435456",
      FC_BATCH_MAX_WAIT_MS: "120000",
      FC_MAX_EVENTS_IN_FLIGHT: String(STALL_ROWS),
      FC_JOB_TIMEOUT_MS: "900000",
    },
  });
  const figures = await measure(`one batch of ${num(STALL_ROWS)}`, [run.contender()], STALL_ROWS, undefined, {
    stuckMs: 300_000,
  });
  const report = figures.reports?.[0];
  const phase = report?.resultsPhase;
  return {
    ok: figures.ok && phase !== undefined,
    ...(figures.problem ? { problem: figures.problem } : {}),
    rows: STALL_ROWS,
    guarantee,
    ...(phase
      ? {
          maxStallMs: phase.maxStallMs,
          heapAtResultsBytes: phase.heapAtStartBytes,
          peakHeapDuringResultsBytes: phase.peakHeapBytes,
          peakRssDuringResultsBytes: phase.peakRssBytes,
        }
      : {}),
    ...(report ? { maxStallWholeRunMs: report.maxStallMs } : {}),
    run: { ...figures, reports: [] },
  };
}

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || Number.isNaN(v) ? "n/a" : num(v, digits);

function printRuns(title: string, runs: readonly RunFigures[], baseline?: RunFigures) {
  printTable(
    title,
    [
      "contender",
      "events/s first->last",
      "events/s from start",
      "CPU us/event",
      "x baseline (first->last)",
      "x baseline (from start)",
      "peak RSS",
      "max stall",
      "machine busy",
      "status",
    ],
    runs.map((r) => [
      r.name,
      fmt(r.eventsPerSecond),
      fmt(r.eventsPerSecondFromStart),
      fmt(r.cpuUsPerEvent, 1),
      baseline && r !== baseline ? fmt(r.eventsPerSecond / baseline.eventsPerSecond, 2) : "-",
      baseline && r !== baseline
        ? fmt(r.eventsPerSecondFromStart / baseline.eventsPerSecondFromStart, 2)
        : "-",
      Number.isNaN(r.peakRssBytes) ? "n/a" : mib(r.peakRssBytes),
      `${fmt(r.maxStallMs)} ms`,
      r.machineBusy === undefined ? "n/a" : `${fmt(r.machineBusy * 100)}%`,
      r.ok ? "ok" : `FAILED: ${r.problem}`,
    ]),
  );
}

async function main(): Promise<number> {
  banner("end to end on the local stack: baseline and connector side by side, each in its own process");
  const started = Date.now();
  let stack: StackEndpoints;
  let stopOwnStack: (() => Promise<void>) | undefined;
  let ownPids: number[] = [];
  if (process.env.BENCH_STACK) {
    stack = JSON.parse(process.env.BENCH_STACK) as StackEndpoints;
  } else {
    console.log('starting the local stack (name "bench")...');
    const running = await startStack({ name: "bench", ports: await freeStackPorts() });
    stack = running.endpoints;
    stopOwnStack = running.stop;
    ownPids = running.processes.map((p) => p.pid);
  }
  const emulators = await startEmulators(stack);
  const killAll = () => {
    for (const pid of [...emulators.pids, ...ownPids]) killProcessGroupNow(pid);
  };
  process.once("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.log(`\n${signal}: stopping the emulators${stopOwnStack ? " and the stack" : ""}`);
      killAll();
      process.exit(130);
    });
  }
  const kafka = kafkaOf(stack, `bench-${runId}`);
  const ctx: Context = { stack, kafka, emulators };
  const figures: Record<string, unknown> = {
    settings: {
      events: EVENTS,
      partitions: PARTITIONS,
      stores: STORES,
      batchSizes: BATCH_SIZES,
      jobsInFlight: JOBS_IN_FLIGHT,
      pollIntervalMs: POLL_MS,
      emulator: { coldStartMs: 0, runMs: 0 },
      memoryEvents: MEMORY_EVENTS,
      stallRows: STALL_ROWS,
      filesEvents: FILES_EVENTS,
      parts: [...PARTS],
    },
  };
  let ok = true;
  try {
    if (PARTS.has("throughput")) {
      const input = `bench-${runId}-in`;
      await createTopics(kafka, [{ name: input, partitions: PARTITIONS }]);
      const seconds = await produceInput(kafka, input, { events: EVENTS, stores: STORES, seed: 29 });
      console.log(
        `input: ${num(EVENTS)} JSON events over ${PARTITIONS} partitions produced in ${num(seconds, 1)} s`,
      );
      const runs = await throughputPart(ctx, input);
      const baseline = runs[0] as RunFigures;
      printRuns(
        `side by side: ${num(EVENTS)} events over ${PARTITIONS} partitions (a backlog read from its beginning), ${JOBS_IN_FLIGHT} jobs in flight, poll ${POLL_MS} ms, emulator answering at once`,
        runs,
        baseline,
      );
      figures.throughput = {
        inputProducedSeconds: seconds,
        runs: runs.map((r) => ({
          ...r,
          reports: undefined,
          ratioToBaseline: r === baseline ? 1 : r.eventsPerSecond / baseline.eventsPerSecond,
          ratioToBaselineFromStart:
            r === baseline ? 1 : r.eventsPerSecondFromStart / baseline.eventsPerSecondFromStart,
        })),
      };
      ok &&= runs.every((r) => r.ok);
    }
    if (PARTS.has("scaleout")) {
      const runs = await scaleOutPart(ctx);
      const [one, two] = runs as [RunFigures, RunFigures];
      printRuns(
        `scale-out: the same ${num(EVENTS)} events produced once the group is assigned (producer seconds: ${runs.map((r) => fmt(r.producerSeconds, 1)).join(" / ")})`,
        runs,
      );
      console.log(`two instances / one: ${fmt(two.eventsPerSecond / one.eventsPerSecond, 2)}`);
      figures.scaleOut = {
        runs: runs.map((r) => ({ ...r, reports: undefined })),
        ratio: two.eventsPerSecond / one.eventsPerSecond,
      };
      ok &&= runs.every((r) => r.ok);
    }
    if (PARTS.has("files")) {
      const cases = await filesPart(ctx);
      printTable(
        `files per batch and rows per file (batches of ${num(HEADLINE_BATCH)}, ${num(FILES_EVENTS)} events)`,
        ["input", "batches", "files/batch (mean, min..max)", "rows/file", "events/s first->last", "status"],
        cases.map((c) => [
          c.name,
          num(c.batches),
          `${fmt(c.filesPerBatch.mean, 1)} (${num(c.filesPerBatch.min)}..${num(c.filesPerBatch.max)})`,
          fmt(c.rowsPerFile, 1),
          fmt(c.run.eventsPerSecond),
          c.run.ok ? "ok" : `FAILED: ${c.run.problem}`,
        ]),
      );
      figures.files = cases.map((c) => ({ ...c, run: { ...c.run, reports: undefined } }));
      ok &&= cases.every((c) => c.run.ok);
    }
    // One wide input for memory and the stall: 100,000 stores, so a 10,000-event batch is one file and the
    // 1,000,000-event batch ten files of 100,000 rows (the emulator cannot read a file of 1,000,000 rows:
    // emulator/input.ts spreads a file's rows into one push(), past V8's argument limit).
    const bigInput = `bench-${runId}-big-in`;
    const wideStores = (events: number) => Math.min(events, 100_000);
    const bigSpec: InputSpec = { events: MEMORY_EVENTS, stores: wideStores(MEMORY_EVENTS), seed: 31 };
    let bigProduced = false;
    if (PARTS.has("memory")) {
      await createTopics(kafka, [{ name: bigInput, partitions: PARTITIONS }]);
      const m = await memoryPart(ctx, bigInput, bigSpec);
      bigProduced = m.ok;
      const row = (label: string, f: MemoryFigures | undefined) => [
        label,
        f ? mib(f.heapUsed) : "n/a",
        f ? mib(f.arrayBuffers) : "n/a",
        f ? mib(f.rss) : "n/a",
      ];
      printTable(
        `in-flight memory: ${num(MEMORY_EVENTS)} events, jobs held Running, after two full GCs (connector process)`,
        ["events in flight", "live heap", "array buffers", "RSS"],
        [
          row("0", m.before),
          row(num(Math.floor(MEMORY_EVENTS / 2)), m.atHalf),
          row(num(MEMORY_EVENTS), m.atFull),
        ],
      );
      printTable(
        "bytes per in-flight event",
        ["figure", "value"],
        [
          ["live heap + array buffers, 0 -> N", `${fmt(m.bytesPerEvent)} B`],
          ["live heap + array buffers, N/2 -> N (slope)", `${fmt(m.bytesPerEventSlope)} B`],
          ["live heap alone, 0 -> N", `${fmt(m.heapBytesPerEvent)} B`],
          ["live heap, N/2 -> N (slope)", `${fmt(m.heapBytesPerEventSlope)} B`],
          ["RSS, 0 -> N", `${fmt(m.rssBytesPerEvent)} B`],
          ["peak RSS of the connector process", m.peakRssBytes ? mib(m.peakRssBytes) : "n/a"],
          ["jobs held", num(m.jobsHeld)],
          ["status", m.ok ? "ok" : `FAILED: ${m.problem}`],
        ],
      );
      figures.memory = m;
      ok &&= m.ok;
    }
    if (PARTS.has("stall")) {
      let input = bigInput;
      if (!bigProduced || STALL_ROWS !== MEMORY_EVENTS) {
        input = `bench-${runId}-stall-in`;
        await createTopics(kafka, [{ name: input, partitions: PARTITIONS }]);
        await produceInput(kafka, input, { events: STALL_ROWS, stores: wideStores(STALL_ROWS), seed: 31 });
      }
      const s = await stallPart(ctx, input);
      printTable(
        `event loop while one ${num(STALL_ROWS)}-row predictions.csv is parsed and published (${s.guarantee})`,
        ["figure", "value"],
        [
          ["longest stall, job completed -> last prediction acknowledged", `${fmt(s.maxStallMs)} ms`],
          [
            "longest stall over the whole run (consume, serialise, upload too)",
            `${fmt(s.maxStallWholeRunMs)} ms`,
          ],
          [
            "live heap when the job completed -> peak while publishing",
            s.heapAtResultsBytes !== undefined && s.peakHeapDuringResultsBytes !== undefined
              ? `${mib(s.heapAtResultsBytes)} -> ${mib(s.peakHeapDuringResultsBytes)}`
              : "n/a",
          ],
          [
            "peak RSS while publishing",
            s.peakRssDuringResultsBytes ? mib(s.peakRssDuringResultsBytes) : "n/a",
          ],
          ["events/s first->last", fmt(s.run?.eventsPerSecond)],
          ["status", s.ok ? "ok" : `FAILED: ${s.problem}`],
        ],
      );
      figures.stall = s;
      ok &&= s.ok;
    }
  } catch (error) {
    console.log(`! end-to-end benchmark failed: ${(error as Error).stack ?? String(error)}`);
    ok = false;
  } finally {
    await emulators.stop();
    await stopOwnStack?.();
    process.off("exit", killAll);
  }
  figures.ok = ok;
  figures.seconds = (Date.now() - started) / 1000;
  writeFigures("e2e", figures);
  console.log(`\nend-to-end benchmark took ${num((Date.now() - started) / 1000, 1)} s`);
  return ok ? 0 : 1;
}

process.exit(await main());
