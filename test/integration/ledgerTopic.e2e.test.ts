import { pino } from "pino";
import { Registry } from "prom-client";
import { describe, expect, inject, it } from "vitest";
import { createEmulator } from "../../emulator/index.ts";
import { loadConfig } from "../../src/config/index.ts";
import { type Connector, StartupError, startConnector } from "../../src/connector.ts";
import { localConnectorEnv } from "../../stack/src/connectorEnv.ts";
import { createRunContainers } from "../helpers/blobs.ts";
import { testKafka, uniqueName } from "../helpers/kafka.ts";

async function world(prefix: string) {
  const stack = inject("stack");
  const id = uniqueName(prefix);
  const kafka = testKafka();
  await createRunContainers(id);
  const emulator = await createEmulator({
    blobConnectionString: stack.blobConnectionString,
    outputContainer: `${id}-out`,
    coldStartMs: 50,
    runMs: 50,
  });
  const topics = { input: `${id}-in`, results: `${id}-out`, deadLetter: `${id}-dlq`, ledger: `${id}-ledger` };
  const env = {
    ...localConnectorEnv({
      endpoints: stack,
      groupId: `${id}-group`,
      topics,
      inputContainer: `${id}-in`,
      outputContainer: `${id}-out`,
      scoringUri: emulator.scoringUri,
    }),
    FC_HTTP_PORT: "0",
    FC_BATCH_MAX_WAIT_MS: "200",
    FC_JOB_POLL_INTERVAL_MS: "100",
    FC_KAFKA_SESSION_TIMEOUT_MS: "10000",
  };
  const admin = kafka.admin();
  await admin.connect();
  const start = (extra: Record<string, string> = {}) =>
    startConnector(loadConfig({ ...env, ...extra }), {
      logger: pino({ level: "silent" }),
      metricsRegistry: new Registry(),
    });
  return {
    kafka,
    admin,
    topics,
    start,
    async close() {
      await admin.disconnect();
      await emulator.close();
    },
  };
}

describe("the job ledger topic", () => {
  it("stops start-up naming FC_LEDGER_TOPIC when its partitions or its cleanup policy are wrong", async () => {
    const w = await world("ledger-bad");
    try {
      await w.admin.createTopics({
        waitForLeaders: true,
        topics: [
          { topic: w.topics.input, numPartitions: 3, replicationFactor: 1 },
          { topic: w.topics.results, numPartitions: 1, replicationFactor: 1 },
          { topic: w.topics.deadLetter, numPartitions: 1, replicationFactor: 1 },
          { topic: w.topics.ledger, numPartitions: 2, replicationFactor: 1 },
        ],
      });
      const error = await w.start().then(
        (c: Connector) => c.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StartupError);
      expect((error as StartupError).problems).toEqual([
        `FC_LEDGER_TOPIC: topic "${w.topics.ledger}" has 2 partitions, but the input topic "${w.topics.input}" has 3: they must be equal`,
        `FC_LEDGER_TOPIC: topic "${w.topics.ledger}" has cleanup.policy=delete; it must be compact (alone)`,
      ]);
    } finally {
      await w.close();
    }
  });

  it("is created compacted with the input's partition count when FC_CREATE_TOPICS is on", async () => {
    const w = await world("ledger-new");
    try {
      await w.admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: w.topics.input, numPartitions: 5, replicationFactor: 1 }],
      });
      const connector = await w.start({ FC_CREATE_TOPICS: "true" });
      await connector.stop();
      const { topics } = await w.admin.fetchTopicMetadata({ topics: [w.topics.ledger] });
      expect(topics[0]?.partitions).toHaveLength(5);
      const described = await w.admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: 2, name: w.topics.ledger, configNames: ["cleanup.policy"] }],
      });
      expect(described.resources[0]?.configEntries[0]?.configValue).toBe("compact");
    } finally {
      await w.close();
    }
  });
});

describe("dead letters", () => {
  it("always fit the dead-letter topic: an invalid event larger than its max.message.bytes is cut, not stuck", async () => {
    const w = await world("dlq-fit");
    try {
      await w.admin.createTopics({
        waitForLeaders: true,
        topics: [
          { topic: w.topics.input, numPartitions: 1, replicationFactor: 1 },
          { topic: w.topics.results, numPartitions: 1, replicationFactor: 1 },
          {
            topic: w.topics.deadLetter,
            numPartitions: 1,
            replicationFactor: 1,
            configEntries: [{ name: "max.message.bytes", value: "20000" }],
          },
        ],
      });
      const connector = await w.start({ FC_CREATE_TOPICS: "true" });
      try {
        const producer = w.kafka.producer();
        await producer.connect();
        // Within FC_MAX_MESSAGE_BYTES (64 KiB), not JSON, with a large header of its own: both do not fit 20,000 B.
        const big = Buffer.alloc(50_000, "x");
        await producer.send({
          topic: w.topics.input,
          messages: [{ key: "BIG", value: big, headers: { trace: "t".repeat(15_000) } }],
        });
        await producer.disconnect();

        const consumer = w.kafka.consumer({ groupId: uniqueName("dlq-reader") });
        await consumer.connect();
        await consumer.subscribe({ topic: w.topics.deadLetter, fromBeginning: true });
        const letter = await new Promise<{ value: Buffer | null; headers: Record<string, string> }>(
          (resolve) => {
            void consumer.run({
              eachMessage: async ({ message }) => {
                const headers: Record<string, string> = {};
                for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
                resolve({ value: message.value, headers });
              },
            });
          },
        );
        await consumer.disconnect();
        expect(letter.headers["dlq.reason"]).toBe("malformed_json");
        expect(letter.headers["dlq.original.headers.dropped"]).toBe("1");
        expect(letter.headers["dlq.value.truncated.from.bytes"]).toBe("50000");
        expect(letter.value?.length).toBeLessThan(20_000);
        expect(letter.value?.toString()).toBe("x".repeat(letter.value?.length ?? 0));

        // And the partition moved on: its offset is committed past the event.
        await expect
          .poll(
            async () =>
              (
                await w.admin.fetchOffsets({
                  groupId: `${w.topics.input.replace(/-in$/, "")}-group`,
                  topics: [w.topics.input],
                })
              )[0]?.partitions[0]?.offset,
            { timeout: 20_000, interval: 200 },
          )
          .toBe("1");
      } finally {
        await connector.stop();
      }
    } finally {
      await w.close();
    }
  });
});
