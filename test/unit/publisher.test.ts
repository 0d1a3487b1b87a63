/**
 * The publisher's own logic with a fake kafkajs client: the producer it asks for, the records it builds for
 * the results and dead-letter topics, and how it splits a large publish into requests. The integration tests
 * cover a real broker.
 */
import { type Kafka, type Message, Partitioners, type ProducerBatch, type ProducerConfig } from "kafkajs";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { DeadLetter } from "../../src/producer/deadLetter.ts";
import type { PredictionEncoder, PredictionRecord } from "../../src/producer/predictionRecord.ts";
import { createPublisher } from "../../src/producer/publisher.ts";

const RESULTS = "store-forecasts";
const DLQ = "store-features-dlq";
const MAX_REQUEST_BYTES = 512 * 1024;
const NOW = new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678));

/**
 * A fake kafkajs client: records the producer config and every producer call. `failOnSend` makes the n-th
 * sendBatch (1-based) reject with the given error.
 */
function fakeKafka(failOnSend?: {
  call?: number;
  error: Error;
  /** Fails every sendBatch this says yes to (a poison record), instead of the n-th. */
  when?: (batch: ProducerBatch) => boolean;
}) {
  const configs: ProducerConfig[] = [];
  const batches: ProducerBatch[] = [];
  const events: string[] = [];
  const producer = {
    async connect() {
      events.push("connect");
    },
    async sendBatch(batch: ProducerBatch) {
      batches.push(batch);
      events.push("sendBatch");
      if (failOnSend && (batches.length === failOnSend.call || failOnSend.when?.(batch)))
        throw failOnSend.error;
      return [];
    },
    async disconnect() {
      events.push("disconnect");
    },
  };
  const kafka = {
    producer(config: ProducerConfig) {
      configs.push(config);
      return producer;
    },
  } as unknown as Kafka;
  return { kafka, configs, batches, events };
}

const encoder: PredictionEncoder = {
  schemaId: 1,
  encode: async (record) => Buffer.from(JSON.stringify(record)),
};

function publisherFor(kafka: Kafka, enc: PredictionEncoder = encoder) {
  return createPublisher({ kafka, resultsTopic: RESULTS, deadLetterTopic: DLQ, encoder: enc });
}

function prediction(i: number): PredictionRecord {
  return {
    store_id: `S_${i}`,
    prediction: 100 + i / 4,
    file_name: "batch-1/part-0.json",
    job_id: "job-1",
    batch_id: "batch-1",
    source_topic: "store-features",
    source_partition: i % 3,
    source_offset: 1000 + i,
    source_timestamp: 1_735_689_600_000 + i,
    predicted_at: 1_735_690_000_000,
  };
}

function deadLetter(i: number, valueBytes = 16): DeadLetter {
  return {
    source: {
      topic: "store-features",
      partition: 1,
      offset: String(5000 + i),
      timestampMs: 1_735_689_600_000,
    },
    reason: "malformed_json",
    detail: "message value is not JSON",
    key: Buffer.from(`k${i}`),
    value: Buffer.alloc(valueBytes, i % 256),
  };
}

/** The publisher's size estimate of a message: key + value + 64 + header names and values. */
function estimate(message: Message): number {
  let size = (message.key?.length ?? 0) + (message.value?.length ?? 0) + 64;
  for (const [name, value] of Object.entries(message.headers ?? {}))
    size += name.length + String(value).length;
  return size;
}

/** Every message of a batch, in order, with its topic. */
function flatten(batch: ProducerBatch): Array<{ topic: string; message: Message }> {
  return (batch.topicMessages ?? []).flatMap(({ topic, messages }) =>
    messages.map((message) => ({ topic, message })),
  );
}

afterEach(() => {
  vi.useRealTimers();
});

describe("createPublisher", () => {
  it("asks for one idempotent producer, one request in flight, Java-compatible partitioning", async () => {
    const { kafka, configs, events } = fakeKafka();
    const publisher = publisherFor(kafka);
    expect(configs).toStrictEqual([
      { idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner },
    ]);
    expect(configs[0]?.createPartitioner).toBe(Partitioners.DefaultPartitioner);
    expect(configs[0]?.createPartitioner).not.toBe(Partitioners.LegacyPartitioner);

    await publisher.connect();
    await publisher.disconnect();
    expect(events).toEqual(["connect", "disconnect"]);
    expect(configs).toHaveLength(1);
  });

  it("sends nothing for an empty publish", async () => {
    const { kafka, batches } = fakeKafka();
    await publisherFor(kafka).publish([], []);
    expect(batches).toHaveLength(0);
  });

  it("publishes predictions keyed by store_id with the encoder's bytes, acks=all", async () => {
    const { kafka, batches } = fakeKafka();
    const records = [prediction(0), prediction(1)];
    await publisherFor(kafka).publish(records, []);
    expect(batches).toStrictEqual([
      {
        topicMessages: [
          {
            topic: RESULTS,
            messages: records.map((r) => ({ key: r.store_id, value: Buffer.from(JSON.stringify(r)) })),
          },
        ],
        acks: -1,
      },
    ]);
  });

  it("publishes dead letters with their key and value, the dead-letter headers and a timestamp", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(NOW);
    const { kafka, batches } = fakeKafka();
    const full: DeadLetter = {
      source: {
        topic: "store-features",
        partition: 2,
        offset: "9007199254740993",
        timestampMs: 1_735_689_600_123,
      },
      reason: "too_large",
      detail: "message value has 70000 bytes, at most 65536",
      key: Buffer.from("CA_1"),
      value: Buffer.from("first bytes"),
      originalHeaders: { "trace-id": "abc", "x-bin": Buffer.from([1, 2, 3]), "dlq.reason": "spoofed" },
      truncatedFromBytes: 70_000,
      jobId: "job-7",
      batchId: "batch-7",
    };
    const bare: DeadLetter = {
      source: { topic: "store-features", partition: 0, offset: "0", timestampMs: 0 },
      reason: "missing_prediction",
      detail: "no prediction for this event",
      key: null,
      value: null,
    };
    await publisherFor(kafka).publish([], [full, bare]);

    const timestamp = String(NOW.getTime());
    expect(batches).toStrictEqual([
      {
        topicMessages: [
          {
            topic: DLQ,
            messages: [
              {
                key: Buffer.from("CA_1"),
                value: Buffer.from("first bytes"),
                headers: {
                  "trace-id": "abc",
                  "x-bin": Buffer.from([1, 2, 3]),
                  "dlq.reason": "too_large",
                  "dlq.detail": "message value has 70000 bytes, at most 65536",
                  "dlq.source.topic": "store-features",
                  "dlq.source.partition": "2",
                  "dlq.source.offset": "9007199254740993",
                  "dlq.source.timestamp": "1735689600123",
                  "dlq.failed.at": "2025-01-02T03:04:05.678Z",
                  "dlq.job.id": "job-7",
                  "dlq.batch.id": "batch-7",
                  "dlq.value.truncated.from.bytes": "70000",
                },
                timestamp,
              },
              {
                key: null,
                value: null,
                headers: {
                  "dlq.reason": "missing_prediction",
                  "dlq.detail": "no prediction for this event",
                  "dlq.source.topic": "store-features",
                  "dlq.source.partition": "0",
                  "dlq.source.offset": "0",
                  "dlq.source.timestamp": "0",
                  "dlq.failed.at": "2025-01-02T03:04:05.678Z",
                },
                timestamp,
              },
            ],
          },
        ],
        acks: -1,
      },
    ]);
  });

  it("sends predictions and dead letters of one publish together, predictions first", async () => {
    const { kafka, batches } = fakeKafka();
    await publisherFor(kafka).publish([prediction(0)], [deadLetter(0)]);
    expect(batches).toHaveLength(1);
    expect(batches[0]?.acks).toBe(-1);
    expect(batches[0]?.topicMessages?.map((t) => [t.topic, t.messages.length])).toEqual([
      [RESULTS, 1],
      [DLQ, 1],
    ]);
  });

  it("splits a large publish into requests under 512 KiB, in order, every record once", async () => {
    const { kafka, batches } = fakeKafka();
    const records = Array.from({ length: 2500 }, (_, i) => prediction(i));
    const letters = [
      ...Array.from({ length: 5 }, (_, i) => deadLetter(i, 150_000)),
      deadLetter(5, 600_000),
      ...Array.from({ length: 300 }, (_, i) => deadLetter(6 + i, 100)),
      deadLetter(306, MAX_REQUEST_BYTES),
    ];
    await publisherFor(kafka).publish(records, letters);

    const chunks = batches.map(flatten);
    expect(chunks.length).toBeGreaterThan(4);
    for (const batch of batches) {
      expect(batch.acks).toBe(-1);
      // Consecutive messages of one topic share one entry; no entry is empty.
      const topics = (batch.topicMessages ?? []).map((t) => t.topic);
      expect(topics.every((topic, i) => topic !== topics[i - 1])).toBe(true);
      expect((batch.topicMessages ?? []).every((t) => t.messages.length > 0)).toBe(true);
    }

    const sizes = chunks.map((chunk) => chunk.reduce((sum, { message }) => sum + estimate(message), 0));
    chunks.forEach((chunk, i) => {
      const size = sizes[i] as number;
      if (chunk.length > 1) expect(size).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
      else expect(size).toBeGreaterThan(0);
      // Greedy: the next chunk's first message would not have fitted in this one.
      const next = chunks[i + 1];
      if (next)
        expect(size + estimate((next[0] as { message: Message }).message)).toBeGreaterThan(MAX_REQUEST_BYTES);
    });

    // The oversized letters stand alone in their chunks.
    const alone = chunks.filter((chunk) => chunk.length === 1).map((chunk) => chunk[0]?.message.key);
    expect(alone).toEqual(expect.arrayContaining([Buffer.from("k5"), Buffer.from("k306")]));
    for (const chunk of chunks) {
      if (chunk.length > 1)
        expect(chunk.every(({ message }) => estimate(message) <= MAX_REQUEST_BYTES)).toBe(true);
    }

    const sent = chunks
      .flat()
      .map(({ topic, message }) => ({ topic, key: message.key, value: message.value }));
    expect(sent).toStrictEqual([
      ...records.map((r) => ({ topic: RESULTS, key: r.store_id, value: Buffer.from(JSON.stringify(r)) })),
      ...letters.map((l) => ({ topic: DLQ, key: l.key, value: l.value })),
    ]);
  });

  it("keeps a publish that fits in 512 KiB in one request", async () => {
    const { kafka, batches } = fakeKafka();
    const letters = Array.from({ length: 3 }, (_, i) => deadLetter(i, 150_000));
    await publisherFor(kafka).publish([prediction(0)], letters);
    expect(batches).toHaveLength(1);
    expect(flatten(batches[0] as ProducerBatch)).toHaveLength(4);
  });

  it("rejects when a request is refused and sends no later request", async () => {
    const error = new Error("NOT_LEADER_FOR_PARTITION");
    const { kafka, batches } = fakeKafka({ call: 2, error });
    const letters = Array.from({ length: 5 }, (_, i) => deadLetter(i, 300_000));
    await expect(publisherFor(kafka).publish([], letters)).rejects.toBe(error);
    expect(batches).toHaveLength(2);
    expect(batches.map((b) => flatten(b).map(({ message }) => message.key))).toStrictEqual([
      [Buffer.from("k0")],
      [Buffer.from("k1")],
    ]);
  });

  it("rejects without sending anything when the encoder fails", async () => {
    const { kafka, batches } = fakeKafka();
    const error = new Error("registry down");
    const failing: PredictionEncoder = {
      schemaId: 1,
      encode: async (record) => {
        if (record.store_id === "S_1") throw error;
        return Buffer.from(record.store_id);
      },
    };
    await expect(
      publisherFor(kafka, failing).publish([prediction(0), prediction(1)], [deadLetter(0)]),
    ).rejects.toBe(error);
    expect(batches).toHaveLength(0);
  });

  it("sends what several callers send while a request is in flight together, in one request, and acknowledges each", async () => {
    const { kafka, batches } = fakeKafka();
    const publisher = publisherFor(kafka);
    const msg = (key: string) => ({ key, value: Buffer.from(key) });
    const first = publisher.send([{ topic: RESULTS, messages: [msg("a")] }]);
    // Made while the first request is in flight: they wait for it, then share one request.
    const second = publisher.send([{ topic: RESULTS, messages: [msg("b")] }]);
    const third = publisher.send([{ topic: DLQ, messages: [msg("c")] }]);
    await Promise.all([first, second, third]);
    expect(
      batches.map((b) => flatten(b).map(({ topic, message }) => `${topic}:${message.key}`)),
    ).toStrictEqual([[`${RESULTS}:a`], [`${RESULTS}:b`, `${DLQ}:c`]]);
  });

  it("names each topic once in a shared request (kafkajs keys a request's topics by name and would drop the first), each topic's records in order", async () => {
    const { kafka, batches } = fakeKafka();
    const publisher = publisherFor(kafka);
    const msg = (key: string) => ({ key, value: Buffer.from(key) });
    const first = publisher.send([{ topic: RESULTS, messages: [msg("a")] }]);
    const second = publisher.send([
      { topic: RESULTS, messages: [msg("b1"), msg("b2")] },
      { topic: DLQ, messages: [msg("x")] },
    ]);
    const third = publisher.send([
      { topic: RESULTS, messages: [msg("c")] },
      { topic: DLQ, messages: [msg("y")] },
    ]);
    await Promise.all([first, second, third]);
    const shared = batches[1] as ProducerBatch;
    expect(shared.topicMessages?.map((t) => [t.topic, t.messages.map((m) => String(m.key))])).toStrictEqual([
      [RESULTS, ["b1", "b2", "c"]],
      [DLQ, ["x", "y"]],
    ]);
    expect(batches).toHaveLength(2);
  });

  it("sends each caller of a shared request that failed again on its own: a poison record fails its caller alone", async () => {
    const error = new Error("MESSAGE_TOO_LARGE");
    const poisoned = (batch: ProducerBatch) =>
      (batch.topicMessages ?? []).some((t) => t.messages.some((m) => String(m.key) === "poison"));
    const { kafka, batches } = fakeKafka({ error, when: poisoned });
    const publisher = publisherFor(kafka);
    const msg = (key: string) => ({ key, value: Buffer.from(key) });
    const first = publisher.send([{ topic: RESULTS, messages: [msg("a")] }]);
    const second = publisher.send([{ topic: RESULTS, messages: [msg("b")] }]);
    const bad = publisher.send([{ topic: DLQ, messages: [msg("poison")] }]);
    const third = publisher.send([{ topic: RESULTS, messages: [msg("c")] }]);
    await expect(first).resolves.toBeUndefined();
    await expect(second).resolves.toBeUndefined();
    await expect(bad).rejects.toBe(error);
    await expect(third).resolves.toBeUndefined();
    expect(batches.map((b) => flatten(b).map(({ message }) => String(message.key)))).toStrictEqual([
      ["a"],
      ["b", "c", "poison"],
      ["b"],
      ["poison"],
      ["c"],
    ]);
  });

  it("rejects a caller whose request fails on its own too, and sends the next callers' records afterwards", async () => {
    const error = new Error("REQUEST_TIMED_OUT");
    const { kafka, batches } = fakeKafka({ call: 2, error });
    const publisher = publisherFor(kafka);
    const msg = (key: string) => ({ key, value: Buffer.from(key) });
    await expect(publisher.send([{ topic: RESULTS, messages: [msg("a")] }])).resolves.toBeUndefined();
    await expect(publisher.send([{ topic: RESULTS, messages: [msg("b")] }])).rejects.toBe(error);
    await publisher.send([{ topic: RESULTS, messages: [msg("d")] }]);
    expect(batches.map((b) => flatten(b).map(({ message }) => String(message.key)))).toStrictEqual([
      ["a"],
      ["b"],
      ["d"],
    ]);
  });
});
