/**
 * Runs the real connector against the stack the global setup found, with its own topics, containers and
 * emulator, and reads back what it published. Nothing here is mocked: only the Azure ML endpoint is the emulator.
 */
import { BlobServiceClient } from "@azure/storage-blob";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import type { IHeaders, Kafka } from "kafkajs";
import { pino } from "pino";
import { Registry } from "prom-client";
import { inject } from "vitest";
import { createEmulator, type Emulator, type EmulatorFaults } from "../../emulator/index.ts";
import type { Config } from "../../src/config/index.ts";
import { loadConfig } from "../../src/config/index.ts";
import { type Connector, startConnector } from "../../src/connector.ts";
import { localConnectorEnv } from "../../stack/src/connectorEnv.ts";
import { createTopics, testKafka, uniqueName } from "./kafka.ts";

export interface HarnessOptions {
  readonly partitions?: number;
  readonly faults?: EmulatorFaults;
  readonly emulator?: { coldStartMs?: number; runMs?: number };
  /** Extra FC_* settings over the harness's fast defaults. */
  readonly env?: Record<string, string>;
}

export interface PublishedPrediction {
  readonly key: string;
  readonly value: Record<string, unknown>;
}

export interface DeadLetterRecord {
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

/** The emulator's formula, written out here independently (emulator/README.md): round8(Σ (i+1)·f_i / n). */
export function expectedPrediction(features: readonly number[]): number {
  let sum = 0;
  features.forEach((f, i) => {
    sum += (i + 1) * f;
  });
  return Number((sum / features.length).toFixed(8));
}

export function features(seed: number, count = 13): number[] {
  return Array.from({ length: count }, (_, i) => Number((((seed * 31 + i * 7) % 97) / 10).toFixed(3)));
}

function headersToStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k] = Array.isArray(v) ? String(v[0]) : String(v);
  return out;
}

export async function startHarness(options: HarnessOptions = {}) {
  const stack = inject("stack");
  const kafka: Kafka = testKafka();
  const id = uniqueName("e2e");
  const topics = { input: `${id}-in`, results: `${id}-out`, deadLetter: `${id}-dlq` };
  await createTopics(kafka, [topics.input], options.partitions ?? 3);
  await createTopics(kafka, [topics.results, topics.deadLetter], 2);

  const blobs = BlobServiceClient.fromConnectionString(stack.blobConnectionString);
  const inputContainer = `${id}-in`.slice(0, 63);
  const outputContainer = `${id}-out`.slice(0, 63);
  await blobs.getContainerClient(inputContainer).create();
  await blobs.getContainerClient(outputContainer).create();

  const emulator: Emulator = await createEmulator({
    blobConnectionString: stack.blobConnectionString,
    outputContainer,
    coldStartMs: options.emulator?.coldStartMs ?? 100,
    runMs: options.emulator?.runMs ?? 100,
    ...(options.faults ? { faults: options.faults } : {}),
  });

  const env: Record<string, string> = {
    ...localConnectorEnv({
      endpoints: stack,
      groupId: `${id}-group`,
      topics,
      inputContainer,
      outputContainer,
      scoringUri: emulator.scoringUri,
    }),
    // The job ledger topic is created by the connector, compacted, with the input's partition count.
    FC_CREATE_TOPICS: "true",
    FC_KAFKA_SESSION_TIMEOUT_MS: "10000",
    FC_BATCH_MAX_RECORDS: "25",
    FC_BATCH_MAX_WAIT_MS: "300",
    FC_JOB_POLL_INTERVAL_MS: "100",
    FC_JOB_TIMEOUT_MS: "20000",
    FC_HTTP_RETRY_DELAY_MS: "20",
    FC_HTTP_MAX_RETRY_DELAY_MS: "200",
    FC_RETRY_INITIAL_DELAY_MS: "20",
    FC_RETRY_MAX_DELAY_MS: "200",
    FC_HTTP_PORT: "0",
    FC_LOG_LEVEL: "warn",
    FC_SHUTDOWN_TIMEOUT_MS: "5000",
    ...options.env,
  };
  const config: Config = loadConfig(env);
  const registry = new SchemaRegistry({ host: stack.registryUrl });
  const logger = pino({ level: process.env.FC_TEST_LOG_LEVEL ?? "warn" });
  // Lag refreshed often, so a test can read it soon after the work is done.
  const start = () => startConnector(config, { logger, metricsRegistry: new Registry(), lagIntervalMs: 500 });
  let connector: Connector | undefined = await start();

  type RawMessage = { key: Buffer | null; value: Buffer | null; offset: string; headers?: IHeaders };

  /**
   * Consumes a topic from the beginning with a throwaway group, handing each message to `take`, until it says
   * the reading is complete or the time runs out.
   */
  const consume = async (
    topic: string,
    take: (partition: number, message: RawMessage) => Promise<boolean>,
    progress: () => string,
    timeoutMs: number,
    /** Told each partition's position after every fetched batch, control records (transaction markers) included. */
    reached?: (partition: number, nextOffset: bigint) => boolean,
  ): Promise<void> => {
    // read_committed (kafkajs's default): what a downstream consumer of an exactly-once connector sees.
    const consumer = kafka.consumer({ groupId: uniqueName("reader") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${topic}: ${progress()} after ${timeoutMs} ms`)),
          timeoutMs,
        );
        if (reached) {
          consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
            // A fetch that held nothing at or past its offset says nothing about how far the reading got.
            if (payload.firstOffset === null || payload.firstOffset === undefined) return;
            if (reached(payload.partition, BigInt(payload.lastOffset) + 1n)) {
              clearTimeout(timer);
              resolve();
            }
          });
        }
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            if (await take(partition, message)) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
  };

  /** Reads every record of a topic, from the beginning up to each partition's end as it is now. */
  const readTopicToEnd = async <T>(
    topic: string,
    map: (m: RawMessage) => Promise<T>,
    timeoutMs = 30_000,
  ): Promise<T[]> => {
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const remaining = new Map(
      ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high)]),
    );
    const items: T[] = [];
    if (remaining.size === 0) return items;
    await consume(
      topic,
      async (partition, message) => {
        const end = remaining.get(partition);
        if (end === undefined || BigInt(message.offset) >= end) return false;
        items.push(await map(message));
        return false;
      },
      () => `${items.length} records, not at the end`,
      timeoutMs,
      // The end is reached past the last record or the transaction marker after it.
      (partition, next) => {
        const end = remaining.get(partition);
        if (end !== undefined && next >= end) remaining.delete(partition);
        return remaining.size === 0;
      },
    );
    return items;
  };

  const decodePrediction = async (m: { key: Buffer | null; value: Buffer | null }) => ({
    key: m.key?.toString() ?? "",
    value: (await registry.decode(m.value as Buffer)) as Record<string, unknown>,
  });
  const toDeadLetter = async (m: { key: Buffer | null; value: Buffer | null; headers?: IHeaders }) => ({
    key: m.key?.toString() ?? null,
    value: m.value,
    headers: headersToStrings(m.headers),
  });

  /** Reads a topic from the beginning until `until` says enough or the time runs out. */
  const readTopic = async <T>(
    topic: string,
    map: (m: RawMessage) => Promise<T>,
    until: (items: T[]) => boolean,
    timeoutMs = 60_000,
  ): Promise<T[]> => {
    const items: T[] = [];
    if (!until(items)) {
      await consume(
        topic,
        async (_partition, message) => {
          items.push(await map(message));
          return until(items);
        },
        () => `${items.length} records`,
        timeoutMs,
      );
    }
    // Linger a little: anything beyond the expected count (a duplicate) must show up too.
    await new Promise((r) => setTimeout(r, 1500));
    return items;
  };

  return {
    config,
    topics,
    emulator,
    kafka,
    registry,
    get connector(): Connector {
      return connector as Connector;
    },
    async produce(messages: ReadonlyArray<{ key?: string; value: Buffer | string; headers?: IHeaders }>) {
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic: topics.input,
        messages: messages.map((m) => ({ key: m.key ?? null, ...m })),
      });
      await producer.disconnect();
    },
    /**
     * Produces each message to the partition it names and returns where each landed, in message order.
     * One send per call: Kafka gives each partition's messages consecutive offsets from its base offset.
     */
    async produceTracked(
      messages: ReadonlyArray<{ key?: string; value: Buffer | string; partition: number }>,
    ): Promise<Array<{ partition: number; offset: string }>> {
      const producer = kafka.producer();
      await producer.connect();
      try {
        const metadata = await producer.send({
          topic: topics.input,
          messages: messages.map((m) => ({ key: m.key ?? null, value: m.value, partition: m.partition })),
        });
        const next = new Map(metadata.map((r) => [r.partition, BigInt(r.baseOffset as string)]));
        return messages.map((m) => {
          const offset = next.get(m.partition);
          if (offset === undefined) throw new Error(`no produce metadata for partition ${m.partition}`);
          next.set(m.partition, offset + 1n);
          return { partition: m.partition, offset: offset.toString() };
        });
      } finally {
        await producer.disconnect();
      }
    },
    readPredictions(count: number, timeoutMs?: number): Promise<PublishedPrediction[]> {
      return readTopic(topics.results, decodePrediction, (items) => items.length >= count, timeoutMs);
    },
    readDeadLetters(count: number, timeoutMs?: number): Promise<DeadLetterRecord[]> {
      return readTopic(topics.deadLetter, toDeadLetter, (items) => items.length >= count, timeoutMs);
    },
    /** Every prediction on the results topic now: exact, no waiting for a count (read after the work is done). */
    readAllPredictions(timeoutMs?: number): Promise<PublishedPrediction[]> {
      return readTopicToEnd(topics.results, decodePrediction, timeoutMs);
    },
    /** Every record on the dead-letter topic now. */
    readAllDeadLetters(timeoutMs?: number): Promise<DeadLetterRecord[]> {
      return readTopicToEnd(topics.deadLetter, toDeadLetter, timeoutMs);
    },
    /** The rows of the batch files in a job's input folder (an emulator job's inputUri), in file order. */
    async batchFileRows(folderUri: string): Promise<Array<{ store_id: string; features: number[] }>> {
      const container = blobs.getContainerClient(inputContainer);
      const folder = folderUri.slice(`${container.url}/`.length).replace(/\/+$/, "");
      const rows: Array<{ store_id: string; features: number[] }> = [];
      for await (const blob of container.listBlobsFlat({ prefix: `${folder}/` })) {
        const body = await container.getBlobClient(blob.name).downloadToBuffer();
        rows.push(...(JSON.parse(body.toString("utf8")) as typeof rows));
      }
      return rows;
    },
    /** Committed offsets of the connector's group, and each partition's end, once they are equal or time runs out. */
    async waitForCommitsAtEnd(timeoutMs = 30_000) {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const ends = await admin.fetchTopicOffsets(topics.input);
          const committed = await admin.fetchOffsets({
            groupId: config.consumer.groupId,
            topics: [topics.input],
          });
          const byPartition = new Map(committed[0]?.partitions.map((p) => [p.partition, p.offset]) ?? []);
          const rows = ends.map((e) => ({
            partition: e.partition,
            end: e.high,
            committed: byPartition.get(e.partition),
          }));
          if (rows.every((r) => r.committed === r.end) || Date.now() > deadline) return rows;
          await new Promise((r) => setTimeout(r, 250));
        }
      } finally {
        await admin.disconnect();
      }
    },
    /** The running connector's /metrics as Prometheus scrapes it (its HTTP port, not the registry object). */
    async scrape(): Promise<string> {
      const response = await fetch(`http://127.0.0.1:${(connector as Connector).httpPort}/metrics`);
      if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
      return response.text();
    },
    async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
      const metric = await (connector as Connector).metrics.registry.getSingleMetric(name)?.get();
      if (!metric) throw new Error(`no metric ${name}`);
      return metric.values
        .filter((v) => Object.entries(labels).every(([k, value]) => String(v.labels[k]) === value))
        .reduce((sum, v) => sum + v.value, 0);
    },
    async stopConnector() {
      await connector?.stop();
      connector = undefined;
    },
    async restartConnector() {
      await connector?.stop();
      connector = await start();
    },
    async close() {
      await connector?.stop();
      await emulator.close();
    },
  };
}
