import "../../src/kafka/abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { inject } from "vitest";

/** A name no other test (or earlier run against the same cluster) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** A kafkajs client for the stack the global setup found. */
export function testKafka(clientId = uniqueName("test")): Kafka {
  return new Kafka({
    clientId,
    brokers: [...inject("stack").kafkaBrokers],
    logLevel: logLevel.WARN,
    retry: { retries: 8, initialRetryTime: 100 },
  });
}

export async function createTopics(
  kafka: Kafka,
  topics: readonly string[],
  numPartitions = 1,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: topics.map((topic) => ({ topic, numPartitions, replicationFactor: 1 })),
    });
  } finally {
    await admin.disconnect();
  }
}
