/**
 * `npm run demo`: a newcomer's first run. Starts the local stack (Kafka, schema registry, Azurite, the
 * batch-endpoint emulator), runs `forecast-connector run` as its own process, publishes sample feature
 * events (a few of them invalid), and prints the forecasts and dead letters as they arrive.
 *
 *   npm run demo              keeps running after the sample until Ctrl-C (metrics stay up)
 *   npm run demo -- --once    stops everything once every sample event is accounted for
 *
 * Either way it ends with a summary of the connector's own metrics, read from its /metrics before it stops.
 */
import "../scripts/requireNode.cjs"; // first: stops on a too-old Node before anything else loads
import "../src/kafka/abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { BlobServiceClient } from "@azure/storage-blob";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import { Kafka, logLevel } from "kafkajs";
import { localConnectorEnv } from "../stack/src/connectorEnv.ts";
import { repoRoot } from "../stack/src/paths.ts";
import { freePort } from "../stack/src/processes.ts";
import { freeStackPorts, startStack } from "../stack/src/stack.ts";

// kafkajs 2.2.4 arms a timer with a negative delay when not throttled; Node 24 warns once per process. Harmless
// (src/cli.ts drops it too): only that warning is dropped here.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  if (rest[0] === "TimeoutNegativeWarning" || (warning as Error).name === "TimeoutNegativeWarning") return;
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

const once = process.argv.includes("--once");
const VALID_EVENTS = 40;
const STORES = ["CA_1", "CA_2", "CA_3", "TX_1", "TX_2", "TX_3", "WI_1", "WI_2", "WI_3", "WI_4"];
const INVALID = [
  { why: "not JSON", value: "{store_id: CA_1" },
  {
    why: "12 features instead of 13",
    value: JSON.stringify({ store_id: "CA_1", features: Array(12).fill(0.5) }),
  },
  { why: "no store_id", value: JSON.stringify({ features: Array(13).fill(0.5) }) },
  {
    why: "a feature that is not a number",
    value: JSON.stringify({ store_id: "TX_9", features: [..."abcdefghijklm"] }),
  },
];

function sampleFeatures(i: number): number[] {
  return Array.from({ length: 13 }, (_, k) => Number((((i * 13 + k * 7) % 50) / 50).toFixed(2)));
}

async function main(): Promise<void> {
  console.log("Starting the local stack (first run fetches Kafka and the registry with Maven)...");
  const metricsPort = await freePort();
  const stack = await startStack({
    name: "demo",
    ports: await freeStackPorts(),
    withEmulator: true,
    // Seconds, not minutes: long enough to watch a job go NotStarted -> Queued -> Running -> Completed.
    emulatorEnv: { EMULATOR_COLD_START_MS: "2000", EMULATOR_RUN_MS: "1500" },
  });
  const e = stack.endpoints;
  let connector: ReturnType<typeof spawn> | undefined;
  const stopAll = async () => {
    if (connector && connector.exitCode === null) {
      connector.kill("SIGTERM");
      await new Promise((resolve) => connector?.once("exit", resolve));
    }
    await stack.stop();
  };
  process.once("SIGINT", () => {
    console.log("\nStopping...");
    void stopAll().then(() => process.exit(0));
  });

  try {
    const blobs = BlobServiceClient.fromConnectionString(e.blobConnectionString);
    await blobs.getContainerClient("feature-batches").createIfNotExists();
    await blobs.getContainerClient("azureml-blobstore").createIfNotExists();

    const env = {
      ...process.env,
      ...localConnectorEnv({
        endpoints: e,
        groupId: "forecast-connector-demo",
        topics: { input: "store-features", results: "store-forecasts", deadLetter: "store-features-dlq" },
        inputContainer: "feature-batches",
        scoringUri: e.emulatorScoringUri as string,
      }),
      FC_CREATE_TOPICS: "true",
      FC_TOPIC_PARTITIONS: "3",
      FC_BATCH_MAX_RECORDS: "15",
      FC_BATCH_MAX_WAIT_MS: "2000",
      FC_JOB_POLL_INTERVAL_MS: "500",
      FC_HTTP_PORT: String(metricsPort),
    };
    const logFile = join(stack.dir, "connector.log");
    const log = createWriteStream(logFile);
    connector = spawn(process.execPath, [join(repoRoot, "src", "cli.ts"), "run"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    connector.stdout?.pipe(log);
    connector.stderr?.pipe(log);
    await waitForReady(metricsPort, connector);

    console.log(`
Local stack and connector are up:
  Kafka              ${e.kafkaBrokers.join(",")}   topics store-features -> store-forecasts, store-features-dlq
  Schema registry    ${e.registryUrl}
  Blob storage       ${e.blobEndpoint} (Azurite)
  Batch endpoint     ${e.emulatorScoringUri} (the local emulator, standing in for Azure ML)
  Metrics            http://127.0.0.1:${metricsPort}/metrics   (health: /healthz, /readyz)
  Connector log      ${logFile}
`);

    const kafka = new Kafka({ clientId: "demo", brokers: [...e.kafkaBrokers], logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: "store-features",
      messages: [
        ...Array.from({ length: VALID_EVENTS }, (_, i) => {
          const store = STORES[i % STORES.length] as string;
          return { key: store, value: JSON.stringify({ store_id: store, features: sampleFeatures(i) }) };
        }),
        ...INVALID.map((bad, i) => ({ key: `bad-${i}`, value: bad.value })),
      ],
    });
    await producer.disconnect();
    console.log(
      `Published ${VALID_EVENTS} feature events and ${INVALID.length} invalid ones. Waiting for forecasts...\n`,
    );

    const registry = new SchemaRegistry({ host: e.registryUrl });
    const consumer = kafka.consumer({ groupId: `demo-reader-${Date.now()}` });
    await consumer.connect();
    await consumer.subscribe({ topics: ["store-forecasts", "store-features-dlq"], fromBeginning: true });
    let forecasts = 0;
    let deadLetters = 0;
    const latenciesMs: number[] = [];
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ topic, message }) => {
          if (topic === "store-forecasts") {
            const r = (await registry.decode(message.value as Buffer)) as Record<string, unknown>;
            forecasts++;
            latenciesMs.push(millis(r.predicted_at) - millis(r.source_timestamp));
            console.log(
              `forecast     ${String(r.store_id).padEnd(5)} ${Number(r.prediction).toFixed(8).padStart(12)}   ` +
                `job ${r.job_id}  from partition ${r.source_partition} offset ${r.source_offset}`,
            );
          } else {
            const h = message.headers ?? {};
            deadLetters++;
            console.log(`dead letter  ${String(h["dlq.reason"])}: ${String(h["dlq.detail"])}`);
          }
          if (forecasts >= VALID_EVENTS && deadLetters >= INVALID.length) resolve();
        },
      });
    });
    await done;
    await consumer.disconnect();
    console.log(
      `\nAll ${VALID_EVENTS + INVALID.length} events accounted for: ${forecasts} forecasts, ${deadLetters} dead letters.`,
    );
    const expected = {
      consumed: VALID_EVENTS + INVALID.length,
      predicted: VALID_EVENTS,
      dead: INVALID.length,
    };
    console.log(`\n${(await metricsSummary(metricsPort, expected, latenciesMs)).join("\n")}`);
    if (once) {
      await stopAll();
      return;
    }
    console.log(`\nMetrics: curl -s http://127.0.0.1:${metricsPort}/metrics | grep forecast_connector_`);
    console.log("Press Ctrl-C to stop the connector and the stack.");
    await new Promise(() => {});
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** A timestamp-millis field as avsc hands it over: a number, or a Date with logical types on. */
function millis(value: unknown): number {
  return value instanceof Date ? value.getTime() : Number(value);
}

interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Prometheus text format: metric name -> its samples (comments skipped). */
function parseMetrics(text: string): Map<string, Sample[]> {
  const metrics = new Map<string, Sample[]>();
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key as string] = value as string;
    }
    const samples = metrics.get(match[1] as string) ?? [];
    samples.push({ labels, value: Number(match[3]) });
    metrics.set(match[1] as string, samples);
  }
  return metrics;
}

/** What histogram_quantile() would answer: linear interpolation inside the bucket holding the quantile. */
function histogramQuantile(q: number, buckets: readonly Sample[]): number | undefined {
  const sorted = buckets
    .map((b) => ({
      le: b.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(b.labels.le),
      count: b.value,
    }))
    .sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const { le, count } of sorted) {
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lowerBound; // beyond the last finite bucket
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / Math.max(count - lowerCount, 1e-9);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return undefined;
}

function percentile(q: number, values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/**
 * The connector's own account of the run, read from its /metrics while it still runs (the port closes with it):
 * events consumed, predictions published, dead letters by reason, jobs, end-to-end latency p50/p99 from its
 * histogram (bucket estimate) and, exactly, from the forecasts read back (event timestamp -> predicted_at).
 * Waits a few seconds for the counters to catch up with what the reader saw.
 */
async function metricsSummary(
  port: number,
  expected: { consumed: number; predicted: number; dead: number },
  latenciesMs: readonly number[],
): Promise<string[]> {
  const p = "forecast_connector_";
  let metrics = new Map<string, Sample[]>();
  const sum = (name: string) => (metrics.get(p + name) ?? []).reduce((total, s) => total + s.value, 0);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
      (r) => (r.ok ? r.text() : ""),
      () => "",
    );
    metrics = parseMetrics(text);
    const settled =
      sum("events_consumed_total") >= expected.consumed &&
      sum("predictions_published_total") >= expected.predicted &&
      sum("dead_letters_total") >= expected.dead;
    if (settled || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (metrics.size === 0) return ["Connector metrics: /metrics did not answer."];
  const byReason = (name: string) =>
    (metrics.get(p + name) ?? [])
      .filter((s) => s.value > 0)
      .map((s) => `${s.labels.reason ?? "?"} ${s.value}`)
      .join(", ");
  const seconds = (ms: number | undefined) => (ms === undefined ? "n/a" : `${(ms / 1000).toFixed(1)} s`);
  const buckets = metrics.get(`${p}end_to_end_latency_seconds_bucket`) ?? [];
  const fromHistogram = (q: number) => {
    const s = histogramQuantile(q, buckets);
    return s === undefined ? undefined : s * 1000;
  };
  const dead = sum("dead_letters_total");
  const failed = sum("jobs_failed_total");
  return [
    "Connector metrics (read from /metrics before stopping):",
    `  events consumed          ${sum("events_consumed_total")}`,
    `  predictions published    ${sum("predictions_published_total")}`,
    `  dead letters             ${dead}${dead > 0 ? ` (${byReason("dead_letters_total")})` : ""}`,
    `  jobs                     ${sum("jobs_submitted_total")} submitted, ${sum("jobs_completed_total")} completed, ` +
      `${failed} failed${failed > 0 ? ` (${byReason("jobs_failed_total")})` : ""}`,
    `  end-to-end latency       p50 ${seconds(fromHistogram(0.5))}, p99 ${seconds(fromHistogram(0.99))} (histogram); ` +
      `p50 ${seconds(percentile(0.5, latenciesMs))}, p99 ${seconds(percentile(0.99, latenciesMs))} ` +
      `(the ${latenciesMs.length} forecasts: event time -> predicted_at)`,
  ];
}

async function waitForReady(port: number, child: ReturnType<typeof spawn>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`the connector exited with code ${child.exitCode}; see its log`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("the connector was not ready within 60 s");
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
