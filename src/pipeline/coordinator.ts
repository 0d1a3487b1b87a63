/**
 * The one place that decides what is published, what the ledger says, and what is committed
 * (docs/architecture.md, invariants 1, 2, 13). Stages report to it; it writes each input partition's outcomes
 * through that partition's writer (src/producer/outcomeWriter.ts): in exactly-once mode predictions, dead
 * letters, the ledger update and the new offset of a partition commit in one transaction.
 *
 * Per owned partition it keeps:
 * - an epoch, new on every assignment: work started under an older epoch never writes for the partition;
 * - a queue: one write at a time per partition, in order, so an offset is never sent ahead of an outcome;
 * - what the ledger held when the partition was assigned: offsets of batches in flight elsewhere (held: never
 *   batched again, their batch is resumed) and of batches already published (complete as soon as fetched).
 */
import type { BatchStore } from "../azure/blobStore.ts";
import { sourceAt, storeIdAt } from "../batcher/members.ts";
import {
  encodeLedgerEntry,
  inRanges,
  type LedgerEntry,
  lastOffset,
  type OffsetRanges,
  toRanges,
} from "../ledger/record.ts";
import type { DeadLetter, DeadLetterReason } from "../producer/deadLetter.ts";
import {
  isFenced,
  type OutcomeWrite,
  type OutcomeWriter,
  type TopicMessages,
} from "../producer/outcomeWriter.ts";
import type { PredictionRecord } from "../producer/predictionRecord.ts";
import type { RetryPolicy } from "../retry.ts";
import type { BatchResult, SourceRef, TopicPartitionOffset, UploadedBatch } from "../types.ts";
import type { JobProgress } from "./batchJob.ts";
import type { OffsetTracker } from "./offsetTracker.ts";

/** A batch at work: which partitions it may write for, each under the epoch it was started in. */
export interface BatchRun {
  readonly batch: UploadedBatch;
  /** Partition -> epoch. A partition reassigned since (another epoch) is not this run's to write. */
  readonly parts: ReadonlyMap<number, number>;
}

/** A batch found in flight in the ledger of a newly assigned partition: to be resumed. */
export interface ResumableEntry {
  readonly partition: number;
  readonly epoch: number;
  readonly entry: LedgerEntry;
}

export interface CoordinatorOptions {
  readonly inputTopic: string;
  readonly ledgerTopic: string;
  readonly tracker: OffsetTracker;
  /** A writer for an input partition, not yet initialised. */
  readonly createWriter: (partition: number) => OutcomeWriter;
  /** The partition's ledger entries, once everything committed to it has been read. */
  readonly readLedger: (partition: number) => Promise<LedgerEntry[]>;
  /**
   * The group's committed offset of an input partition, read after the previous owner is fenced (undefined:
   * none yet). The consumer may have resolved its start position before a last transaction of the previous
   * owner committed; the fetch restarts from this one.
   */
  readonly readCommittedOffset: (partition: number) => Promise<string | undefined>;
  /** Moves the fetch position of an input partition (the consumer's seek). */
  readonly seek: (partition: number, offset: string) => void;
  /**
   * at-least-once: records are sent before the offset is committed, so a ledger key is removed only once a
   * previous commit has passed it (a crash in between must not lose a done record). Default false.
   */
  readonly tombstoneAfterCommit?: boolean;
  /** A prediction's record value; a synchronous encoder saves a promise per record. */
  readonly encodePrediction: (record: PredictionRecord) => Buffer | Promise<Buffer>;
  /** Dead letters as Kafka records that always fit the dead-letter topic. */
  readonly deadLetterMessages: (letters: readonly DeadLetter[]) => TopicMessages;
  readonly resultsTopic: string;
  readonly store: Pick<BatchStore, "readBatchRows">;
  /** Paces writes Kafka refused and reading batch files back for dead letters. */
  readonly retry: RetryPolicy;
  /** Failed writes in a row after which the partition's producer is rebuilt. Default 3. */
  readonly rebuildAfterFailures?: number;
  readonly onEvent?: (event: CoordinatorEvent) => void;
}

/** Dead letters by reason, as counted in one write. */
export type DeadLetterCounts = Partial<Record<DeadLetterReason, number>>;

/** What the coordinator reports. */
export type CoordinatorEvent =
  | {
      readonly type: "outcomes_published";
      readonly partition: number;
      /** Absent for invalid events, which belong to no batch. */
      readonly batchId?: string;
      readonly jobId?: string;
      readonly predictions: number;
      readonly deadLetters: DeadLetterCounts;
      /** Kafka timestamps of the predicted events, for the end-to-end latency. */
      readonly sourceTimestampsMs: readonly number[];
      readonly acknowledgedAtMs: number;
    }
  | {
      readonly type: "ledger_recorded";
      readonly partition: number;
      readonly batchId: string;
      readonly state: string;
    }
  | {
      readonly type: "write_failed";
      readonly partition: number;
      readonly what: string;
      readonly attempt: number;
      readonly error: unknown;
    }
  | { readonly type: "partition_fenced"; readonly partition: number; readonly error: unknown }
  | {
      readonly type: "partition_loaded";
      readonly partition: number;
      readonly held: number;
      readonly resumable: number;
      readonly durationMs: number;
    }
  | {
      readonly type: "batch_file_read_failed";
      readonly blobPath: string;
      readonly attempt: number;
      readonly error: unknown;
    }
  | { readonly type: "committed"; readonly entries: readonly TopicPartitionOffset[] };

/** The batch has no partition left that this member may write for: its work ends here. */
export class BatchDroppedError extends Error {
  constructor(batchId: string) {
    super(`batch ${batchId}: none of its partitions belongs to this member any more`);
    this.name = "BatchDroppedError";
  }
}

/** What track() says of a fetched event. */
export type TrackResult = "fresh" | "held" | "duplicate" | "not_ready";

export interface Coordinator {
  /**
   * Newly assigned partitions: their writers initialised (fencing the previous owner), their ledgers read.
   * Resolves with the batches found in flight there, to be resumed. A partition that fails to load stays
   * not ready (its events are not taken) and is reported.
   */
  assign(partitions: readonly number[]): Promise<ResumableEntry[]>;
  /** Partitions lost: their outcomes can no longer be written by this member. */
  revoke(partitions: readonly number[]): void;
  /** The partition's current epoch, undefined when it is not owned (or not ready). */
  epochOf(partition: number): number | undefined;
  /** Registers a fetched event (see TrackResult). */
  track(source: SourceRef): TrackResult;
  /** Records a job's intent (before it is submitted) or its submission, for every partition the run owns. */
  recordJob(run: BatchRun, progress: JobProgress): Promise<void>;
  /** Publishes dead letters of invalid events of one partition (they belong to no batch). */
  settleInvalid(letters: readonly DeadLetter[]): Promise<void>;
  /** Publishes a batch's outcomes, partition by partition, for the partitions the run still owns. */
  settleBatch(run: BatchRun, result: BatchResult): Promise<void>;
  inFlight(): number;
  /** Since when some partition still assigned here has been unusable (fenced, or failed to load), if any. */
  unusableSinceMs(): number | undefined;
  /** Moves every partition's committed offset to its finished prefix (after outcomes arrived out of order). */
  flushCommits(): Promise<void>;
  /** Stops retrying writes (shutdown): pending ones give up, their events stay uncommitted. */
  stop(): void;
  /** Closes every partition's writer. */
  close(): Promise<void>;
}

interface HeldEntry {
  readonly key: string;
  readonly ranges: OffsetRanges;
  done: boolean;
}

interface PartitionState {
  readonly partition: number;
  readonly epoch: number;
  readonly writer: OutcomeWriter;
  ready: boolean;
  lost: boolean;
  /** Writes in order, one at a time. */
  queue: Promise<void>;
  held: HeldEntry[];
  /** Ledger keys recorded done and not yet removed, with their last offset: removed once committed past. */
  readonly doneKeys: Map<string, bigint>;
  consecutiveFailures: number;
  advancePending: boolean;
  /** Offsets below this are not this assignment's to take (the committed offset when it was assigned). */
  startOffset: bigint;
  /** The last offset this member committed for the partition. */
  committedOffset: bigint;
  /** When the partition became unusable while still assigned (fenced, or its load failed): for readiness. */
  unusableSinceMs?: number;
}

/** Predictions encoded between two turns of the event loop, for a large batch. */
const ENCODE_SLICE = 8192;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function countByReason(letters: readonly DeadLetter[]): DeadLetterCounts {
  const counts: DeadLetterCounts = {};
  for (const letter of letters) counts[letter.reason] = (counts[letter.reason] ?? 0) + 1;
  return counts;
}

export function createCoordinator(options: CoordinatorOptions): Coordinator {
  const { tracker, inputTopic } = options;
  const emit = (event: CoordinatorEvent) => options.onEvent?.(event);
  const partitions = new Map<number, PartitionState>();
  const rebuildAfter = options.rebuildAfterFailures ?? 3;
  let nextEpoch = 1;
  // Ends every retry at shutdown, so no loop holds the process open.
  const stopping = new AbortController();

  const current = (partition: number, epoch: number): PartitionState | undefined => {
    const state = partitions.get(partition);
    return state && state.epoch === epoch && state.ready && !state.lost ? state : undefined;
  };

  const ledgerMessage = (partition: number, key: string, entry: LedgerEntry | null) => ({
    topic: options.ledgerTopic,
    messages: [{ key, value: entry === null ? null : encodeLedgerEntry(entry), partition }],
  });

  /** Drops a partition whose producer was fenced: a newer owner writes for it now. */
  const fence = (state: PartitionState, error: unknown) => {
    if (state.lost) return;
    state.lost = true;
    // Still assigned here until the group says otherwise: /readyz tells when that lasts (docs, invariant 17).
    state.unusableSinceMs = Date.now();
    tracker.revoke(inputTopic, state.partition);
    emit({ type: "partition_fenced", partition: state.partition, error });
    void state.writer.close();
  };

  /**
   * Runs one write on the partition's queue: `build` is called once, when its turn comes (so the offset it
   * sends reflects every outcome before it; writes of a partition never interleave, so a retry sends the
   * same write). Resolves false when the partition was lost or the coordinator stopped first.
   */
  const enqueue = (
    state: PartitionState,
    what: string,
    build: () => { topicMessages: TopicMessages[]; offset?: string; tombstones?: string[] } | undefined,
    onWritten?: () => void,
  ): Promise<boolean> => {
    const run = async (): Promise<boolean> => {
      if (state.lost) return false;
      let built: { write: OutcomeWrite; tombstones: readonly string[] } | undefined | null = null;
      try {
        await options.retry.run(
          async () => {
            if (state.lost) throw new Error("partition lost");
            if (built === null) {
              const made = build();
              built =
                made === undefined
                  ? undefined
                  : {
                      write:
                        made.offset === undefined
                          ? { topicMessages: made.topicMessages }
                          : { topicMessages: made.topicMessages, offset: made.offset },
                      tombstones: made.tombstones ?? [],
                    };
            }
            if (built === undefined) return;
            const { write, tombstones } = built;
            await state.writer.write(write);
            state.consecutiveFailures = 0;
            if (write.offset !== undefined) {
              if (BigInt(write.offset) > state.committedOffset) state.committedOffset = BigInt(write.offset);
              const entry = { topic: inputTopic, partition: state.partition, offset: write.offset };
              tracker.markCommitted([entry]);
              emit({ type: "committed", entries: [entry] });
            }
            // Removed from the ledger now: never tombstoned again, no longer held.
            if (tombstones.length > 0) forgetTombstoned(state, tombstones);
          },
          {
            abortSignal: stopping.signal,
            isRetriable: (error) => !isFenced(error) && !state.lost,
            onRetry: ({ attempt, error }) => {
              emit({ type: "write_failed", partition: state.partition, what, attempt, error });
              if (++state.consecutiveFailures % rebuildAfter === 0)
                void state.writer.rebuild().catch(() => {});
            },
          },
        );
      } catch (error) {
        if (isFenced(error)) fence(state, error);
        return false;
      }
      if (state.lost) return false;
      onWritten?.();
      return true;
    };
    const result = state.queue.then(run, run);
    state.queue = result.then(
      () => {},
      () => {},
    );
    return result;
  };

  /** The partition's new commit offset if its finished prefix moved, and tombstones for ledger keys it passes. */
  const offsetAndTombstones = (state: PartitionState): { offset?: string; tombstones: string[] } => {
    const entry = tracker
      .committable()
      .find((e) => e.topic === inputTopic && e.partition === state.partition);
    if (entry === undefined) return { tombstones: [] };
    // Exactly-once: the offset commits with the tombstones, atomically. At-least-once: only what an earlier
    // commit already passed.
    const committedTo = options.tombstoneAfterCommit ? state.committedOffset : BigInt(entry.offset);
    const tombstones = [...state.doneKeys].filter(([, last]) => last < committedTo).map(([key]) => key);
    return { offset: entry.offset, tombstones };
  };

  const withTombstones = (state: PartitionState, topicMessages: TopicMessages[], tombstones: string[]) => {
    for (const key of tombstones) topicMessages.push(ledgerMessage(state.partition, key, null));
  };

  const forgetTombstoned = (state: PartitionState, tombstones: readonly string[]) => {
    for (const key of tombstones) state.doneKeys.delete(key);
    state.held = state.held.filter((h) => !(h.done && tombstones.includes(h.key)));
  };

  /** Completes every offset in the ranges (a batch's offsets of the partition), a range at a time. */
  const completeRanges = (state: PartitionState, ranges: OffsetRanges) => {
    for (const [from, to] of ranges)
      tracker.completeRange(inputTopic, state.partition, BigInt(from), BigInt(to));
  };

  const completeOffsets = (state: PartitionState, offsets: Iterable<string | bigint>) => {
    for (const offset of offsets) tracker.complete(inputTopic, state.partition, offset);
  };

  /** Dead letters for members of a batch (by member index), each carrying its row read back from its batch file. */
  const deadLettersFor = async (
    batch: UploadedBatch,
    jobId: string | undefined,
    memberIndexes: readonly number[],
    reason: DeadLetterReason,
    detail: string,
  ): Promise<DeadLetter[] | undefined> => {
    if (memberIndexes.length === 0) return [];
    const wanted = new Set(memberIndexes);
    // The features live in the batch files (invariant 8): read back those that hold these members.
    const rowOf = new Map<number, unknown>();
    for (const file of batch.files) {
      if (!file.memberIndexes.some((m) => wanted.has(m))) continue;
      const rows = await options.retry
        .run(({ abortSignal }) => options.store.readBatchRows(file.blobPath, { abortSignal }), {
          abortSignal: stopping.signal,
          onRetry: ({ attempt, error }) =>
            emit({ type: "batch_file_read_failed", blobPath: file.blobPath, attempt, error }),
        })
        .catch(() => undefined);
      if (!rows) return undefined; // stopping
      file.memberIndexes.forEach((member, k) => {
        if (wanted.has(member)) rowOf.set(member, rows[k]);
      });
    }
    return memberIndexes.map((index) => {
      const row = rowOf.get(index);
      return {
        source: sourceAt(batch.members, index),
        reason,
        detail,
        key: Buffer.from(storeIdAt(batch.members, index)),
        value: row ? Buffer.from(JSON.stringify(row)) : null,
        batchId: batch.batchId,
        ...(jobId ? { jobId } : {}),
      };
    });
  };

  /**
   * The batch's offsets per partition, as ranges (exactly its offsets: toRanges joins only consecutive ones):
   * worked out once per batch (its intent, submission and outcomes all need them), kept only as long as the
   * batch itself, and compact (no list of offsets per event is kept).
   */
  const partsCache = new WeakMap<UploadedBatch, Map<number, OffsetRanges>>();
  const partsOf = (run: BatchRun) => {
    const cached = partsCache.get(run.batch);
    if (cached) return cached;
    const { partitions, offsets, length } = run.batch.members;
    const offsetsBy = new Map<number, bigint[]>();
    for (let i = 0; i < length; i++) {
      const partition = partitions[i] as number;
      const offset = offsets[i] as bigint;
      const list = offsetsBy.get(partition);
      if (list) list.push(offset);
      else offsetsBy.set(partition, [offset]);
    }
    const parts = new Map([...offsetsBy].map(([p, list]) => [p, toRanges(list)]));
    partsCache.set(run.batch, parts);
    return parts;
  };

  const advance = (state: PartitionState) => {
    if (state.advancePending) return;
    state.advancePending = true;
    void enqueue(
      state,
      "commit",
      () => {
        state.advancePending = false;
        const { offset, tombstones } = offsetAndTombstones(state);
        if (offset === undefined) return undefined;
        const topicMessages: TopicMessages[] = [];
        withTombstones(state, topicMessages, tombstones);
        return { topicMessages, offset, tombstones };
      },
      () => undefined,
    ).finally(() => {
      state.advancePending = false;
    });
  };

  return {
    async assign(assigned) {
      const resumable: ResumableEntry[] = [];
      await Promise.all(
        assigned.map(async (partition) => {
          const started = Date.now();
          const state: PartitionState = {
            partition,
            epoch: nextEpoch++,
            writer: options.createWriter(partition),
            ready: false,
            lost: false,
            queue: Promise.resolve(),
            held: [],
            doneKeys: new Map(),
            consecutiveFailures: 0,
            advancePending: false,
            startOffset: 0n,
            committedOffset: -1n,
          };
          const previous = partitions.get(partition);
          if (previous) {
            // Assigned again while still held: the old state writes nothing more (its queue may still drain).
            previous.lost = true;
            void previous.queue.finally(() => previous.writer.close());
          }
          partitions.set(partition, state);
          tracker.revoke(inputTopic, partition);
          try {
            // Fence first, then read: once the previous owner is fenced, nothing more commits to the ledger.
            await options.retry.run(() => state.writer.init(), {
              abortSignal: stopping.signal,
              isRetriable: () => !state.lost,
              onRetry: ({ attempt, error }) =>
                emit({ type: "write_failed", partition, what: "producer initialisation", attempt, error }),
            });
            const [entries, committed] = await options.retry.run(
              () => Promise.all([options.readLedger(partition), options.readCommittedOffset(partition)]),
              {
                abortSignal: stopping.signal,
                isRetriable: () => !state.lost,
                onRetry: ({ attempt, error }) =>
                  emit({ type: "write_failed", partition, what: "reading the ledger", attempt, error }),
              },
            );
            if (state.lost || partitions.get(partition) !== state) return;
            if (committed !== undefined && BigInt(committed) >= 0n) {
              state.startOffset = BigInt(committed);
              state.committedOffset = BigInt(committed);
              options.seek(partition, committed);
            }
            for (const entry of entries) {
              state.held.push({ key: entry.batchId, ranges: entry.ranges, done: entry.state === "done" });
              const last = lastOffset(entry.ranges);
              if (entry.state === "done" && last !== undefined) state.doneKeys.set(entry.batchId, last);
              else if (entry.state !== "done" && entry.folderUri && entry.manifestPath) {
                resumable.push({ partition, epoch: state.epoch, entry });
              }
            }
            state.ready = true;
            emit({
              type: "partition_loaded",
              partition,
              held: state.held.length,
              resumable: resumable.filter((r) => r.partition === partition).length,
              durationMs: Date.now() - started,
            });
          } catch (error) {
            if (isFenced(error)) fence(state, error);
            else if (!stopping.signal.aborted) {
              state.lost = true;
              state.unusableSinceMs = Date.now();
              emit({ type: "write_failed", partition, what: "assignment", attempt: 1, error });
            }
          }
        }),
      );
      return resumable;
    },

    revoke(lost) {
      for (const partition of lost) {
        const state = partitions.get(partition);
        if (!state) continue;
        state.lost = true;
        partitions.delete(partition);
        tracker.revoke(inputTopic, partition);
        // Whatever it is writing now finishes or fails on its own; nothing more is queued for it.
        void state.queue.finally(() => state.writer.close());
      }
    },

    epochOf(partition) {
      const state = partitions.get(partition);
      return state?.ready && !state.lost ? state.epoch : undefined;
    },

    track(source) {
      const state = partitions.get(source.partition);
      if (!state?.ready || state.lost) return "not_ready";
      // Parsed once, for every comparison below.
      const offset = BigInt(source.offset);
      if (offset < state.startOffset) return "duplicate"; // fetched before the seek
      // False for an offset at or below the highest seen on its partition: kafkajs refetches from the
      // committed offset after a rebalance that kept the partition here, and those events are already held.
      if (!tracker.track(source.topic, source.partition, offset)) return "duplicate";
      if (state.held.length > 0) {
        const held = state.held.find((h) => inRanges(h.ranges, offset));
        if (held) {
          if (held.done) {
            tracker.complete(source.topic, source.partition, offset);
            advance(state);
          }
          return "held";
        }
      }
      return "fresh";
    },

    async recordJob(run, progress) {
      const offsetsBy = partsOf(run);
      const partitionsOfBatch = [...offsetsBy.keys()].sort((a, b) => a - b);
      let recorded = 0;
      await Promise.all(
        [...run.parts].map(async ([partition, epoch]) => {
          const state = current(partition, epoch);
          const ranges = offsetsBy.get(partition);
          if (!state || !ranges) return;
          const entry: LedgerEntry = {
            batchId: run.batch.batchId,
            state: progress.state,
            ranges,
            attempt: progress.attempt,
            repeatabilityId: progress.repeatabilityId,
            ...(progress.jobId ? { jobId: progress.jobId } : {}),
            ...(progress.submittedAtMs !== undefined ? { submittedAtMs: progress.submittedAtMs } : {}),
            folderUri: run.batch.folderUri,
            manifestPath: run.batch.manifestPath,
            partitions: partitionsOfBatch,
          };
          const written = await enqueue(state, `ledger ${progress.state} ${run.batch.batchId}`, () => ({
            topicMessages: [ledgerMessage(partition, run.batch.batchId, entry)],
          }));
          if (written) {
            recorded++;
            emit({ type: "ledger_recorded", partition, batchId: run.batch.batchId, state: progress.state });
          }
        }),
      );
      stopping.signal.throwIfAborted();
      if (recorded === 0) throw new BatchDroppedError(run.batch.batchId);
    },

    async settleInvalid(letters) {
      const first = letters[0];
      if (first === undefined) return;
      const state = partitions.get(first.source.partition);
      if (!state || state.lost) return;
      const offsets = letters.map((l) => l.source.offset);
      const ranges = toRanges(offsets);
      const key = `invalid-${first.source.partition}-${first.source.offset}`;
      let ledgerKept = false;
      const written = await enqueue(
        state,
        "dead letters of invalid events",
        () => {
          completeOffsets(state, offsets);
          const { offset, tombstones } = offsetAndTombstones(state);
          const topicMessages: TopicMessages[] = [options.deadLetterMessages(letters)];
          const last = lastOffset(ranges) ?? 0n;
          // Offsets committed past these letters in this same write need no ledger record; otherwise the
          // ledger remembers them, so a new owner does not dead-letter them again.
          ledgerKept = offset === undefined || BigInt(offset) <= last;
          if (ledgerKept)
            topicMessages.push(
              ledgerMessage(state.partition, key, { batchId: key, state: "done", ranges, attempt: 0 }),
            );
          withTombstones(state, topicMessages, tombstones);
          return offset === undefined ? { topicMessages, tombstones } : { topicMessages, offset, tombstones };
        },
        () => {
          if (ledgerKept) state.doneKeys.set(key, lastOffset(ranges) ?? 0n);
        },
      );
      if (!written) return;
      emit({
        type: "outcomes_published",
        partition: state.partition,
        predictions: 0,
        deadLetters: countByReason(letters),
        sourceTimestampsMs: [],
        acknowledgedAtMs: Date.now(),
      });
    },

    async settleBatch(run, result) {
      const { batch } = run;
      const { members } = batch;
      // Predictions of each partition the run owns, encoded, in member order, with their source timestamps.
      const predictionsBy = new Map<
        number,
        { messages: Array<{ key: string; value: Buffer | Promise<Buffer> }>; timestamps: number[] }
      >();
      let lettersByMember: DeadLetter[] | undefined;
      if (result.kind === "scored") {
        const predictedAt = result.predictedAt.getTime();
        let encodedCount = 0;
        for (const { memberIndex, fileName, prediction } of result.predictions) {
          const partition = members.partitions[memberIndex] as number;
          if (!run.parts.has(partition)) continue;
          const record: PredictionRecord = {
            store_id: storeIdAt(members, memberIndex),
            prediction,
            file_name: fileName,
            job_id: result.jobId,
            batch_id: batch.batchId,
            source_topic: members.topic,
            source_partition: partition,
            source_offset: Number(members.offsets[memberIndex]),
            source_timestamp: members.timestampsMs[memberIndex] as number,
            predicted_at: predictedAt,
          };
          let mine = predictionsBy.get(partition);
          if (mine === undefined) {
            mine = { messages: [], timestamps: [] };
            predictionsBy.set(partition, mine);
          }
          const value = options.encodePrediction(record);
          // An asynchronous encoder's promise is awaited below, after other awaits: a rejection before then
          // must not count as unhandled (Node would end the process); the await still sees it.
          if (value instanceof Promise) value.catch(() => {});
          mine.messages.push({ key: record.store_id, value });
          mine.timestamps.push(record.source_timestamp);
          // A large batch is encoded in slices, with the event loop getting a turn between them.
          if (++encodedCount % ENCODE_SLICE === 0) await nextTurn();
        }
        const owned = result.missing
          .map((m) => m.memberIndex)
          .filter((i) => run.parts.has(members.partitions[i] as number));
        lettersByMember = await deadLettersFor(
          batch,
          result.jobId,
          owned,
          "missing_prediction",
          `job ${result.jobId} wrote no prediction for this event`,
        );
      } else {
        const owned: number[] = [];
        for (let i = 0; i < members.length; i++)
          if (run.parts.has(members.partitions[i] as number)) owned.push(i);
        lettersByMember = await deadLettersFor(batch, result.jobId, owned, "job_failed", result.detail);
      }
      if (!lettersByMember) return; // stopping
      const letters = lettersByMember;
      const offsetsBy = partsOf(run);

      await Promise.all(
        [...run.parts].map(async ([partition, epoch]) => {
          const state = current(partition, epoch);
          const ranges = offsetsBy.get(partition);
          if (!state || !ranges) return;
          const mine = predictionsBy.get(partition) ?? { messages: [], timestamps: [] };
          const myLetters = letters.filter((l) => l.source.partition === partition);
          // A synchronous encoder's buffers are taken as they are; an asynchronous one's are awaited.
          const messages = mine.messages.some((m) => m.value instanceof Promise)
            ? await Promise.all(mine.messages.map(async (m) => ({ key: m.key, value: await m.value })))
            : (mine.messages as Array<{ key: string; value: Buffer }>);
          const last = lastOffset(ranges) ?? 0n;
          let ledgerKept = false;
          const written = await enqueue(
            state,
            `outcomes of batch ${batch.batchId}`,
            () => {
              completeRanges(state, ranges);
              const held = state.held.find((h) => h.key === batch.batchId);
              if (held) held.done = true;
              const { offset, tombstones } = offsetAndTombstones(state);
              const topicMessages: TopicMessages[] = [];
              if (messages.length > 0) topicMessages.push({ topic: options.resultsTopic, messages });
              if (myLetters.length > 0) topicMessages.push(options.deadLetterMessages(myLetters));
              ledgerKept = offset === undefined || BigInt(offset) <= last;
              topicMessages.push(
                ledgerMessage(
                  partition,
                  batch.batchId,
                  ledgerKept ? { batchId: batch.batchId, state: "done", ranges, attempt: 0 } : null,
                ),
              );
              withTombstones(state, topicMessages, tombstones);
              return offset === undefined
                ? { topicMessages, tombstones }
                : { topicMessages, offset, tombstones };
            },
            () => {
              if (ledgerKept) state.doneKeys.set(batch.batchId, last);
            },
          );
          if (!written) return;
          emit({
            type: "outcomes_published",
            partition,
            batchId: batch.batchId,
            ...(result.jobId ? { jobId: result.jobId } : {}),
            predictions: messages.length,
            deadLetters: countByReason(myLetters),
            sourceTimestampsMs: mine.timestamps,
            acknowledgedAtMs: Date.now(),
          });
        }),
      );
    },

    inFlight: () => tracker.inFlight(),

    unusableSinceMs() {
      let earliest: number | undefined;
      for (const state of partitions.values()) {
        if (state.unusableSinceMs !== undefined)
          earliest = Math.min(earliest ?? state.unusableSinceMs, state.unusableSinceMs);
      }
      return earliest;
    },

    async flushCommits() {
      for (const state of partitions.values()) if (state.ready && !state.lost) advance(state);
      await Promise.all([...partitions.values()].map((state) => state.queue));
    },

    stop() {
      stopping.abort();
    },

    async close() {
      const states = [...partitions.values()];
      partitions.clear();
      // A write already sent is let finish (bounded), so no transaction is left open when the producers go.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(states.map((state) => state.queue)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 5000);
        }),
      ]);
      clearTimeout(timer);
      await Promise.all(states.map((state) => state.writer.close()));
    },
  };
}
