/**
 * The input every contender of the end-to-end benchmark reads: JSON feature events made the same way on every
 * run (seeded), produced once into a topic of their own, and the topics and containers a contender writes to.
 */
import { BlobServiceClient } from "@azure/storage-blob";
import { type Kafka, Kafka as KafkaClient, logLevel } from "kafkajs";
import type { StackEndpoints } from "../../stack/src/types.ts";
import { prng, realisticFeatures, storeId } from "../lib.ts";

export const PARTITIONS = 6;

export interface InputSpec {
  readonly events: number;
  /** Distinct store ids, cycled through in order (the M5 shape has few; a "wide" input one per event). */
  readonly stores: number;
  readonly seed: number;
  /** Index of the first event (a second part of an input continues the first). Default 0. */
  readonly first?: number;
}

export function kafkaOf(stack: StackEndpoints, clientId: string): Kafka {
  return new KafkaClient({ clientId, brokers: [...stack.kafkaBrokers], logLevel: logLevel.NOTHING });
}

/** Event i of an input: its key (the store) and JSON value (~112 B with 13 features). */
export function* inputEvents(spec: InputSpec): Generator<{ key: string; value: Buffer; partition: number }> {
  const random = prng(spec.seed);
  const first = spec.first ?? 0;
  for (let i = first; i < first + spec.events; i++) {
    const store = storeId(i, spec.stores);
    const row = { store_id: store, features: realisticFeatures(random) };
    yield { key: store, value: Buffer.from(JSON.stringify(row)), partition: i % PARTITIONS };
  }
}

export async function createTopics(
  kafka: Kafka,
  topics: ReadonlyArray<{ name: string; partitions: number }>,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: topics.map((t) => ({ topic: t.name, numPartitions: t.partitions, replicationFactor: 1 })),
    });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Produces an input as fast as the broker takes it (requests of 2,000 records, 4 in flight), acks=all.
 * Returns the seconds it took, so a reader can tell whether a live run was bounded by its producer.
 */
export async function produceInput(kafka: Kafka, topic: string, spec: InputSpec): Promise<number> {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const started = performance.now();
  try {
    const inFlight = new Set<Promise<unknown>>();
    let chunk: Array<{ key: string; value: Buffer; partition: number }> = [];
    const flush = async () => {
      const sending = producer.send({ topic, acks: -1, messages: chunk });
      chunk = [];
      inFlight.add(sending);
      void sending.finally(() => inFlight.delete(sending)).catch(() => {});
      if (inFlight.size >= 4) await Promise.race(inFlight);
    };
    for (const event of inputEvents(spec)) {
      chunk.push(event);
      if (chunk.length >= 2_000) await flush();
    }
    if (chunk.length > 0) await flush();
    await Promise.all(inFlight);
  } finally {
    await producer.disconnect();
  }
  return (performance.now() - started) / 1000;
}

/** Per contender: results, dead-letter and ledger topics and an input container of its own. */
export interface ContenderTopics {
  readonly results: string;
  readonly deadLetter: string;
  readonly ledger: string;
  readonly inputContainer: string;
}

export async function contenderTopics(
  stack: StackEndpoints,
  kafka: Kafka,
  id: string,
): Promise<ContenderTopics> {
  const topics: ContenderTopics = {
    results: `${id}-out`,
    deadLetter: `${id}-dlq`,
    ledger: `${id}-ledger`,
    inputContainer: `${id}-in`.toLowerCase().slice(0, 63),
  };
  await createTopics(kafka, [
    { name: topics.results, partitions: PARTITIONS },
    { name: topics.deadLetter, partitions: 1 },
  ]);
  await BlobServiceClient.fromConnectionString(stack.blobConnectionString)
    .getContainerClient(topics.inputContainer)
    .create();
  return topics;
}
