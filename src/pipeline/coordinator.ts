import { setTimeout as sleep } from "node:timers/promises";
import type { BatchStore } from "../azure/blobStore.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { DeadLetter, DeadLetterReason } from "../producer/deadLetter.ts";
import type { PredictionRecord } from "../producer/predictionRecord.ts";
import type { Publisher } from "../producer/publisher.ts";
import type { BatchMember, SourceRef } from "../types.ts";
import type { BatchResult } from "./batchJob.ts";
import type { OffsetTracker } from "./offsetTracker.ts";

export interface CommitEntry {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface CoordinatorOptions {
  readonly publisher: Publisher;
  readonly tracker: OffsetTracker;
  /** Commits consumer offsets (the consumer group's commit). */
  readonly commit: (entries: readonly CommitEntry[]) => Promise<void>;
  readonly store: Pick<BatchStore, "readBatchRows">;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Backoff between attempts to publish outcomes Kafka refused; default 1 s doubling to 30 s. */
  readonly retryDelayMs?: number;
  /** How often committable offsets whose commit failed are tried again. Default 5 s. */
  readonly commitRetryIntervalMs?: number;
}

export interface InvalidEvent {
  readonly source: SourceRef;
  readonly reason: DeadLetterReason;
  readonly detail: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: DeadLetter["originalHeaders"];
  readonly truncatedFromBytes?: number;
}

export interface Coordinator {
  /** Registers a fetched event; false when it is a redelivery of one this instance already holds. */
  track(source: SourceRef): boolean;
  settleInvalid(events: readonly InvalidEvent[]): Promise<void>;
  settleBatch(result: BatchResult): Promise<void>;
  /** Partitions lost in a rebalance: their outcomes can no longer be committed by this member. */
  revoke(topic: string, partitions: readonly number[]): void;
  inFlight(): number;
  /** Commits whatever is committable now; resolves when no commit is running. */
  flushCommits(): Promise<void>;
  /** Stops retrying publishes (shutdown): pending settles give up, their events stay uncommitted. */
  stop(): void;
}

/**
 * The one place that decides what is published and what is committed (design note 2). Stages report
 * outcomes here; an offset is committed only after the outcome of every event up to it is acknowledged
 * by Kafka (design note 1), per partition, as the contiguous finished prefix.
 */
export function createCoordinator(options: CoordinatorOptions): Coordinator {
  const { tracker, metrics, logger } = options;
  const baseDelayMs = options.retryDelayMs ?? 1000;
  let committing: Promise<void> | undefined;
  let commitAgain = false;
  let stopped = false;
  // Cancels the back-off sleeps at shutdown, so a retry loop never holds the process open.
  const stopping = new AbortController();
  const backoff = (attempt: number) =>
    sleep(Math.min(baseDelayMs * 2 ** attempt, 30_000), undefined, { signal: stopping.signal }).catch(
      () => {},
    );

  const updateGauge = () => metrics.eventsInFlight.set(tracker.inFlight());

  /** Kafka refusing a write is transient from our side (leader moves, broker restarts): keep trying. */
  const publishUntilAcknowledged = async (
    what: string,
    predictions: readonly PredictionRecord[],
    letters: readonly DeadLetter[],
  ): Promise<boolean> => {
    for (let attempt = 0; ; attempt++) {
      if (stopped) return false;
      try {
        await options.publisher.publish(predictions, letters);
        return true;
      } catch (error) {
        logger.error({ err: error, what, attempt }, "publishing outcomes failed; retrying");
        await backoff(attempt);
      }
    }
  };

  const complete = (sources: readonly SourceRef[]) => {
    for (const s of sources) tracker.complete(s.topic, s.partition, s.offset);
    updateGauge();
    void flushCommits();
  };

  const commitLoop = async () => {
    do {
      commitAgain = false;
      const entries = tracker.committable();
      if (entries.length === 0) continue;
      try {
        await options.commit(entries);
        tracker.markCommitted(entries);
        metrics.offsetsCommitted.inc();
      } catch (error) {
        // Usually a rebalance in progress: the entries stay committable and go with the next commit.
        logger.warn({ err: error, entries }, "offset commit failed; will retry with the next one");
      }
    } while (commitAgain);
  };

  const flushCommits = (): Promise<void> => {
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
  ): Promise<DeadLetter[]> => {
    if (members.length === 0) return [];
    const wanted = new Set(members);
    // The features live in the batch files (design note 8): read back those that hold these members.
    const rowOf = new Map<BatchMember, unknown>();
    for (const file of result.batch.files) {
      if (!file.members.some((m) => wanted.has(m))) continue;
      const rows = await retrying(`read batch file ${file.blobPath}`, () =>
        options.store.readBatchRows(file.blobPath),
      );
      if (!rows) return []; // stopping
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

  const retrying = async <T>(what: string, operation: () => Promise<T>): Promise<T | undefined> => {
    for (let attempt = 0; ; attempt++) {
      if (stopped) return undefined;
      try {
        return await operation();
      } catch (error) {
        logger.error({ err: error, what, attempt }, "operation failed; retrying");
        await backoff(attempt);
      }
    }
  };

  // A commit that failed (a rebalance, a coordinator move) is tried again even if no new outcome arrives.
  const commitRetryTimer = setInterval(() => void flushCommits(), options.commitRetryIntervalMs ?? 5000);
  commitRetryTimer.unref();

  return {
    track(source) {
      // False for an offset at or below the highest seen on its partition: kafkajs refetches from the
      // committed offset after a rebalance that kept the partition here, and those events are already held.
      const fresh = tracker.track(source.topic, source.partition, source.offset);
      if (fresh) updateGauge();
      return fresh;
    },

    async settleInvalid(events) {
      if (events.length === 0) return;
      const letters: DeadLetter[] = events.map((e) => ({
        source: e.source,
        reason: e.reason,
        detail: e.detail,
        key: e.key,
        value: e.value,
        ...(e.headers ? { originalHeaders: e.headers } : {}),
        ...(e.truncatedFromBytes !== undefined ? { truncatedFromBytes: e.truncatedFromBytes } : {}),
      }));
      if (!(await publishUntilAcknowledged("invalid events", [], letters))) return;
      for (const letter of letters) metrics.deadLetters.inc({ reason: letter.reason });
      complete(letters.map((l) => l.source));
    },

    async settleBatch(result) {
      const members = result.batch.members;
      let predictions: PredictionRecord[] = [];
      let letters: DeadLetter[];
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
      if (!(await publishUntilAcknowledged(`batch ${result.batch.batchId}`, predictions, letters))) return;
      const acknowledgedAt = Date.now();
      metrics.predictionsPublished.inc(predictions.length);
      for (const p of predictions) {
        metrics.endToEndLatency.observe((acknowledgedAt - p.source_timestamp) / 1000);
      }
      for (const letter of letters) metrics.deadLetters.inc({ reason: letter.reason });
      logger.info(
        {
          batchId: result.batch.batchId,
          jobId: result.jobId,
          predictions: predictions.length,
          deadLetters: letters.length,
        },
        "batch results published",
      );
      complete(members.map((m) => m.source));
    },

    revoke(topic, partitions) {
      for (const partition of partitions) tracker.revoke(topic, partition);
      updateGauge();
    },

    inFlight: () => tracker.inFlight(),
    flushCommits,
    stop() {
      stopped = true;
      stopping.abort();
      clearInterval(commitRetryTimer);
    },
  };
}
