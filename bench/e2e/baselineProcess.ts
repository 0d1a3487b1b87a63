/**
 * The baseline: the best a kafkajs-based connector can do on this broker. A bare consume -> produce pipe,
 * in a process of its own: eachBatch, each fetch's records produced with acks=all by an idempotent producer,
 * the batch's offset committed once the broker acknowledged them. Same consumer settings as the connector's
 * (src/consumer/inputConsumer.ts: 1 MiB per partition fetches, 1 s fetch wait). Driven over IPC like
 * bench/e2e/connectorProcess.ts, with the same requests (start, progress, report, stop).
 * Environment: BENCH_BROKERS, BENCH_INPUT_TOPIC, BENCH_OUTPUT_TOPIC, BENCH_GROUP.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Kafka, logLevel } from "kafkajs";
import { answerParent, type Request } from "./childProtocol.ts";
import type { Progress, Report } from "./connectorProcess.ts";

const need = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const inputTopic = need("BENCH_INPUT_TOPIC");
const outputTopic = need("BENCH_OUTPUT_TOPIC");
const kafka = new Kafka({
  clientId: "bench-baseline",
  brokers: need("BENCH_BROKERS").split(","),
  logLevel: logLevel.NOTHING,
});
const consumer = kafka.consumer({
  groupId: need("BENCH_GROUP"),
  sessionTimeout: 30_000,
  heartbeatInterval: 3_000,
  maxBytesPerPartition: 1024 * 1024,
  maxWaitTimeInMs: 1000,
});
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });

const startedAtMs = Date.now();
const stalls = monitorEventLoopDelay({ resolution: 10 });
stalls.enable();
const cpuUs = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};
let consumed = 0;
let out = 0;
let firstConsumedAtMs: number | undefined;
let lastOutAtMs: number | undefined;
let cpuAtLastOutUs = 0;

function progress(): Progress {
  return {
    consumed,
    out,
    ...(firstConsumedAtMs === undefined ? {} : { firstConsumedAtMs }),
    ...(lastOutAtMs === undefined ? {} : { lastOutAtMs }),
    cpuAtLastOutUs,
    cpuNowUs: cpuUs(),
    startedAtMs,
    eventsInFlight: consumed - out,
    batches: 0,
    batchedEvents: 0,
    jobsSubmitted: 0,
    jobsCompleted: 0,
  };
}

async function handle(request: Request): Promise<unknown> {
  switch (request.cmd) {
    case "start": {
      const startAt = Date.now();
      await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topic: inputTopic, fromBeginning: true });
      const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          if (batch.messages.length === 0) return;
          firstConsumedAtMs ??= Date.now();
          consumed += batch.messages.length;
          await producer.send({
            topic: outputTopic,
            acks: -1,
            messages: batch.messages.map((m) => ({ key: m.key, value: m.value })),
          });
          out += batch.messages.length;
          lastOutAtMs = Date.now();
          cpuAtLastOutUs = cpuUs();
          const last = batch.lastOffset();
          resolveOffset(last);
          await consumer.commitOffsets([
            { topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() },
          ]);
          await heartbeat();
        },
      });
      await joined;
      return { startedAtMs: startAt, readyAtMs: Date.now() };
    }
    case "progress":
      return progress();
    case "memory":
      return { ...process.memoryUsage(), maxRss: process.resourceUsage().maxRSS * 1024 };
    case "report": {
      const report: Report = {
        ...progress(),
        predictions: out,
        deadLetters: 0,
        jobsRetried: 0,
        maxRssBytes: process.resourceUsage().maxRSS * 1024,
        maxStallMs: stalls.max / 1e6,
        p99StallMs: stalls.percentile(99) / 1e6,
      };
      return report;
    }
    case "stop":
      await consumer.disconnect();
      await producer.disconnect();
      return { stopped: true };
  }
}

answerParent(handle, () => Promise.allSettled([consumer.disconnect(), producer.disconnect()]), 5_000);
