/**
 * End to end on the real local stack: Kafka, the schema registry and Azurite as processes (stack/), the
 * connector and the batch-endpoint emulator in this process, as the integration harness runs them.
 *   node bench/e2e.ts          BENCH_EVENTS=20000 by default
 * Knobs: BENCH_BATCH_RECORDS (FC_BATCH_MAX_RECORDS, default 1000), BENCH_MAX_JOBS_IN_FLIGHT (default: the
 * connector's, 8), BENCH_E2E_PART=throughput|memory (one part only), BENCH_E2E_TIMEOUT_MS (pipeline wait,
 * default 120000), BENCH_LOG_LEVEL (connector logs, on stderr), BENCH_HEAP_SNAPSHOT=<file>.
 *
 * 1. Throughput and latency: N JSON events over 6 partitions, produced as fast as Kafka takes them; timed
 *    until every prediction is acknowledged on the results topic. Latency per event: the result record's
 *    Kafka timestamp minus the input event's (source_timestamp), read back from the results topic.
 * 2. In-flight memory (docs/architecture.md, invariant 8): in a fresh process, jobs held Running (emulator runMs: 10 minutes)
 *    with every batch uploaded and submitted; live heap and RSS at 0, N/2 and N events in flight.
 *
 * The stack is started under the name "bench" on free ports and stopped at the end, on error and on
 * Ctrl-C too; every wait is bounded.
 */
import "../src/kafka/abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { fileURLToPath } from "node:url";
import { BlobServiceClient } from "@azure/storage-blob";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import { Kafka, logLevel } from "kafkajs";
import { pino } from "pino";
import { Registry } from "prom-client";
import { createEmulator, type Emulator } from "../emulator/index.ts";
import type { Config } from "../src/config/index.ts";
import { loadConfig } from "../src/config/index.ts";
import { type Connector, startConnector } from "../src/connector.ts";
import { createEventValidator } from "../src/consumer/validate.ts";
import type { BatchMember, FeatureRow } from "../src/types.ts";
import { localConnectorEnv } from "../stack/src/connectorEnv.ts";
import { killProcessGroupNow } from "../stack/src/processes.ts";
import { freeStackPorts, type RunningStack, startStack } from "../stack/src/stack.ts";
import type { StackEndpoints } from "../stack/src/types.ts";
import {
  banner,
  maxRss,
  mib,
  num,
  printTable,
  prng,
  quantile,
  realisticFeatures,
  settle,
  signedMib,
  storeId,
} from "./lib.ts";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000);
const PARTITIONS = 6;
const BATCH_RECORDS = Number(process.env.BENCH_BATCH_RECORDS ?? 1_000);
/** The emulator's job timing in the throughput run: short, so the connector (not the model) is measured. */
const COLD_START_MS = 100;
const RUN_MS = 100;
/** Bound on waiting for the pipeline to finish; the run fails (after cleaning up) past it. */
const PIPELINE_TIMEOUT_MS = Number(process.env.BENCH_E2E_TIMEOUT_MS ?? 120_000);

if (!Number.isSafeInteger(EVENTS) || EVENTS < PARTITIONS) throw new RangeError("BENCH_EVENTS must be >= 6");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Polls `check` every `everyMs` until it returns true; false when `timeoutMs` runs out first. */
async function waitFor(check: () => Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  return false;
}

/** The sum of a metric's values (over labels), or of one of a histogram's series (`_sum`, `_count`). */
async function metric(connector: Connector, name: string, series?: "sum" | "count"): Promise<number> {
  const m = await connector.metrics.registry.getSingleMetric(name)?.get();
  if (!m) throw new Error(`no metric ${name}`);
  const wanted = series ? `${name}_${series}` : undefined;
  return (m.values as ReadonlyArray<{ value: number; metricName?: string }>)
    .filter((v) => (wanted ? v.metricName === wanted : v.metricName === undefined || v.metricName === name))
    .reduce((sum, v) => sum + v.value, 0);
}

async function metricByLabel(connector: Connector, name: string, label: string): Promise<string> {
  const m = await connector.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? [])
    .filter((v) => v.value > 0)
    .map((v) => `${String(v.labels[label])} ${num(v.value)}`)
    .join(", ");
}

function sourceEvents(count: number, seed: number) {
  const random = prng(seed);
  return Array.from({ length: count }, (_, i) => {
    const store = storeId(i);
    const row = { store_id: store, features: realisticFeatures(random) };
    return { key: store, value: Buffer.from(JSON.stringify(row)), partition: i % PARTITIONS };
  });
}

interface World {
  readonly kafka: Kafka;
  readonly topics: { input: string; results: string; deadLetter: string };
  readonly config: Config;
  readonly emulator: Emulator;
  readonly connector: Connector;
  produce(messages: ReadonlyArray<{ key: string; value: Buffer; partition: number }>): Promise<void>;
  close(): Promise<void>;
}

/** Topics, containers, an emulator and a connector of their own, like test/helpers/connectorHarness.ts. */
async function startWorld(
  stack: StackEndpoints,
  name: string,
  emulatorTiming: { coldStartMs: number; runMs: number },
  env: Record<string, string>,
  logLevelName = "warn",
): Promise<World> {
  const id = `bench-${name}-${Date.now().toString(36)}`;
  const kafka = new Kafka({ clientId: id, brokers: [...stack.kafkaBrokers], logLevel: logLevel.NOTHING });
  const topics = { input: `${id}-in`, results: `${id}-out`, deadLetter: `${id}-dlq` };
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: topics.input, numPartitions: PARTITIONS, replicationFactor: 1 },
        { topic: topics.results, numPartitions: PARTITIONS, replicationFactor: 1 },
        { topic: topics.deadLetter, numPartitions: 1, replicationFactor: 1 },
      ],
    });
  } finally {
    await admin.disconnect();
  }
  const blobs = BlobServiceClient.fromConnectionString(stack.blobConnectionString);
  const inputContainer = `${id}-in`.slice(0, 63);
  const outputContainer = `${id}-out`.slice(0, 63);
  await blobs.getContainerClient(inputContainer).create();
  await blobs.getContainerClient(outputContainer).create();

  const emulator = await createEmulator({
    blobConnectionString: stack.blobConnectionString,
    outputContainer,
    ...emulatorTiming,
  });
  let connector: Connector | undefined;
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  try {
    const config = loadConfig({
      ...localConnectorEnv({
        endpoints: stack,
        groupId: `${id}-group`,
        topics,
        inputContainer,
        outputContainer,
        scoringUri: emulator.scoringUri,
      }),
      FC_CREATE_TOPICS: "true",
      FC_KAFKA_SESSION_TIMEOUT_MS: "10000",
      FC_BATCH_MAX_RECORDS: String(BATCH_RECORDS),
      FC_BATCH_MAX_WAIT_MS: "500",
      FC_JOB_POLL_INTERVAL_MS: "100",
      FC_JOB_TIMEOUT_MS: "60000",
      FC_HTTP_RETRY_DELAY_MS: "20",
      FC_HTTP_MAX_RETRY_DELAY_MS: "200",
      FC_RETRY_INITIAL_DELAY_MS: "20",
      FC_RETRY_MAX_DELAY_MS: "200",
      FC_HTTP_PORT: "0",
      FC_LOG_LEVEL: "warn",
      FC_SHUTDOWN_TIMEOUT_MS: "5000",
      ...env,
    });
    connector = await startConnector(config, {
      // On stderr, so the tables on stdout stay readable (kafkajs reports a fresh broker's loading coordinator).
      logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? logLevelName }, pino.destination(2)),
      metricsRegistry: new Registry(),
    });
    const running = connector;
    // Timing starts once the connector's consumer has joined its group (its /readyz says so).
    const ready = await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${running.httpPort}/readyz`).catch(() => undefined))?.ok === true,
      30_000,
      100,
    );
    if (!ready) throw new Error("the connector did not become ready within 30 s");
    await producer.connect();
    return {
      kafka,
      topics,
      config,
      emulator,
      connector: running,
      async produce(messages) {
        const CHUNK = 1_000;
        for (let i = 0; i < messages.length; i += CHUNK) {
          await producer.send({ topic: topics.input, acks: -1, messages: messages.slice(i, i + CHUNK) });
        }
      },
      async close() {
        await producer.disconnect().catch(() => {});
        await running.stop().catch(() => {});
        await emulator.close().catch(() => {});
      },
    };
  } catch (error) {
    await producer.disconnect().catch(() => {});
    await connector?.stop().catch(() => {});
    await emulator.close().catch(() => {});
    throw error;
  }
}

/**
 * Objects reachable now, counted in a heap snapshot: FeatureRows (an object with `store_id` and `features`)
 * and SealedBatches (an object with `rows` and `members`). After upload, invariant 8 of docs/architecture.md wants neither kept.
 */
async function heapCensus(): Promise<{ featureRows: number; sealedBatches: number; members: number }> {
  const session = new Session();
  session.connect();
  const chunks: string[] = [];
  session.on("HeapProfiler.addHeapSnapshotChunk", (m) => chunks.push(m.params.chunk));
  await new Promise<void>((resolve, reject) =>
    session.post("HeapProfiler.takeHeapSnapshot", { reportProgress: false }, (error) =>
      error ? reject(error) : resolve(),
    ),
  );
  session.disconnect();
  // For digging into what retains what (Chrome DevTools > Memory > Load): BENCH_HEAP_SNAPSHOT=<file>.
  if (process.env.BENCH_HEAP_SNAPSHOT) writeFileSync(process.env.BENCH_HEAP_SNAPSHOT, chunks.join(""));
  const snapshot = JSON.parse(chunks.join("")) as {
    snapshot: { meta: { node_fields: string[]; edge_fields: string[]; edge_types: [string[]] } };
    nodes: number[];
    edges: number[];
    strings: string[];
  };
  const { node_fields, edge_fields, edge_types } = snapshot.snapshot.meta;
  const nodeWidth = node_fields.length;
  const edgeWidth = edge_fields.length;
  const edgeCountAt = node_fields.indexOf("edge_count");
  const edgeTypeAt = edge_fields.indexOf("type");
  const edgeNameAt = edge_fields.indexOf("name_or_index");
  const property = edge_types[0].indexOf("property");
  const name = (s: string) => snapshot.strings.indexOf(s);
  const [storeIdName, featuresName, rowsName, membersName, sourceName, storeIdCamel, batchIdName] = [
    "store_id",
    "features",
    "rows",
    "members",
    "source",
    "storeId",
    "batchId",
  ].map(name) as [number, number, number, number, number, number, number];
  const nameAt = node_fields.indexOf("name");
  const toNodeAt = edge_fields.indexOf("to_node");
  const arrayName = name("Array");
  /** A real array (not an object literal's boilerplate, whose slots hold holes). */
  const isArray = (node: number | undefined) =>
    node !== undefined && snapshot.nodes[node + nameAt] === arrayName;
  let featureRows = 0;
  let sealedBatches = 0;
  let members = 0;
  let edge = 0;
  for (let node = 0; node < snapshot.nodes.length; node += nodeWidth) {
    const count = snapshot.nodes[node + edgeCountAt] as number;
    const props = new Map<number, number>();
    for (let e = 0; e < count; e++, edge += edgeWidth) {
      if (snapshot.edges[edge + edgeTypeAt] === property)
        props.set(snapshot.edges[edge + edgeNameAt] as number, snapshot.edges[edge + toNodeAt] as number);
    }
    if (props.has(storeIdName) && isArray(props.get(featuresName))) featureRows++;
    if (props.has(batchIdName) && isArray(props.get(rowsName)) && props.has(membersName)) sealedBatches++;
    if (props.has(sourceName) && props.has(storeIdCamel)) members++;
  }
  return { featureRows, sealedBatches, members };
}

/** RSS now and at its peak (VmHWM) of a stack service, from /proc. */
function procMemory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rss: kb("VmRSS") * 1024, peak: kb("VmHWM") * 1024 };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// 1. Throughput and latency

type Guarantee = "exactly-once" | "at-least-once";

interface ThroughputFigures {
  readonly ok: boolean;
  readonly eventsPerSecond: number;
  readonly cpuUsPerEvent: number;
}

async function throughputRun(stack: RunningStack, guarantee: Guarantee): Promise<ThroughputFigures> {
  const messages = sourceEvents(EVENTS, 29);
  const world = await startWorld(
    stack.endpoints,
    guarantee === "exactly-once" ? "eos" : "alo",
    { coldStartMs: COLD_START_MS, runMs: RUN_MS },
    {
      FC_DELIVERY_GUARANTEE: guarantee,
      ...(process.env.BENCH_MAX_JOBS_IN_FLIGHT
        ? { FC_MAX_JOBS_IN_FLIGHT: process.env.BENCH_MAX_JOBS_IN_FLIGHT }
        : {}),
    },
  );
  const { connector } = world;
  let ok = true;
  let figures: Omit<ThroughputFigures, "ok"> = { eventsPerSecond: Number.NaN, cpuUsPerEvent: Number.NaN };
  try {
    let peakRss = process.memoryUsage.rss();
    const rssTimer = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }, 100);
    const cpuBefore = process.cpuUsage();
    const started = Date.now();
    let consumedAt: number | undefined;
    let publishedAt: number | undefined;
    await world.produce(messages);
    const producedAt = Date.now();
    const done = await waitFor(async () => {
      if (
        consumedAt === undefined &&
        (await metric(connector, "forecast_connector_events_consumed_total")) >= EVENTS
      )
        consumedAt = Date.now();
      const published = await metric(connector, "forecast_connector_predictions_published_total");
      const dead = await metric(connector, "forecast_connector_dead_letters_total");
      if (published + dead >= EVENTS) publishedAt = Date.now();
      return publishedAt !== undefined;
    }, PIPELINE_TIMEOUT_MS);
    const cpu = process.cpuUsage(cpuBefore);
    clearInterval(rssTimer);
    const end = publishedAt ?? Date.now();

    const published = await metric(connector, "forecast_connector_predictions_published_total");
    const deadLetters = await metric(connector, "forecast_connector_dead_letters_total");
    const batches = await metric(connector, "forecast_connector_batch_size_events", "count");
    const batchedEvents = await metric(connector, "forecast_connector_batch_size_events", "sum");
    const jobsSubmitted = await metric(connector, "forecast_connector_jobs_submitted_total");
    const jobsRetried = await metric(connector, "forecast_connector_jobs_retried_total");
    const triggers = await metricByLabel(connector, "forecast_connector_batches_flushed_total", "trigger");
    const pausedNow = await metric(connector, "forecast_connector_consumer_paused");
    const mean = async (name: string) =>
      (await metric(connector, name, "sum")) / Math.max(1, await metric(connector, name, "count"));
    const uploadMean = await mean("forecast_connector_blob_upload_duration_seconds");
    const jobMean = await mean("forecast_connector_job_duration_seconds");
    const e2eMeanMetric = await mean("forecast_connector_end_to_end_latency_seconds");
    const emulatorJobs = world.emulator.jobs();
    const completedJobs = emulatorJobs.filter((j) => j.status === "Completed").length;

    // Every prediction read back: latency from the record timestamps, and no duplicates.
    const latencies: number[] = [];
    const sources = new Set<string>();
    const registry = new SchemaRegistry({ host: stack.endpoints.registryUrl });
    const reader = world.kafka.consumer({ groupId: `${world.topics.results}-reader` });
    await reader.connect();
    await reader.subscribe({ topic: world.topics.results, fromBeginning: true });
    const readAll = new Promise<void>((resolve) => {
      void reader.run({
        eachBatch: async ({ batch }) => {
          for (const message of batch.messages) {
            const value = (await registry.decode(message.value as Buffer)) as {
              source_partition: number;
              source_offset: number | bigint;
              source_timestamp: number | Date;
            };
            sources.add(`${value.source_partition}/${String(value.source_offset)}`);
            latencies.push(Number(message.timestamp) - Number(value.source_timestamp));
          }
          if (latencies.length >= published) resolve();
        },
      });
    });
    await withTimeout("reading the results topic", 60_000, readAll).catch((error: Error) => {
      console.log(`! ${error.message} (${num(latencies.length)} of ${num(published)} read)`);
      ok = false;
    });
    await reader.disconnect();
    latencies.sort((a, b) => a - b);

    const seconds = (end - started) / 1000;
    const ms = (v: number) => `${num(v)} ms`;
    printTable(
      `end to end, ${guarantee}: ${num(EVENTS)} events over ${PARTITIONS} partitions (emulator: cold start ${COLD_START_MS} ms, run ${RUN_MS} ms)`,
      ["figure", "value"],
      [
        ["events produced (JSON, ~112 B each)", num(EVENTS)],
        ["producing took", ms(producedAt - started)],
        ["all events consumed after", consumedAt ? ms(consumedAt - started) : "n/a"],
        [
          "all predictions on results topic after",
          publishedAt ? ms(publishedAt - started) : `not within ${ms(PIPELINE_TIMEOUT_MS)}`,
        ],
        ["throughput (events/s, produce start to last ack)", num(published / seconds)],
        ["predictions published / dead letters", `${num(published)} / ${num(deadLetters)}`],
        ["distinct sources among results read back", `${num(sources.size)} of ${num(latencies.length)}`],
        ["latency p50 (event ts -> result ts)", ms(quantile(latencies, 0.5))],
        ["latency p90", ms(quantile(latencies, 0.9))],
        ["latency p99", ms(quantile(latencies, 0.99))],
        ["latency max", ms(latencies.at(-1) ?? Number.NaN)],
        ["latency mean (end_to_end_latency histogram)", ms(e2eMeanMetric * 1000)],
        ["batch size (FC_BATCH_MAX_RECORDS)", num(world.config.batch.maxRecords)],
        [
          "batches sealed / mean events per batch",
          `${num(batches)} / ${num(batchedEvents / Math.max(1, batches))}`,
        ],
        ["seal triggers", triggers || "-"],
        ["jobs submitted / completed at the emulator", `${num(jobsSubmitted)} / ${num(completedJobs)}`],
        ["jobs resubmitted", num(jobsRetried)],
        ["max jobs in flight (FC_MAX_JOBS_IN_FLIGHT)", num(world.config.flow.maxJobsInFlight)],
        [
          "mean blob upload / job duration (submit -> terminal)",
          `${ms(uploadMean * 1000)} / ${ms(jobMean * 1000)}`,
        ],
        ["consumer paused at the end", pausedNow ? "yes" : "no"],
        [
          "CPU of this process (connector + emulator + producer)",
          `${num((cpu.user + cpu.system) / 1000)} ms = ${num((cpu.user + cpu.system) / EVENTS, 1)} us/event`,
        ],
        ["peak RSS of this process during the run", mib(peakRss)],
      ],
    );
    if (!done || published !== EVENTS || sources.size !== latencies.length) ok = false;
    figures = { eventsPerSecond: published / seconds, cpuUsPerEvent: (cpu.user + cpu.system) / EVENTS };
  } finally {
    await world.close();
  }
  return { ok, ...figures };
}

// ---------------------------------------------------------------------------------------------------------
// 2. In-flight memory, in a fresh process (the parent passes the stack's endpoints)

async function memoryChild(endpoints: StackEndpoints): Promise<void> {
  const half = Math.floor(EVENTS / 2);
  const world = await startWorld(
    endpoints,
    "mem",
    // Jobs stay Running far longer than the measurement: every batch is uploaded and submitted, none settles.
    { coldStartMs: 50, runMs: 600_000 },
    {
      FC_MAX_JOBS_IN_FLIGHT: String(Math.ceil(EVENTS / BATCH_RECORDS) + 4),
      FC_MAX_EVENTS_IN_FLIGHT: String(Math.max(50_000, EVENTS * 2)),
      FC_JOB_POLL_INTERVAL_MS: "1000",
      FC_JOB_TIMEOUT_MS: "900000",
      FC_SHUTDOWN_TIMEOUT_MS: "500",
    },
    // Stopping with jobs held is expected to abandon them, which logs an error per batch.
    "fatal",
  );
  const { connector } = world;
  try {
    const messages = sourceEvents(EVENTS, 31);
    const measure = async () => {
      await sleep(500);
      settle();
      const m = process.memoryUsage();
      return { heap: m.heapUsed, external: m.external + m.arrayBuffers, rss: m.rss };
    };
    /** Every consumed event sealed into a batch whose job was submitted and is still running. */
    const allHeld = async (produced: number) =>
      waitFor(async () => {
        const inFlight = await metric(connector, "forecast_connector_events_in_flight");
        const batched = await metric(connector, "forecast_connector_batch_size_events", "sum");
        const batches = await metric(connector, "forecast_connector_batch_size_events", "count");
        const submitted = await metric(connector, "forecast_connector_jobs_submitted_total");
        return inFlight === produced && batched === produced && submitted === batches;
      }, 60_000);

    await sleep(1000);
    const base = await measure();
    await world.produce(messages.slice(0, half));
    if (!(await allHeld(half))) throw new Error("the first half was not uploaded and submitted within 60 s");
    const atHalf = await measure();
    await world.produce(messages.slice(half));
    if (!(await allHeld(EVENTS))) throw new Error("all events were not uploaded and submitted within 60 s");
    const atFull = await measure();
    const jobs = world.emulator.jobs();
    const held = jobs.filter((j) => j.status !== "Completed" && j.status !== "Failed").length;
    const peakRss = maxRss();
    const census = await heapCensus();

    // Reference: what N features rows and N batch members cost on their own, built the way the connector does.
    const validator = createEventValidator();
    settle();
    const beforeRows = process.memoryUsage().heapUsed;
    const rows: FeatureRow[] = messages.map((m) => {
      const v = validator.validateBytes(m.value);
      if (!v.ok) throw new Error(v.detail);
      return v.row;
    });
    settle();
    const rowBytes = (process.memoryUsage().heapUsed - beforeRows) / rows.length;
    const beforeMembers = process.memoryUsage().heapUsed;
    const members: BatchMember[] = rows.map((row, i) => ({
      source: {
        topic: world.topics.input,
        partition: i % PARTITIONS,
        offset: String(i),
        timestampMs: Date.now(),
      },
      storeId: row.store_id,
    }));
    settle();
    const memberBytes = (process.memoryUsage().heapUsed - beforeMembers) / members.length;
    if (rows.length + members.length === 0) throw new Error("unreachable");

    const perEvent = (a: number, b: number, n: number) => `${num((b - a) / n)} B`;
    printTable(
      `in-flight memory: jobs held Running, every batch uploaded and submitted (fresh process; after a full GC)`,
      ["events in flight", "jobs held", "live heap", "external+arrayBuffers", "RSS"],
      [
        ["0", "0", mib(base.heap), mib(base.external), mib(base.rss)],
        [
          num(half),
          "",
          `${mib(atHalf.heap)} (${signedMib(atHalf.heap - base.heap)})`,
          mib(atHalf.external),
          `${mib(atHalf.rss)} (${signedMib(atHalf.rss - base.rss)})`,
        ],
        [
          num(EVENTS),
          num(held),
          `${mib(atFull.heap)} (${signedMib(atFull.heap - base.heap)})`,
          mib(atFull.external),
          `${mib(atFull.rss)} (${signedMib(atFull.rss - base.rss)})`,
        ],
      ],
    );
    printTable(
      "per event in flight after upload (invariant 8: the features live in the blob)",
      ["figure", "bytes/event"],
      [
        ["live heap, 0 -> N", perEvent(base.heap, atFull.heap, EVENTS)],
        [
          "live heap, N/2 -> N (slope, fixed costs excluded)",
          perEvent(atHalf.heap, atFull.heap, EVENTS - half),
        ],
        ["RSS, 0 -> N (mostly heap spaces growing; noisy)", perEvent(base.rss, atFull.rss, EVENTS)],
        ["reference: one BatchMember (source ref + store id)", `${num(memberBytes)} B`],
        ["reference: one FeatureRow (13 features), if it were kept", `${num(rowBytes)} B`],
      ],
    );
    printTable(
      `reachable objects with ${num(EVENTS)} events in flight after upload (heap snapshot)`,
      ["object", "count", "expected"],
      [
        ["FeatureRow ({store_id, features: [...]})", num(census.featureRows), "0"],
        ["SealedBatch ({batchId, rows: [...], members})", num(census.sealedBatches), "0"],
        ["BatchMember ({source, storeId})", num(census.members), num(EVENTS)],
      ],
    );
    console.log(`peak RSS of the memory process (before the heap snapshot): ${mib(peakRss)}`);
  } finally {
    await world.close();
  }
}

/** Runs the memory measurement in a child process of its own, bounded in time; false when it failed. */
function runMemoryChild(stack: RunningStack): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), "--memory-child"], {
      env: { ...process.env, BENCH_STACK: JSON.stringify(stack.endpoints) },
      stdio: "inherit",
    });
    const timer = setTimeout(() => {
      console.log("! the memory measurement took longer than 120 s: stopped");
      child.kill("SIGKILL");
    }, 120_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  banner("end to end on the local stack (Kafka, schema registry, Azurite; connector + emulator in-process)");
  const startedAt = Date.now();
  console.log('starting the local stack (name "bench")...');
  const stack = await startStack({ name: "bench", ports: await freeStackPorts() });
  console.log(`stack up in ${num((Date.now() - startedAt) / 1000, 1)} s (${stack.dir})`);
  const killAll = () => {
    for (const p of stack.processes) killProcessGroupNow(p.pid);
  };
  process.once("exit", killAll);
  const onSignal = (signal: NodeJS.Signals) => {
    console.log(`\n${signal}: stopping the stack`);
    void stack.stop().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let ok = false;
  try {
    const part = process.env.BENCH_E2E_PART;
    let tput = true;
    if (part !== "memory") {
      // Both delivery modes on the same stack and input, one after the other: the cost of exactly-once.
      const eos = await throughputRun(stack, "exactly-once");
      const alo = await throughputRun(stack, "at-least-once");
      tput = eos.ok && alo.ok;
      printTable(
        "exactly-once against at-least-once (same stack, same input)",
        ["mode", "events/s (produce start to last ack)", "CPU us/event (this process)"],
        [
          ["exactly-once", num(eos.eventsPerSecond), num(eos.cpuUsPerEvent, 1)],
          ["at-least-once", num(alo.eventsPerSecond), num(alo.cpuUsPerEvent, 1)],
          [
            "exactly-once / at-least-once",
            num(eos.eventsPerSecond / alo.eventsPerSecond, 2),
            num(eos.cpuUsPerEvent / alo.cpuUsPerEvent, 2),
          ],
        ],
      );
    }
    const memory = part === "throughput" ? true : await runMemoryChild(stack);
    ok = tput && memory;
    printTable(
      "stack services (separate processes)",
      ["service", "RSS now", "peak RSS"],
      stack.processes.map((p) => {
        const m = procMemory(p.pid);
        return [p.name, m ? mib(m.rss) : "n/a", m ? mib(m.peak) : "n/a"];
      }),
    );
  } catch (error) {
    console.log(`! end-to-end benchmark failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await stack.stop();
    process.off("exit", killAll);
  }
  console.log(`\nend-to-end benchmark took ${num((Date.now() - startedAt) / 1000, 1)} s; stack stopped`);
  return ok ? 0 : 1;
}

if (process.argv[2] === "--memory-child") {
  const endpoints = JSON.parse(process.env.BENCH_STACK ?? "null") as StackEndpoints | null;
  if (!endpoints) throw new Error("--memory-child needs BENCH_STACK");
  await memoryChild(endpoints).then(
    () => process.exit(0),
    (error: Error) => {
      console.log(`! memory measurement failed: ${error.stack ?? String(error)}`);
      process.exit(1);
    },
  );
} else {
  process.exit(await main());
}
