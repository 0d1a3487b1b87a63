import "../kafka/abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import { type Kafka, type Message, Partitioners, type Producer } from "kafkajs";
import { DEFAULT_DEAD_LETTER_MAX_BYTES, type DeadLetter, deadLetterMessage } from "./deadLetter.ts";
import type { PredictionEncoder, PredictionRecord } from "./predictionRecord.ts";

export interface PublisherOptions {
  readonly kafka: Kafka;
  readonly resultsTopic: string;
  readonly deadLetterTopic: string;
  readonly encoder: PredictionEncoder;
  /** Largest dead-letter record (the dead-letter topic's max.message.bytes less a margin). Default 1 MiB less 4 KiB. */
  readonly deadLetterMaxBytes?: number;
}

export interface Publisher {
  connect(): Promise<void>;
  /**
   * Sends predictions and dead letters; resolves once Kafka has acknowledged every record (acks=all),
   * which is when their source offsets may be committed.
   */
  publish(predictions: readonly PredictionRecord[], deadLetters: readonly DeadLetter[]): Promise<void>;
  /** Sends records as they are (acks=all), in requests under the broker's size limit. */
  send(topicMessages: Array<{ topic: string; messages: Message[] }>): Promise<void>;
  disconnect(): Promise<void>;
}

export const MAX_REQUEST_BYTES = 512 * 1024;

export function messageBytes(message: Message): number {
  let size = (message.key?.length ?? 0) + (message.value?.length ?? 0) + 64;
  const headers = message.headers;
  if (headers !== undefined) {
    for (const name in headers) size += name.length + String(headers[name]).length;
  }
  return size;
}

/** Splits messages, in order, into groups of at most maxBytes (a single larger message stands alone). */
export function chunked(
  topicMessages: ReadonlyArray<{ topic: string; messages: Message[] }>,
  maxBytes: number,
): Array<Array<{ topic: string; messages: Message[] }>> {
  return [...chunksOf(topicMessages, maxBytes)];
}

/**
 * chunked, one group at a time: a sender that awaits each request before asking for the next group never
 * splits a million records in one go (the event loop gets its turns while each request is in flight).
 */
export function* chunksOf(
  topicMessages: ReadonlyArray<{ topic: string; messages: Message[] }>,
  maxBytes: number,
): Generator<Array<{ topic: string; messages: Message[] }>> {
  // Each topic once per group: kafkajs keys a request's topics by name, so a topic given twice in one
  // sendBatch loses the records of its first entry (and still resolves). Records of a topic keep their order.
  let current = new Map<string, Message[]>();
  let bytes = 0;
  const group = () => [...current].map(([topic, messages]) => ({ topic, messages }));
  for (const { topic, messages } of topicMessages) {
    for (const message of messages) {
      const size = messageBytes(message);
      if (bytes + size > maxBytes && bytes > 0) {
        yield group();
        current = new Map();
        bytes = 0;
      }
      const list = current.get(topic);
      if (list) list.push(message);
      else current.set(topic, [message]);
      bytes += size;
    }
  }
  if (current.size > 0) yield group();
}

/**
 * The records of a set of outcomes, in the order they are sent: predictions (Avro, keyed by store) to the
 * results topic, then dead letters, each made to fit `deadLetterMaxBytes` (src/producer/deadLetter.ts).
 */
export async function outcomeMessages(
  options: Pick<PublisherOptions, "resultsTopic" | "deadLetterTopic" | "encoder" | "deadLetterMaxBytes">,
  predictions: readonly PredictionRecord[],
  deadLetters: readonly DeadLetter[],
  now: Date = new Date(),
): Promise<Array<{ topic: string; messages: Message[] }>> {
  const topicMessages: Array<{ topic: string; messages: Message[] }> = [];
  if (predictions.length > 0) {
    const messages = await Promise.all(
      predictions.map(async (record) => ({
        key: record.store_id,
        value: await options.encoder.encode(record),
      })),
    );
    topicMessages.push({ topic: options.resultsTopic, messages });
  }
  if (deadLetters.length > 0) {
    const maxBytes = options.deadLetterMaxBytes ?? DEFAULT_DEAD_LETTER_MAX_BYTES;
    topicMessages.push({
      topic: options.deadLetterTopic,
      messages: deadLetters.map((letter) => deadLetterMessage(letter, now, maxBytes)),
    });
  }
  return topicMessages;
}

/** The connector's one idempotent producer, for the results topic and the dead-letter topic. */
export function createPublisher(options: PublisherOptions): Publisher {
  const producer: Producer = options.kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // The Java client's murmur2 partitioning: a store's forecasts land where Java producers would put them.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  /**
   * Sends made while a request is in flight wait for it and then go together, in one sendBatch: with one
   * request in flight (the idempotent producer's sequence numbers need it), the writes of several input
   * partitions then share a request instead of queueing one request each. Every caller resolves once all of
   * its records are acknowledged. If a shared request fails, no caller can tell which of its records went:
   * each is sent again on its own, so one caller's bad record (too large, a topic it may not write) fails that
   * caller alone. A record of the failed request that did land is then sent twice, which at-least-once (the
   * only mode that uses this producer for outcomes) allows.
   */
  interface Pending {
    readonly topicMessages: ReadonlyArray<{ topic: string; messages: Message[] }>;
    readonly resolve: () => void;
    readonly reject: (error: unknown) => void;
  }
  let pending: Pending[] = [];
  let sending = false;
  // Several requests when needed: one request must stay under the broker's message.max.bytes (1 MiB by
  // default), whatever a fetch of invalid events added up to.
  const sendAll = async (topicMessages: ReadonlyArray<{ topic: string; messages: Message[] }>) => {
    for (const chunk of chunksOf(topicMessages, MAX_REQUEST_BYTES)) {
      await producer.sendBatch({ topicMessages: chunk, acks: -1 });
    }
  };
  const sendAlone = async (p: Pending) => {
    try {
      await sendAll(p.topicMessages);
      p.resolve();
    } catch (error) {
      p.reject(error);
    }
  };
  const drain = async () => {
    sending = true;
    try {
      while (pending.length > 0) {
        const group = pending;
        pending = [];
        if (group.length === 1) {
          await sendAlone(group[0] as Pending);
          continue;
        }
        try {
          await sendAll(group.flatMap((p) => p.topicMessages));
          for (const p of group) p.resolve();
        } catch {
          for (const p of group) await sendAlone(p);
        }
      }
    } finally {
      sending = false;
    }
  };
  const send = (topicMessages: Array<{ topic: string; messages: Message[] }>): Promise<void> => {
    if (topicMessages.every((t) => t.messages.length === 0)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      pending.push({ topicMessages, resolve, reject });
      if (!sending) void drain();
    });
  };

  return {
    connect: () => producer.connect(),
    async publish(predictions, deadLetters) {
      await send(await outcomeMessages(options, predictions, deadLetters));
    },
    send,
    disconnect: () => producer.disconnect(),
  };
}
