/**
 * One connector instance in a process of its own, driven by bench/e2e.ts over IPC, so the CPU time, RSS and
 * heap it reports are the connector's alone (the stack and the endpoint emulator are other processes).
 * It is configured as a user configures it: FC_* variables through loadConfig, then startConnector.
 *
 * Requests (parent -> child) and the answers (child -> parent, same `id`):
 *   start     startConnector, then wait for /readyz          -> { startedAtMs, readyAtMs }
 *   progress  counters and the times they last moved          -> Progress
 *   memory    two full GCs, then process.memoryUsage()        -> memoryUsage + maxRss
 *   report    figures for the tables                          -> Report
 *   stop      connector.stop(), then exit
 * The figures are sampled every 20 ms from the connector's own Prometheus metrics (their names are the
 * stable surface, whatever the internals become).
 */
import "../../src/kafka/abortedTransactionsOrder.ts"; // before kafkajs, as src/cli.ts does
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pino } from "pino";
import { Registry } from "prom-client";
import { loadConfig } from "../../src/config/index.ts";
import { type Connector, startConnector } from "../../src/connector.ts";
import { gc } from "../lib.ts";
import { answerParent, type Request } from "./childProtocol.ts";

export interface Progress {
  readonly consumed: number;
  /** Predictions acknowledged plus dead letters acknowledged: every event ends as one of them. */
  readonly out: number;
  readonly firstConsumedAtMs?: number;
  readonly lastOutAtMs?: number;
  /** This process's CPU (user + system) since start, in microseconds, at the last output. */
  readonly cpuAtLastOutUs: number;
  readonly cpuNowUs: number;
  readonly startedAtMs: number;
  readonly eventsInFlight: number;
  readonly batches: number;
  readonly batchedEvents: number;
  readonly jobsSubmitted: number;
  readonly jobsCompleted: number;
}

export interface Report extends Progress {
  readonly predictions: number;
  readonly deadLetters: number;
  readonly jobsRetried: number;
  readonly maxRssBytes: number;
  /** Longest event-loop delay over the whole run, and from the first job completed on (results phase). */
  readonly maxStallMs: number;
  readonly p99StallMs: number;
  readonly resultsPhase?: {
    readonly maxStallMs: number;
    readonly heapAtStartBytes: number;
    readonly peakHeapBytes: number;
    readonly peakRssBytes: number;
  };
}

const cpuUs = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

const registry = new Registry();
let connector: Connector | undefined;
const startedAtMs = Date.now();
const wholeRun = monitorEventLoopDelay({ resolution: 10 });
wholeRun.enable();
let resultsPhaseDelay: ReturnType<typeof monitorEventLoopDelay> | undefined;
let heapAtResults = 0;
let peakHeap = 0;
let peakRss = 0;

let progress: Progress = {
  consumed: 0,
  out: 0,
  cpuAtLastOutUs: 0,
  cpuNowUs: 0,
  startedAtMs,
  eventsInFlight: 0,
  batches: 0,
  batchedEvents: 0,
  jobsSubmitted: 0,
  jobsCompleted: 0,
};

async function sum(name: string, series?: "sum" | "count"): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const wanted = series ? `${name}_${series}` : undefined;
  const values = (await metric.get()).values as ReadonlyArray<{ value: number; metricName?: string }>;
  let total = 0;
  for (const v of values) {
    if (wanted ? v.metricName === wanted : v.metricName === undefined || v.metricName === name)
      total += v.value;
  }
  return total;
}

const P = "forecast_connector_";

async function sample(): Promise<void> {
  const now = Date.now();
  const consumed = await sum(`${P}events_consumed_total`);
  const out = (await sum(`${P}predictions_published_total`)) + (await sum(`${P}dead_letters_total`));
  const jobsCompleted = await sum(`${P}jobs_completed_total`);
  const cpu = cpuUs();
  if (jobsCompleted > 0 && resultsPhaseDelay === undefined) {
    resultsPhaseDelay = monitorEventLoopDelay({ resolution: 10 });
    resultsPhaseDelay.enable();
    heapAtResults = process.memoryUsage().heapUsed;
  }
  if (resultsPhaseDelay !== undefined) {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakRss = Math.max(peakRss, m.rss);
  }
  progress = {
    consumed,
    out,
    ...(progress.firstConsumedAtMs !== undefined || consumed > 0
      ? { firstConsumedAtMs: progress.firstConsumedAtMs ?? now }
      : {}),
    ...(out > progress.out
      ? { lastOutAtMs: now }
      : progress.lastOutAtMs
        ? { lastOutAtMs: progress.lastOutAtMs }
        : {}),
    cpuAtLastOutUs: out > progress.out ? cpu : progress.cpuAtLastOutUs,
    cpuNowUs: cpu,
    startedAtMs,
    eventsInFlight: await sum(`${P}events_in_flight`),
    batches: await sum(`${P}batch_size_events`, "count"),
    batchedEvents: await sum(`${P}batch_size_events`, "sum"),
    jobsSubmitted: await sum(`${P}jobs_submitted_total`),
    jobsCompleted,
  };
}

let sampling = false;
const sampler = setInterval(() => {
  if (sampling || connector === undefined) return;
  sampling = true;
  void sample().finally(() => {
    sampling = false;
  });
}, 20);

async function waitReady(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (res?.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the connector was not ready within ${timeoutMs} ms`);
}

async function handle(request: Request): Promise<unknown> {
  switch (request.cmd) {
    case "start": {
      const config = loadConfig(process.env);
      const startAt = Date.now();
      connector = await startConnector(config, {
        // On stderr, so the parent's tables stay readable.
        logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? "error" }, pino.destination(2)),
        metricsRegistry: registry,
      });
      await waitReady(connector.httpPort, 60_000);
      return { startedAtMs: startAt, readyAtMs: Date.now() };
    }
    case "progress":
      return progress;
    case "memory": {
      gc();
      gc();
      return { ...process.memoryUsage(), maxRss: process.resourceUsage().maxRSS * 1024 };
    }
    case "report": {
      await sample();
      const report: Report = {
        ...progress,
        predictions: await sum(`${P}predictions_published_total`),
        deadLetters: await sum(`${P}dead_letters_total`),
        jobsRetried: await sum(`${P}jobs_retried_total`),
        maxRssBytes: process.resourceUsage().maxRSS * 1024,
        maxStallMs: wholeRun.max / 1e6,
        p99StallMs: wholeRun.percentile(99) / 1e6,
        ...(resultsPhaseDelay
          ? {
              resultsPhase: {
                maxStallMs: resultsPhaseDelay.max / 1e6,
                heapAtStartBytes: heapAtResults,
                peakHeapBytes: peakHeap,
                peakRssBytes: peakRss,
              },
            }
          : {}),
      };
      return report;
    }
    case "stop": {
      clearInterval(sampler);
      await connector?.stop();
      return { stopped: true };
    }
  }
}

answerParent(handle, async () => connector?.stop(), 10_000);
