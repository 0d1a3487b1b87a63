/**
 * Reads the job ledger: one consumer of its own (a group of one, read_committed, from the beginning) that
 * keeps each ledger partition's latest entries in memory. A new owner of an input partition asks for that
 * partition's entries once its transactional producer has fenced the previous owner: `entriesOf` waits until
 * the reader has caught up to the partition's last stable offset, so no committed record is missed.
 */
import { randomUUID } from "node:crypto";
import type { Admin, Consumer, Kafka } from "kafkajs";
import { decodeLedgerEntry, type LedgerEntry } from "./record.ts";

export interface LedgerReaderOptions {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly topic: string;
  /** The connector's group: the reader's own group is named after it, unique per process. */
  readonly groupId: string;
  /** Told about a record this version cannot read (it is ignored). */
  readonly onUnreadable?: (partition: number, offset: string) => void;
}

export interface LedgerReader {
  start(): Promise<void>;
  /** The partition's latest entries, by batch id, once everything committed to it so far has been read. */
  entriesOf(partition: number, options?: { abortSignal?: AbortSignal }): Promise<LedgerEntry[]>;
  stop(): Promise<void>;
}

export function createLedgerReader(options: LedgerReaderOptions): LedgerReader {
  const consumer: Consumer = options.kafka.consumer({
    groupId: `${options.groupId}.ledger-reader.${randomUUID()}`,
    maxWaitTimeInMs: 250,
  });
  const entries = new Map<number, Map<string, LedgerEntry>>();
  /** Per partition: the next offset to read (every record before it, control records included, is seen). */
  const positions = new Map<number, bigint>();
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of waiters) waiter();
  };

  /** Per partition: the next offset whose record has not been applied yet (records only, as read). */
  const applied = new Map<number, bigint>();

  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    // A fetch with nothing at or past the fetched offset reports lastOffset = high watermark - 1 (kafkajs's
    // Batch.lastOffset) though nothing up to there was read: only batches that held records count.
    if (payload.firstOffset === null || payload.firstOffset === undefined) return;
    const next = BigInt(payload.lastOffset) + 1n;
    if (next > (positions.get(payload.partition) ?? 0n)) positions.set(payload.partition, next);
    wake();
  });

  const caughtUpTo = async (partition: number, abortSignal?: AbortSignal): Promise<void> => {
    // The last stable offset (ListOffsets is read_committed): records before it are committed or aborted.
    const offsets = await options.admin.fetchTopicOffsets(options.topic);
    const end = offsets.find((o) => o.partition === partition);
    if (end === undefined) throw new Error(`ledger topic ${options.topic} has no partition ${partition}`);
    const target = BigInt(end.high);
    if (target <= BigInt(end.low)) return; // empty (or compacted away)
    while ((positions.get(partition) ?? 0n) < target) {
      abortSignal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = () => {
          waiters.delete(done);
          clearTimeout(timer);
          resolve();
        };
        // Also woken on a timer: a partition with nothing new never ends a batch.
        const timer = setTimeout(done, 200);
        waiters.add(done);
      });
    }
  };

  return {
    async start() {
      await consumer.connect();
      await consumer.subscribe({ topic: options.topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          let byKey = entries.get(batch.partition);
          if (!byKey) {
            byKey = new Map();
            entries.set(batch.partition, byKey);
          }
          // A rejoin of the reader's own group (coordinator moved, rebalance) replays from the beginning:
          // what was already read must not overwrite newer states or bring back tombstoned keys.
          const next = applied.get(batch.partition) ?? 0n;
          for (const message of batch.messages) {
            if (BigInt(message.offset) < next) continue;
            applied.set(batch.partition, BigInt(message.offset) + 1n);
            const key = message.key?.toString("utf8");
            if (key === undefined) continue;
            if (message.value === null) {
              byKey.delete(key);
              continue;
            }
            const entry = decodeLedgerEntry(message.value);
            if (entry) byKey.set(key, entry);
            else options.onUnreadable?.(batch.partition, message.offset);
          }
        },
      });
    },

    async entriesOf(partition, callOptions = {}) {
      await caughtUpTo(partition, callOptions.abortSignal);
      return [...(entries.get(partition)?.values() ?? [])];
    },

    async stop() {
      wake();
      await consumer.disconnect();
    },
  };
}
