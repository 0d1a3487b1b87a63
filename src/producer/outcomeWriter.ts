/**
 * How a partition's outcomes reach Kafka (docs/architecture.md, invariants 1, 2 and 13): its predictions, its
 * dead letters, its ledger records and, when the finished prefix moved, its consumer offset.
 *
 * - exactly-once: one transactional producer per input partition, transactional id
 *   `<group>.<topic>.<partition>`. Everything of one write commits in one transaction, offsets included
 *   (sendOffsets), so a read_committed consumer sees each outcome once. The producer is initialised when the
 *   partition is assigned: that bumps the id's epoch and fences the previous owner, even a zombie that still
 *   thinks it owns the partition (kafkajs commits offsets without the group generation, so this is the fence).
 * - at-least-once: the connector's one idempotent producer, then a consumer-group offset commit: a crash in
 *   between publishes those outcomes again.
 */
import type { Kafka, Message, Producer } from "kafkajs";
import { chunksOf, MAX_REQUEST_BYTES } from "./publisher.ts";

/** How long close() waits for a fencing attempt still in flight before it disconnects anyway. */
const CLOSE_FENCING_WAIT_MS = 2_000;

export interface TopicMessages {
  readonly topic: string;
  readonly messages: Message[];
}

export interface OutcomeWrite {
  readonly topicMessages: readonly TopicMessages[];
  /** The input partition's new commit offset (the next offset to consume), when the finished prefix moved. */
  readonly offset?: string;
}

export interface OutcomeWriter {
  /** Connects (exactly-once: initialises the transactional id, which fences the previous owner). */
  init(): Promise<void>;
  /** All of it or nothing (exactly-once); acknowledged by Kafka when it resolves. */
  write(write: OutcomeWrite): Promise<void>;
  /** A fresh producer after errors that may have wedged this one (sequence errors, a broken transaction). */
  rebuild(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Kafka says another producer with the same transactional id took over (or the broker expired this one's
 * transaction): this partition is no longer this producer's to write. kafkajs 2.2.4 reports both as
 * INVALID_PRODUCER_EPOCH (error 47; brokers translate PRODUCER_FENCED to it for its request versions),
 * possibly wrapped (originalError, cause) by its retrier.
 */
export function isFenced(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const { type } = e as { type?: string };
    if (type === "INVALID_PRODUCER_EPOCH" || type === "PRODUCER_FENCED") return true;
    e = (e as { originalError?: unknown }).originalError ?? (e as { cause?: unknown }).cause;
  }
  return false;
}

async function sendChunks(
  send: (chunk: TopicMessages[]) => Promise<unknown>,
  topicMessages: readonly TopicMessages[],
): Promise<void> {
  // Several requests when needed: one request must stay under the broker's message.max.bytes.
  for (const chunk of chunksOf(topicMessages, MAX_REQUEST_BYTES)) await send(chunk);
}

export interface TransactionalWriterOptions {
  readonly kafka: Kafka;
  readonly transactionalId: string;
  /** The consumer group whose offset the transaction commits. */
  readonly groupId: string;
  readonly inputTopic: string;
  readonly partition: number;
  /** The job ledger: its partition of the same number is written to at initialisation (see init). */
  readonly ledgerTopic: string;
}

/** The ledger key of the initialisation tombstone; the ledger reader ignores it like any deleted key. */
export const FENCE_KEY = "__fence";

export function createTransactionalWriter(options: TransactionalWriterOptions): OutcomeWriter {
  const newProducer = (): Producer =>
    options.kafka.producer({
      transactionalId: options.transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      // Transactions are short (one partition's outcomes); a stuck one is aborted by the broker after this.
      transactionTimeout: 60_000,
      // A partition's writes follow one another: the next transaction's first request often finds the
      // previous one's commit markers still being written (CONCURRENT_TRANSACTIONS), which clears within
      // milliseconds. kafkajs would first retry after 300 ms; start at 30 ms (doubling, as before), close to the
      // Java client's 20 ms for this error. Retries stay unbounded, as the idempotent producer needs.
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 30 },
    });
  let producer = newProducer();
  /** The fencing transaction in flight, if any (settled, never rejecting). */
  let fencing: Promise<unknown> = Promise.resolve();

  const fence = async () => {
    await producer.connect();
    // kafkajs initialises the transactional id (InitProducerId, which fences the previous owner) only when
    // a first transaction begins, not on connect. And the broker may answer it before the previous owner's
    // last transaction is complete (its commit markers still being written). So: one transaction now, with
    // a tombstone of a key nobody uses on the ledger partition. It can only commit after the previous
    // owner's last transaction has ended, and once it has, everything that one committed is below the
    // ledger partition's last stable offset, where the ledger read that follows reads up to.
    const transaction = await producer.transaction();
    try {
      await transaction.send({
        topic: options.ledgerTopic,
        messages: [{ key: FENCE_KEY, value: null, partition: options.partition }],
      });
      await transaction.commit();
    } catch (error) {
      if (transaction.isActive()) await transaction.abort().catch(() => {});
      throw error;
    }
  };

  return {
    init() {
      const attempt = fence();
      fencing = attempt.catch(() => {});
      return attempt;
    },
    async write({ topicMessages, offset }) {
      const transaction = await producer.transaction();
      try {
        await sendChunks((chunk) => transaction.sendBatch({ topicMessages: chunk, acks: -1 }), topicMessages);
        if (offset !== undefined) {
          await transaction.sendOffsets({
            consumerGroupId: options.groupId,
            topics: [{ topic: options.inputTopic, partitions: [{ partition: options.partition, offset }] }],
          });
        }
        await transaction.commit();
      } catch (error) {
        if (transaction.isActive()) await transaction.abort().catch(() => {});
        throw error;
      }
    },
    async rebuild() {
      await producer.disconnect().catch(() => {});
      producer = newProducer();
      await producer.connect();
    },
    async close() {
      await producer.disconnect().catch(() => {});
      // kafkajs retries InitProducerId on its own (a coordinator still loading, on a new broker) and connects
      // again for it after a disconnect: once the fencing in flight has ended, disconnect what it opened.
      // kafkajs retries that without limit, so the wait is bounded: a coordinator that stays away must not
      // keep the member in its group (the next owner would wait for the session timeout).
      await Promise.race([
        fencing,
        new Promise((resolve) => setTimeout(resolve, CLOSE_FENCING_WAIT_MS).unref()),
      ]);
      await producer.disconnect().catch(() => {});
    },
  };
}

export interface AtLeastOnceWriterOptions {
  /** The connector's shared idempotent producer (src/producer/publisher.ts), connected by its owner. */
  readonly send: (topicMessages: TopicMessages[]) => Promise<void>;
  /** The consumer group's commit of this partition's offset. */
  readonly commit: (offset: string) => Promise<void>;
}

export function createAtLeastOnceWriter(options: AtLeastOnceWriterOptions): OutcomeWriter {
  // A write retried because only its commit failed is not sent again (the coordinator retries the same object).
  const sent = new WeakSet<OutcomeWrite>();
  return {
    init: async () => {},
    async write(write) {
      if (!sent.has(write)) {
        await sendChunks(options.send, write.topicMessages);
        sent.add(write);
      }
      if (write.offset !== undefined) await options.commit(write.offset);
    },
    rebuild: async () => {},
    close: async () => {},
  };
}
