/**
 * The composition of the stages: events in, batches out; batch in, job out; job out, outcomes settled.
 * Flow control (docs/architecture.md, invariant 5) pauses the input when in-flight work reaches its bounds
 * and resumes it as work drains; the handler itself never waits for a job (invariant 4).
 */
import { type BatchPolicy, createBatcher, rowSizeBytes } from "../batcher/index.ts";
import { type EventDecoder, RegistryUnavailableError } from "../consumer/decode.ts";
import type { InputConsumer, InputMessage } from "../consumer/inputConsumer.ts";
import type { InvalidReason } from "../consumer/validate.ts";
import type { DeadLetter } from "../producer/deadLetter.ts";
import type { FlushTrigger, SealedBatch, SourceRef } from "../types.ts";
import type { BatchJobRunner } from "./batchJob.ts";
import type { Coordinator } from "./coordinator.ts";
import type { FlowSettings } from "./settings.ts";

export interface PipelineOptions extends FlowSettings {
  /** Paused and resumed by flow control. */
  readonly consumer: Pick<InputConsumer, "pause" | "resume" | "isPaused">;
  readonly decoder: EventDecoder;
  /** When a batch is sealed; the pipeline keeps the open batch. */
  readonly batchPolicy: BatchPolicy;
  readonly coordinator: Coordinator;
  readonly jobs: BatchJobRunner;
  /**
   * An event rejected as too large is dead-lettered with its first this-many bytes (and its original size in
   * a header): whole, it might not fit the dead-letter topic either.
   */
  readonly maxDeadLetterValueBytes: number;
  readonly onEvent?: (event: PipelineEvent) => void;
}

/** Work in flight, as flow control sees it. */
export interface InFlight {
  /** Consumed events whose outcome is not yet acknowledged. */
  readonly events: number;
  /** Batches in their job: uploading, submitted or publishing (bounded by maxJobsInFlight). */
  readonly batchesRunning: number;
  /** Sealed batches waiting for a job slot. */
  readonly batchesWaiting: number;
}

/** What the pipeline reports. One event per fetched batch of messages, never one per message. */
export type PipelineEvent =
  | {
      readonly type: "messages_handled";
      /** Events taken for the first time (refetches of events already held are not counted). */
      readonly consumed: number;
      readonly invalid: Partial<Record<InvalidReason, number>>;
    }
  | { readonly type: "registry_unavailable"; readonly source: SourceRef; readonly error: unknown }
  | {
      readonly type: "batch_sealed";
      readonly batchId: string;
      readonly events: number;
      readonly bytes: number;
      readonly trigger: FlushTrigger;
    }
  | { readonly type: "batch_abandoned"; readonly batchId: string; readonly error: unknown }
  | ({ readonly type: "in_flight" } & InFlight)
  | ({ readonly type: "input_paused" } & InFlight)
  | ({ readonly type: "input_resumed" } & InFlight);

export interface Pipeline {
  /**
   * The consumer's handler: decode, validate, route. Returns without waiting for any job, with how many
   * messages (a prefix) it took; the rest are fetched again (the schema registry was unreachable).
   */
  handleMessages(messages: readonly InputMessage[]): Promise<number>;
  /** Partitions lost in a rebalance: their outcomes can no longer be committed here. */
  revoke(topic: string, partitions: readonly number[]): void;
  inFlight(): InFlight;
  /**
   * Shutdown, first step: no more messages taken, the open batch and the batches waiting for a slot are
   * dropped (uncommitted, their events are consumed again later); running batches go on.
   */
  close(): void;
  /** Resolves when every running batch and dead-letter settle has ended. */
  drain(): Promise<void>;
  /** Shutdown, last step: running batches end now, without an outcome; their events stay uncommitted. */
  abandon(): void;
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { consumer, coordinator, jobs } = options;
  const emit = (event: PipelineEvent) => options.onEvent?.(event);
  const waiting: SealedBatch[] = [];
  const running = new Set<Promise<void>>();
  const settlingInvalid = new Set<Promise<void>>();
  const abandoning = new AbortController();
  let closed = false;

  const inFlight = (): InFlight => ({
    events: coordinator.inFlight(),
    batchesRunning: running.size,
    batchesWaiting: waiting.length,
  });

  const applyFlowControl = () => {
    if (closed) return; // shutting down: the input stays paused
    const now = inFlight();
    emit({ type: "in_flight", ...now });
    const full = now.events >= options.maxEventsInFlight || now.batchesWaiting > 0;
    // Resume below 90% of the event bound, so the consumer does not flap at the edge.
    const drained = now.events < options.maxEventsInFlight * 0.9 && now.batchesWaiting === 0;
    if (full && !consumer.isPaused()) {
      consumer.pause();
      emit({ type: "input_paused", ...now });
    } else if (drained && consumer.isPaused()) {
      consumer.resume();
      emit({ type: "input_resumed", ...now });
    }
  };

  const startNext = () => {
    while (running.size < options.maxJobsInFlight && waiting.length > 0) {
      const batchId = (waiting[0] as SealedBatch).batchId;
      const call = { abortSignal: abandoning.signal };
      // Only the id is kept in these closures: the sealed batch (its features) must be collectable as soon
      // as its upload is done, however long the job then runs.
      const task = jobs
        .upload(waiting.shift() as SealedBatch, call)
        .then((uploaded) => jobs.score(uploaded, call))
        .then((result) => coordinator.settleBatch(result))
        .catch((error: unknown) => {
          // Not settled: its events stay uncommitted and are consumed again after a restart or rebalance.
          emit({ type: "batch_abandoned", batchId, error });
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

  const enqueue = (batch: SealedBatch) => {
    emit({
      type: "batch_sealed",
      batchId: batch.batchId,
      events: batch.members.length,
      bytes: batch.sizeBytes,
      trigger: batch.trigger,
    });
    if (closed) return; // sealed while shutting down: nothing of it left this process
    waiting.push(batch);
    startNext();
  };

  const batcher = createBatcher({ policy: options.batchPolicy, onSeal: enqueue });

  const deadLetterOf = (message: InputMessage, reason: InvalidReason, detail: string): DeadLetter => {
    const value = message.value;
    const truncate =
      reason === "too_large" && value !== null && value.length > options.maxDeadLetterValueBytes;
    return {
      source: message.source,
      reason,
      detail,
      key: message.key,
      value: truncate ? value.subarray(0, options.maxDeadLetterValueBytes) : value,
      ...(truncate ? { truncatedFromBytes: value.length } : {}),
      ...(message.headers ? { originalHeaders: message.headers } : {}),
    };
  };

  return {
    async handleMessages(messages) {
      const letters: DeadLetter[] = [];
      const invalid: Partial<Record<InvalidReason, number>> = {};
      let taken = 0;
      let consumed = 0;
      for (const message of messages) {
        if (closed) break;
        let result: Awaited<ReturnType<EventDecoder["decode"]>>;
        try {
          result = await options.decoder.decode(message.value);
        } catch (error) {
          if (!(error instanceof RegistryUnavailableError)) throw error;
          emit({ type: "registry_unavailable", source: message.source, error });
          break;
        }
        taken++;
        if (!coordinator.track(message.source)) continue; // already held here (refetch after a rebalance)
        consumed++;
        if (result.ok) {
          batcher.add({ source: message.source, row: result.row, sizeBytes: rowSizeBytes(result.row) });
        } else {
          invalid[result.reason] = (invalid[result.reason] ?? 0) + 1;
          letters.push(deadLetterOf(message, result.reason, result.detail));
        }
      }
      if (consumed > 0) emit({ type: "messages_handled", consumed, invalid });
      if (letters.length > 0) {
        const settle = coordinator
          .settleInvalid(letters)
          .catch(() => {
            // settleInvalid gives up only when stopped: the events stay uncommitted.
          })
          .finally(() => {
            settlingInvalid.delete(settle);
            applyFlowControl();
          });
        settlingInvalid.add(settle);
      }
      applyFlowControl();
      return taken;
    },

    revoke(topic, partitions) {
      coordinator.revoke(topic, partitions);
      applyFlowControl();
    },

    inFlight,

    close() {
      closed = true;
      // The open batch is never submitted: its events are uncommitted and will be consumed again.
      batcher.close();
      waiting.length = 0; // sealed but not started: nothing of theirs left this process
    },

    async drain() {
      while (running.size + settlingInvalid.size > 0)
        await Promise.allSettled([...running, ...settlingInvalid]);
    },

    abandon() {
      abandoning.abort(new Error("shutdown: batch abandoned"));
    },
  };
}
