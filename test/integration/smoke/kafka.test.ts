import type { EachMessagePayload } from "kafkajs";
import { describe, expect, inject, it } from "vitest";
import { createTopics, testKafka, uniqueName } from "../../helpers/kafka.ts";

/** Consumes until `count` messages arrived (or times out), then disconnects. */
async function consume(
  kafka: ReturnType<typeof testKafka>,
  topic: string,
  count: number,
  isolation: { readUncommitted: boolean },
): Promise<EachMessagePayload[]> {
  const consumer = kafka.consumer({ groupId: uniqueName("smoke-reader"), ...isolation });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received: EachMessagePayload[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${received.length}/${count} messages arrived`)),
      30_000,
    );
    void consumer.run({
      eachMessage: async (payload) => {
        received.push(payload);
        if (received.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return received;
}

describe(`Kafka ${inject("stack").kafkaVersion}`, () => {
  it("produces and consumes keyed messages across partitions", async () => {
    const kafka = testKafka();
    const topic = uniqueName("smoke-plain");
    await createTopics(kafka, [topic], 3);
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    const messages = Array.from({ length: 30 }, (_, i) => ({ key: `store-${i % 5}`, value: `value-${i}` }));
    await producer.send({ topic, messages });
    await producer.disconnect();

    const received = await consume(kafka, topic, messages.length, { readUncommitted: false });
    expect(received.map((m) => m.message.value?.toString()).sort()).toEqual(
      messages.map((m) => m.value).sort(),
    );
    expect(new Set(received.map((m) => m.partition)).size).toBeGreaterThan(1);
    // Same key, same partition: the ordering guarantee the connector's key = store_id relies on.
    const partitionOfKey = new Map<string, number>();
    for (const { message, partition } of received) {
      const key = message.key?.toString() as string;
      expect(partitionOfKey.get(key) ?? partition).toBe(partition);
      partitionOfKey.set(key, partition);
    }
  });

  it("commits consumer offsets inside a transaction, and aborted writes stay invisible", async () => {
    const kafka = testKafka();
    const input = uniqueName("smoke-tx-in");
    const output = uniqueName("smoke-tx-out");
    const groupId = uniqueName("smoke-tx-group");
    await createTopics(kafka, [input, output]);

    const plain = kafka.producer();
    await plain.connect();
    await plain.send({ topic: input, messages: [{ value: "a" }, { value: "b" }, { value: "c" }] });
    await plain.disconnect();

    const producer = kafka.producer({
      transactionalId: uniqueName("smoke-tx"),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    const aborted = await producer.transaction();
    await aborted.send({ topic: output, messages: [{ value: "aborted" }] });
    await aborted.abort();

    const committed = await producer.transaction();
    await committed.send({ topic: output, messages: [{ value: "A" }, { value: "B" }, { value: "C" }] });
    await committed.sendOffsets({
      consumerGroupId: groupId,
      topics: [{ topic: input, partitions: [{ partition: 0, offset: "3" }] }],
    });
    await committed.commit();
    await producer.disconnect();

    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchOffsets({ groupId, topics: [input] });
    await admin.disconnect();
    expect(offsets[0]?.partitions[0]?.offset).toBe("3");

    const readCommitted = await consume(kafka, output, 3, { readUncommitted: false });
    expect(readCommitted.map((m) => m.message.value?.toString())).toEqual(["A", "B", "C"]);
  });
});
