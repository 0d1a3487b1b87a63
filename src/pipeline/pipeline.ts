/**
 * The composition of the stages: events in, batches out; batch in, job out; job out, outcomes settled.
 * Flow control (docs/architecture.md, invariant 5) pauses the input when in-flight work reaches its bounds
 * and resumes it as work drains; the handler itself never waits for a job (invariant 4). On assignment a
 * partition is paused alone while its ledger is read, and the batches found in flight there are resumed:
 * their jobs are watched again, never submitted again (invariant 13).
 */
import { type BatchPolicy, createBatcher, serializeRow } from "../batcher/index.ts";
import { type EventDecoder, RegistryUnavailableError } from "../consumer/decode.ts";
import type { InputConsumer, InputMessage } from "../consumer/inputConsumer.ts";
import type { InvalidReason } from "../consumer/validate.ts";
import type { DeadLetter } from "../producer/deadLetter.ts";
import type { RetryPolicy } from "../retry.ts";
import type { FlushTrigger, SealedBatch, SourceRef } from "../types.ts";
import type { BatchJobRunner } from "./batchJob.ts";
import { BatchDroppedError, type BatchRun, type Coordinator, type ResumableEntry } from "./coordinator.ts";
import type { FlowSettings } from "./settings.ts";

export interface PipelineOptions extends FlowSettings {
  /** Paused and resumed by flow control, partitions alone while their ledger is read. */
  readonly consumer: Pick<
    InputConsumer,
    "pause" | "resume" | "isPaused" | "pausePartitions" | "resumePartitions"
  >;
  readonly decoder: EventDecoder;
  /** When a batch is sealed; the pipeline keeps the open batch. */
  readonly batchPolicy: BatchPolicy;
  readonly coordinator: Coordinator;
  readonly jobs: BatchJobRunner;
  /** Paces a batch whose scoring failed unexpectedly: it is scored again, never left holding its events. */
  readonly retry: RetryPolicy;
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
  /** Batches in their job: uploading, submitted or publishing (bounded by maxJobsInFlight), resumed ones too. */
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
  | { readonly type: "batch_resuming"; readonly batchId: string; readonly partitions: readonly number[] }
  | {
      readonly type: "batch_failed";
      readonly batchId: string;
      readonly attempt: number;
      readonly error: unknown;
    }
  | { readonly type: "batch_abandoned"; readonly batchId: string; readonly error: unknown }
  | ({ readonly type: "in_flight" } & InFlight)
  | ({ readonly type: "input_paused" } & InFlight)
  | ({ readonly type: "input_resumed" } & InFlight);

export interface Pipeline {
  /**
   * The consumer's handler: decode, validate, route. Returns without waiting for any job, with how many
   * messages (a prefix) it took; the rest are fetched again (the schema registry was unreachable, or the
   * partition's ledger is still being read).
   */
  handleMessages(messages: readonly InputMessage[]): Promise<number>;
  /** Newly assigned partitions: paused alone while their ledger is read, their batches in flight resumed. */
  assign(partitions: readonly number[]): Promise<void>;
  /** Partitions lost in a rebalance: no outcome of theirs is written here any more. */
  revoke(partitions: readonly number[]): void;
  inFlight(): InFlight;
  /**
   * Shutdown: no more messages taken, nothing new uploaded or submitted; the open batch and the batches
   * waiting for a slot are dropped (uncommitted, their events are consumed again later) and batches not yet
   * publishing stop (their jobs go on: the next owner resumes them from the ledger).
   */
  close(): void;
  /** Resolves when every batch still publishing and every dead-letter write has ended. */
  drain(): Promise<void>;
  /** Shutdown, last step: whatever still runs ends now, without an outcome; its events stay uncommitted. */
  abandon(): void;
}

interface Run {
  readonly batchId: string;
  readonly abort: AbortController;
  settling: boolean;
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { consumer, coordinator, jobs } = options;
  const emit = (event: PipelineEvent) => options.onEvent?.(event);
  const waiting: Array<{ batch: SealedBatch; parts: Map<number, number> }> = [];
  const runs = new Set<Run>();
  const tasks = new Set<Promise<void>>();
  const settlingInvalid = new Set<Promise<void>>();
  let closed = false;

  const inFlight = (): InFlight => ({
    events: coordinator.inFlight(),
    batchesRunning: runs.size,
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

  /** Starts a run and keeps it counted until it ends, whatever its end. */
  const track = (run: Run, work: Promise<void>) => {
    runs.add(run);
    const task = work
      .catch((error: unknown) => {
        // Ends without an outcome (shutdown, or every partition lost): its events are not committed here.
        if (!(error instanceof BatchDroppedError) && !run.abort.signal.aborted)
          emit({ type: "batch_abandoned", batchId: run.batchId, error });
      })
      .finally(() => {
        runs.delete(run);
        tasks.delete(task);
        startNext();
        applyFlowControl();
      });
    tasks.add(task);
  };

  /**
   * Scores an uploaded batch and settles it, again after an unexpected failure (with backoff): the batch is
   * never left holding its events. The same attempt's repeatability id makes a repeated submission harmless.
   */
  const scoreAndSettle = async (
    run: Run,
    batchRun: BatchRun,
    resume?: { attempt: number; jobId?: string; submittedAtMs?: number },
  ) => {
    await options.retry.run(
      async () => {
        const result = await jobs.score(batchRun.batch, {
          abortSignal: run.abort.signal,
          record: (progress) => coordinator.recordJob(batchRun, progress),
          ...(resume ? { resume } : {}),
        });
        run.settling = true;
        await coordinator.settleBatch(batchRun, result);
      },
      {
        abortSignal: run.abort.signal,
        isRetriable: (error) => !(error instanceof BatchDroppedError),
        onRetry: ({ attempt, error }) => emit({ type: "batch_failed", batchId: run.batchId, attempt, error }),
      },
    );
  };

  /** Still-owned partitions of a sealed batch, under the epochs they had when it was sealed. */
  const ownedPart = (batch: SealedBatch, parts: Map<number, number>): SealedBatch | undefined => {
    const keep = (p: number) => parts.get(p) !== undefined && coordinator.epochOf(p) === parts.get(p);
    if (batch.members.every((m) => keep(m.source.partition))) return batch;
    const indexes = batch.members.flatMap((m, i) => (keep(m.source.partition) ? [i] : []));
    if (indexes.length === 0) return undefined;
    return {
      ...batch,
      rows: indexes.map((i) => batch.rows[i] as SealedBatch["rows"][number]),
      rowJson: indexes.map((i) => batch.rowJson[i] as string),
      members: indexes.map((i) => batch.members[i] as SealedBatch["members"][number]),
    };
  };

  const startNext = () => {
    while (!closed && runs.size < options.maxJobsInFlight && waiting.length > 0) {
      const next = waiting.shift() as { batch: SealedBatch; parts: Map<number, number> };
      const batch = ownedPart(next.batch, next.parts);
      if (!batch) continue; // every partition of it was lost: its events belong to their new owners
      const run: Run = { batchId: batch.batchId, abort: new AbortController(), settling: false };
      const parts = next.parts;
      // Only the id is kept in these closures: the sealed batch (its features) must be collectable as soon
      // as its upload is done, however long the job then runs.
      track(
        run,
        jobs
          .upload(batch, { abortSignal: run.abort.signal })
          .then((uploaded) => scoreAndSettle(run, { batch: uploaded, parts })),
      );
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
    const parts = new Map<number, number>();
    for (const member of batch.members) {
      const epoch = coordinator.epochOf(member.source.partition);
      if (epoch !== undefined) parts.set(member.source.partition, epoch);
    }
    waiting.push({ batch, parts });
    startNext();
  };

  const batcher = createBatcher({ policy: options.batchPolicy, onSeal: enqueue });

  /** Resumes batches found in flight in the ledger: one run per batch, for the partitions loaded together. */
  const resume = (entries: readonly ResumableEntry[]) => {
    const byBatch = new Map<string, ResumableEntry[]>();
    for (const entry of entries) {
      const list = byBatch.get(entry.entry.batchId);
      if (list) list.push(entry);
      else byBatch.set(entry.entry.batchId, [entry]);
    }
    for (const [batchId, parts] of byBatch) {
      // The most advanced record wins: a later attempt, or the same attempt once submitted.
      const latest = parts
        .map((p) => p.entry)
        .reduce((a, b) =>
          b.attempt > a.attempt ||
          (b.attempt === a.attempt && b.state === "submitted" && a.state !== "submitted")
            ? b
            : a,
        );
      const run: Run = { batchId, abort: new AbortController(), settling: false };
      emit({ type: "batch_resuming", batchId, partitions: parts.map((p) => p.partition) });
      track(
        run,
        (async () => {
          const batch = await jobs.restore(latest.manifestPath as string, { abortSignal: run.abort.signal });
          if (!batch) throw new Error(`batch ${batchId}: its manifest ${latest.manifestPath} is gone`);
          await scoreAndSettle(
            run,
            { batch, parts: new Map(parts.map((p) => [p.partition, p.epoch])) },
            {
              attempt: latest.attempt,
              ...(latest.state === "submitted" && latest.jobId ? { jobId: latest.jobId } : {}),
              ...(latest.submittedAtMs !== undefined ? { submittedAtMs: latest.submittedAtMs } : {}),
            },
          );
        })(),
      );
    }
  };

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
        // JSON needs no registry: decoded without a promise per event.
        let result = options.decoder.decodeSync?.(message.value);
        if (result === undefined) {
          try {
            result = await options.decoder.decode(message.value);
          } catch (error) {
            if (!(error instanceof RegistryUnavailableError)) throw error;
            emit({ type: "registry_unavailable", source: message.source, error });
            break;
          }
        }
        const tracked = coordinator.track(message.source);
        if (tracked === "not_ready") break; // its ledger is being read, or it was lost: fetched again later
        taken++;
        if (tracked === "duplicate") continue; // already held here (refetch after a rebalance)
        consumed++;
        if (tracked === "held") continue; // in a batch resumed from the ledger, or already published
        if (result.ok) {
          // Stringified once: its length drives the byte trigger, the string itself goes into the file.
          const json = serializeRow(result.row);
          batcher.add({ source: message.source, row: result.row, sizeBytes: Buffer.byteLength(json), json });
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
            // settleInvalid gives up only when stopped or the partition was lost: the events stay uncommitted.
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

    async assign(partitions) {
      if (partitions.length === 0 || closed) return;
      consumer.pausePartitions(partitions);
      try {
        const resumable = await coordinator.assign(partitions);
        // Shutting down meanwhile: those batches are left in the ledger for the next owner.
        if (!closed) resume(resumable);
      } finally {
        consumer.resumePartitions(partitions);
        applyFlowControl();
      }
    },

    revoke(partitions) {
      if (partitions.length === 0) return;
      coordinator.revoke(partitions);
      // The open batch may hold events of the lost partitions: sealed now, it keeps only the others.
      batcher.flush("rebalance");
      applyFlowControl();
    },

    inFlight,

    close() {
      closed = true;
      // The open batch is never submitted: its events are uncommitted and will be consumed again.
      batcher.close();
      waiting.length = 0; // sealed but not started: nothing of theirs left this process
      // Nothing new is uploaded or submitted after the signal; batches already publishing finish.
      for (const run of runs)
        if (!run.settling) run.abort.abort(new Error("shutdown: resumed by the next owner"));
    },

    async drain() {
      while (tasks.size + settlingInvalid.size > 0) await Promise.allSettled([...tasks, ...settlingInvalid]);
    },

    abandon() {
      for (const run of runs) run.abort.abort(new Error("shutdown: batch abandoned"));
    },
  };
}
