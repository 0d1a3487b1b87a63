import { randomBytes } from "node:crypto";
import type { BatchMember, FeatureEvent, FeatureRow, FlushTrigger, SealedBatch } from "../types.ts";
import { type BatchPolicy, type BatchSize, EMPTY_BATCH } from "./policy.ts";

export type TimerHandle = unknown;

export interface BatcherOptions {
  readonly policy: BatchPolicy;
  /**
   * Receives every sealed batch, whatever sealed it (add, the timer, or flush). Called synchronously
   * after the batcher has already started afresh, so it may call add() or flush() itself. An exception it
   * throws propagates to the caller of add()/flush() (or out of the timer callback): a lost batch must
   * not go unnoticed.
   */
  readonly onSeal: (batch: SealedBatch) => void;
  /** Clock in milliseconds since the epoch. Default: Date.now. */
  readonly now?: () => number;
  /**
   * Batch id generator. Default: `b-<ms base36, 9 chars>-<12 hex>`, sortable by creation time and unique.
   * The id is the input file's stem, so it must be unique per batch and safe in a blob name
   * (letters, digits, `.`, `_`, `-`).
   */
  readonly newBatchId?: () => string;
  /** Default: setTimeout. Injectable for tests. */
  readonly setTimer?: (callback: () => void, ms: number) => TimerHandle;
  /** Default: clearTimeout. */
  readonly clearTimer?: (handle: TimerHandle) => void;
}

export interface Batcher {
  /** Adds a valid event to the open batch, sealing batches as the policy says. Never waits. */
  add(event: FeatureEvent): void;
  /**
   * Seals the open batch now (default trigger "shutdown"), hands it to onSeal and returns it too.
   * Returns undefined when no batch is open.
   */
  flush(trigger?: FlushTrigger): SealedBatch | undefined;
  /** Events in the open batch. */
  pendingCount(): number;
  /**
   * Stops the timer and refuses further events. Does not seal: call flush("shutdown") first to keep the
   * open batch. Events left unsealed were never committed, so they are consumed again after a restart.
   */
  close(): void;
}

const BATCH_ID_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;

function defaultBatchId(nowMs: number): string {
  // Nine base36 digits cover dates until year 5188, so ids sort by creation time as plain strings.
  return `b-${Math.max(0, Math.trunc(nowMs)).toString(36).padStart(9, "0")}-${randomBytes(6).toString("hex")}`;
}

interface OpenBatch {
  readonly rows: FeatureRow[];
  /** Each row's json (FeatureEvent.json), in row order. */
  json: string[];
  readonly members: BatchMember[];
  size: BatchSize;
  readonly openedAtMs: number;
  timer: TimerHandle;
}

export function createBatcher(options: BatcherOptions): Batcher {
  if (options === null || typeof options !== "object")
    throw new TypeError("batcher options must be an object");
  const { policy, onSeal } = options;
  if (policy === null || typeof policy !== "object" || typeof policy.check !== "function") {
    throw new TypeError("policy must be a BatchPolicy (createBatchPolicy)");
  }
  if (typeof onSeal !== "function") throw new TypeError("onSeal must be a function");
  const now = options.now ?? Date.now;
  const newBatchId = options.newBatchId ?? (() => defaultBatchId(now()));
  const setTimer = options.setTimer ?? ((callback: () => void, ms: number) => setTimeout(callback, ms));
  const clearTimer =
    options.clearTimer ?? ((handle: TimerHandle) => clearTimeout(handle as ReturnType<typeof setTimeout>));

  let open: OpenBatch | undefined;
  let closed = false;

  function seal(trigger: FlushTrigger): SealedBatch | undefined {
    const batch = open;
    if (batch === undefined) return undefined;
    // A bad id leaves the batch open (nothing lost); once it is valid the batch is forgotten before
    // onSeal runs, so whatever onSeal does (add, flush, throw) the batcher stays consistent.
    const batchId = newBatchId();
    if (typeof batchId !== "string" || !BATCH_ID_PATTERN.test(batchId)) {
      throw new TypeError(
        `newBatchId must return 1-200 characters of [A-Za-z0-9._-], got ${String(batchId)}`,
      );
    }
    open = undefined;
    clearTimer(batch.timer);
    const sealed: SealedBatch = Object.freeze({
      batchId,
      rows: Object.freeze(batch.rows),
      rowJson: Object.freeze(batch.json),
      members: Object.freeze(batch.members),
      trigger,
      sizeBytes: batch.size.bytes,
      openedAtMs: batch.openedAtMs,
      sealedAtMs: now(),
    });
    onSeal(sealed);
    return sealed;
  }

  function start(): OpenBatch {
    const batch: OpenBatch = {
      rows: [],
      json: [],
      members: [],
      size: EMPTY_BATCH,
      openedAtMs: now(),
      timer: undefined,
    };
    // One timer per batch, armed by its first event: maxWaitMs bounds how long any event waits here.
    batch.timer = setTimer(() => {
      if (open === batch) seal("time");
    }, policy.maxWaitMs);
    return batch;
  }

  return {
    add(event: FeatureEvent): void {
      if (closed) throw new Error("batcher is closed");
      const rowBytes = event.sizeBytes;
      if (!Number.isSafeInteger(rowBytes) || rowBytes <= 0) {
        throw new RangeError(
          `event.sizeBytes must be a positive integer (rowSizeBytes), got ${String(rowBytes)}`,
        );
      }
      if (open !== undefined && !policy.fits(open.size, rowBytes)) seal("bytes");
      open ??= start();
      open.rows.push(event.row);
      open.json.push(event.json);
      open.members.push({ source: event.source, storeId: event.row.store_id });
      open.size = policy.grow(open.size, rowBytes);
      const trigger = policy.check(open.size);
      if (trigger !== undefined) seal(trigger);
    },
    flush(trigger: FlushTrigger = "shutdown"): SealedBatch | undefined {
      return seal(trigger);
    },
    pendingCount(): number {
      return open?.rows.length ?? 0;
    },
    close(): void {
      closed = true;
      if (open !== undefined) {
        clearTimer(open.timer);
        open.timer = undefined;
      }
    },
  };
}
