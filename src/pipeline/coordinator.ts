/**
 * The one place that decides what is published and what is committed (docs/architecture.md, invariant 2).
 * Stages report outcomes here; an offset is committed only after the outcome of every event up to it is
 * acknowledged by Kafka (invariant 1), per partition, as the contiguous finished prefix.
 */
import type { BatchStore } from "../azure/blobStore.ts";
import type { DeadLetter, DeadLetterReason } from "../producer/deadLetter.ts";
import type { PredictionRecord } from "../producer/predictionRecord.ts";
import type { Publisher } from "../producer/publisher.ts";
import type { RetryPolicy } from "../retry.ts";
import type { BatchMember, BatchResult, SourceRef, TopicPartitionOffset } from "../types.ts";
import type { OffsetTracker } from "./offsetTracker.ts";

export interface CoordinatorOptions {
  readonly publisher: Publisher;
  readonly tracker: OffsetTracker;
  /** Commits consumer offsets (the consumer group's commit). */
  readonly commit: (entries: readonly TopicPartitionOffset[]) => Promise<void>;
  readonly store: Pick<BatchStore, "readBatchRows">;
  /** Paces publishing outcomes Kafka refused, and reading batch files back for dead letters. */
  readonly retry: RetryPolicy;
  /** Paces commits that failed (a rebalance, a coordinator move): tried again even if no new outcome arrives. */
  readonly commitRetry: RetryPolicy;
  readonly onEvent?: (event: CoordinatorEvent) => void;
}

/** Dead letters by reason, as counted in one publish. */
export type DeadLetterCounts = Partial<Record<DeadLetterReason, number>>;

/** What the coordinator reports. */
export type CoordinatorEvent =
  | {
      readonly type: "outcomes_published";
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
      readonly type: "publish_failed";
      readonly what: string;
      readonly attempt: number;
      readonly error: unknown;
    }
  | {
      readonly type: "batch_file_read_failed";
      readonly blobPath: string;
      readonly attempt: number;
      readonly error: unknown;
    }
  | { readonly type: "committed"; readonly entries: readonly TopicPartitionOffset[] }
  | {
      readonly type: "commit_failed";
      readonly entries: readonly TopicPartitionOffset[];
      readonly error: unknown;
    };

export interface Coordinator {
  /** Registers a fetched event; false when it is a redelivery of one this instance already holds. */
  track(source: SourceRef): boolean;
  /** Publishes dead letters of invalid events (they belong to no batch). */
  settleInvalid(letters: readonly DeadLetter[]): Promise<void>;
  settleBatch(result: BatchResult): Promise<void>;
  /** Partitions lost in a rebalance: their outcomes can no longer be committed by this member. */
  revoke(topic: string, partitions: readonly number[]): void;
  inFlight(): number;
  /**
   * Commits whatever is committable now, retrying failed commits; resolves when no commit is running.
   * After stop(), it tries once: call it then to commit what is settled before leaving the group.
   */
  flushCommits(): Promise<void>;
  /** Stops retrying (shutdown): pending settles give up, their events stay uncommitted. */
  stop(): void;
}

function countByReason(letters: readonly DeadLetter[]): DeadLetterCounts {
  const counts: DeadLetterCounts = {};
  for (const letter of letters) counts[letter.reason] = (counts[letter.reason] ?? 0) + 1;
  return counts;
}

export function createCoordinator(options: CoordinatorOptions): Coordinator {
  const { tracker } = options;
  const emit = (event: CoordinatorEvent) => options.onEvent?.(event);
  let committing: Promise<void> | undefined;
  let commitAgain = false;
  // Ends every retry at shutdown, so no loop holds the process open.
  const stopping = new AbortController();

  /**
   * Kafka refusing a write is transient from our side (leader moves, broker restarts): keep trying.
   * Resolves false when stopped first.
   */
  const publishUntilAcknowledged = async (
    what: string,
    predictions: readonly PredictionRecord[],
    letters: readonly DeadLetter[],
  ): Promise<boolean> =>
    options.retry
      .run(() => options.publisher.publish(predictions, letters), {
        abortSignal: stopping.signal,
        onRetry: ({ attempt, error }) => emit({ type: "publish_failed", what, attempt, error }),
      })
      .then(
        () => true,
        (error: unknown) => {
          if (stopping.signal.aborted) return false;
          throw error;
        },
      );

  const complete = (sources: readonly SourceRef[]) => {
    for (const s of sources) tracker.complete(s.topic, s.partition, s.offset);
    void flushCommits();
  };

  /** One commit of what is committable now; throws when it failed, so the retry policy paces the next. */
  const commitOnce = async () => {
    const entries = tracker.committable();
    if (entries.length === 0) return;
    try {
      await options.commit(entries);
    } catch (error) {
      // Usually a rebalance in progress: the entries stay committable and go with the next try.
      emit({ type: "commit_failed", entries, error });
      throw error;
    }
    tracker.markCommitted(entries);
    emit({ type: "committed", entries });
  };

  const commitLoop = async () => {
    do {
      commitAgain = false;
      await options.commitRetry.run(commitOnce, { abortSignal: stopping.signal }).catch(() => {
        // Stopped: whatever is committable now is flushed once more at shutdown, by flushCommits.
      });
    } while (commitAgain && !stopping.signal.aborted);
  };

  const flushCommits = (): Promise<void> => {
    if (stopping.signal.aborted) {
      // Stopped: one last try of what is committable, after any commit still running.
      return (committing ?? Promise.resolve()).then(() => commitOnce().catch(() => {}));
    }
    if (committing) {
      commitAgain = true;
      return committing;
    }
    committing = commitLoop().finally(() => {
      committing = undefined;
    });
    return committing;
  };

  /** Dead letters for members of a batch, each carrying its row read back from its batch file. */
  const deadLettersFor = async (
    result: BatchResult,
    members: readonly BatchMember[],
    reason: DeadLetterReason,
    detail: string,
  ): Promise<DeadLetter[] | undefined> => {
    if (members.length === 0) return [];
    const wanted = new Set(members);
    // The features live in the batch files (invariant 8): read back those that hold these members.
    const rowOf = new Map<BatchMember, unknown>();
    for (const file of result.batch.files) {
      if (!file.members.some((m) => wanted.has(m))) continue;
      const rows = await options.retry
        .run(({ abortSignal }) => options.store.readBatchRows(file.blobPath, { abortSignal }), {
          abortSignal: stopping.signal,
          onRetry: ({ attempt, error }) =>
            emit({ type: "batch_file_read_failed", blobPath: file.blobPath, attempt, error }),
        })
        .catch(() => undefined);
      if (!rows) return undefined; // stopping
      file.members.forEach((member, i) => {
        if (wanted.has(member)) rowOf.set(member, rows[i]);
      });
    }
    return members.map((member) => {
      const row = rowOf.get(member);
      return {
        source: member.source,
        reason,
        detail,
        key: Buffer.from(member.storeId),
        value: row ? Buffer.from(JSON.stringify(row)) : null,
        batchId: result.batch.batchId,
        ...(result.jobId ? { jobId: result.jobId } : {}),
      };
    });
  };

  return {
    track(source) {
      // False for an offset at or below the highest seen on its partition: kafkajs refetches from the
      // committed offset after a rebalance that kept the partition here, and those events are already held.
      return tracker.track(source.topic, source.partition, source.offset);
    },

    async settleInvalid(letters) {
      if (letters.length === 0) return;
      if (!(await publishUntilAcknowledged("invalid events", [], letters))) return;
      emit({
        type: "outcomes_published",
        predictions: 0,
        deadLetters: countByReason(letters),
        sourceTimestampsMs: [],
        acknowledgedAtMs: Date.now(),
      });
      complete(letters.map((l) => l.source));
    },

    async settleBatch(result) {
      const members = result.batch.members;
      let predictions: PredictionRecord[] = [];
      let letters: DeadLetter[] | undefined;
      if (result.kind === "scored") {
        predictions = result.predictions.map(({ member, fileName, prediction }) => ({
          store_id: member.storeId,
          prediction,
          file_name: fileName,
          job_id: result.jobId,
          batch_id: result.batch.batchId,
          source_topic: member.source.topic,
          source_partition: member.source.partition,
          source_offset: Number(member.source.offset),
          source_timestamp: member.source.timestampMs,
          predicted_at: result.predictedAt.getTime(),
        }));
        letters = await deadLettersFor(
          result,
          result.missing.map((m) => m.member),
          "missing_prediction",
          `job ${result.jobId} wrote no prediction for this event`,
        );
      } else {
        letters = await deadLettersFor(result, members, "job_failed", result.detail);
      }
      if (!letters) return; // stopping
      if (!(await publishUntilAcknowledged(`batch ${result.batch.batchId}`, predictions, letters))) return;
      emit({
        type: "outcomes_published",
        batchId: result.batch.batchId,
        ...(result.jobId ? { jobId: result.jobId } : {}),
        predictions: predictions.length,
        deadLetters: countByReason(letters),
        sourceTimestampsMs: predictions.map((p) => p.source_timestamp),
        acknowledgedAtMs: Date.now(),
      });
      complete(members.map((m) => m.source));
    },

    revoke(topic, partitions) {
      for (const partition of partitions) tracker.revoke(topic, partition);
    },

    inFlight: () => tracker.inFlight(),
    flushCommits,
    stop() {
      stopping.abort();
    },
  };
}
