import type { Batcher } from "../batcher/index.ts";
import { rowSizeBytes } from "../batcher/index.ts";
import { type EventDecoder, RegistryUnavailableError } from "../consumer/decode.ts";
import type { InputConsumer, InputMessage } from "../consumer/inputConsumer.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { SealedBatch } from "../types.ts";
import type { BatchResult, UploadedBatchRecord } from "./batchJob.ts";
import type { Coordinator, InvalidEvent } from "./coordinator.ts";

export interface PipelineOptions {
  readonly consumer: InputConsumer;
  readonly decoder: EventDecoder;
  /** Built by the caller with onSeal wired to pipeline.enqueue (the batcher is created before the pipeline). */
  readonly batcher: Batcher;
  readonly coordinator: Coordinator;
  /** Writes a sealed batch's files (uploadBatch with its dependencies bound). */
  readonly upload: (batch: SealedBatch) => Promise<UploadedBatchRecord>;
  /** Runs an uploaded batch's job and reads its results (scoreBatch with its dependencies bound). */
  readonly score: (batch: UploadedBatchRecord) => Promise<BatchResult>;
  readonly maxJobsInFlight: number;
  readonly maxEventsInFlight: number;
  /**
   * An event rejected as too large is dead-lettered with its first this-many bytes (and its original size in
   * a header): whole, it might not fit the dead-letter topic either.
   */
  readonly maxDeadLetterValueBytes: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

export interface Pipeline {
  /**
   * The consumer's handler: decode, validate, route. Returns without waiting for any job, with how many
   * messages (a prefix) it took; the rest are fetched again (the schema registry was unreachable).
   */
  handleMessages(messages: readonly InputMessage[]): Promise<number>;
  /** The batcher's onSeal: queue the batch for a job slot. */
  enqueue(batch: SealedBatch): void;
  /** Batches uploading, running or publishing, plus those waiting for a slot. */
  jobsInFlight(): number;
  /** Shutdown: messages still being handed over are ignored (uncommitted, they are consumed again later). */
  close(): void;
  /** Resolves when every started batch and dead-letter settle has ended, for shutdown. */
  drain(): Promise<void>;
}

/**
 * The composition of the stages: events in, batches out; batch in, job out; job out, outcomes settled.
 * Flow control (design note 5) pauses the input when in-flight work reaches its bounds and resumes it
 * as work drains; the handler itself never blocks on a job (design note 4).
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { consumer, coordinator, metrics, logger } = options;
  const waiting: SealedBatch[] = [];
  const running = new Set<Promise<void>>();
  const settlingInvalid = new Set<Promise<void>>();
  let closed = false;

  const jobsInFlight = () => running.size + waiting.length;

  const applyFlowControl = () => {
    if (closed) return; // shutting down: the input stays paused
    const events = coordinator.inFlight();
    metrics.jobsInFlight.set(jobsInFlight());
    const full = events >= options.maxEventsInFlight || waiting.length > 0;
    // Resume below 90% of the event bound, so the consumer does not flap at the edge.
    const drained = events < options.maxEventsInFlight * 0.9 && waiting.length === 0;
    if (full && !consumer.isPaused()) {
      consumer.pause();
      metrics.consumerPaused.set(1);
      metrics.consumerPauses.inc();
      logger.info(
        { eventsInFlight: events, jobsInFlight: jobsInFlight() },
        "input paused: in-flight work at its bound",
      );
    } else if (drained && consumer.isPaused()) {
      consumer.resume();
      metrics.consumerPaused.set(0);
      logger.info({ eventsInFlight: events, jobsInFlight: jobsInFlight() }, "input resumed");
    }
  };

  const startNext = () => {
    while (running.size < options.maxJobsInFlight && waiting.length > 0) {
      const batchId = (waiting[0] as SealedBatch).batchId;
      // Only the id is kept in these closures: the sealed batch (its features) must be collectable as soon
      // as its upload is done, however long the job then runs.
      const task = options
        .upload(waiting.shift() as SealedBatch)
        .then(options.score)
        .then((result) => coordinator.settleBatch(result))
        .catch((error: unknown) => {
          // Not settled: its events stay uncommitted and are consumed again after a restart or rebalance.
          logger.error({ err: error, batchId }, "batch abandoned before its outcome was settled");
        })
        .finally(() => {
          running.delete(task);
          startNext();
          applyFlowControl();
        });
      running.add(task);
    }
    applyFlowControl();
  };

  return {
    async handleMessages(messages) {
      const invalid: InvalidEvent[] = [];
      let taken = 0;
      for (const message of messages) {
        if (closed) break;
        let result: Awaited<ReturnType<EventDecoder["decode"]>>;
        try {
          result = await options.decoder.decode(message.value);
        } catch (error) {
          if (!(error instanceof RegistryUnavailableError)) throw error;
          logger.warn(
            { err: error, source: message.source },
            "schema registry unavailable: event left for the next fetch",
          );
          break;
        }
        taken++;
        if (!coordinator.track(message.source)) continue; // already held here (refetch after a rebalance)
        metrics.eventsConsumed.inc();
        if (result.ok) {
          options.batcher.add({
            source: message.source,
            row: result.row,
            sizeBytes: rowSizeBytes(result.row),
          });
        } else {
          metrics.eventsInvalid.inc({ reason: result.reason });
          const value = message.value;
          const truncate =
            result.reason === "too_large" && value !== null && value.length > options.maxDeadLetterValueBytes;
          invalid.push({
            source: message.source,
            reason: result.reason,
            detail: result.detail,
            key: message.key,
            value: truncate ? value.subarray(0, options.maxDeadLetterValueBytes) : value,
            ...(truncate ? { truncatedFromBytes: value.length } : {}),
            ...(message.headers ? { headers: message.headers } : {}),
          });
        }
      }
      if (invalid.length > 0) {
        const settle = coordinator.settleInvalid(invalid).finally(() => {
          settlingInvalid.delete(settle);
          applyFlowControl();
        });
        settlingInvalid.add(settle);
      }
      applyFlowControl();
      return taken;
    },

    enqueue(batch) {
      metrics.batchesFlushed.inc({ trigger: batch.trigger });
      metrics.batchSizeEvents.observe(batch.members.length);
      logger.info(
        {
          batchId: batch.batchId,
          events: batch.members.length,
          bytes: batch.sizeBytes,
          trigger: batch.trigger,
        },
        "batch sealed",
      );
      waiting.push(batch);
      startNext();
    },

    jobsInFlight,

    close() {
      closed = true;
      waiting.length = 0; // sealed but not started: nothing of theirs left this process
    },

    async drain() {
      while (running.size + settlingInvalid.size > 0)
        await Promise.allSettled([...running, ...settlingInvalid]);
    },
  };
}
