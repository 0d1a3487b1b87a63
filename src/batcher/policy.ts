import type { FeatureRow } from "../types.ts";

/**
 * When a batch is sealed: count, byte size, or time since its first event, whichever comes first.
 * The policy is stateless: the batcher keeps the open batch and asks the policy about it, so one policy
 * can be shared, logged and tested on its own.
 */
export interface BatchPolicyOptions {
  /** Seal when the batch holds this many events. Positive integer. */
  readonly maxRecords: number;
  /**
   * Seal when the batch file (JSON array, see `serializeBatch`) would exceed this many bytes.
   * Positive integer. A single event larger than this still forms a batch of one.
   */
  readonly maxBytes: number;
  /** Seal this many milliseconds after the batch's first event. Positive integer. */
  readonly maxWaitMs: number;
}

/** Size of an open batch as the policy sees it. */
export interface BatchSize {
  readonly records: number;
  /** Bytes of the batch file, framing included (`batchSizeBytes`). */
  readonly bytes: number;
}

export interface BatchPolicy extends BatchPolicyOptions {
  /**
   * Whether a row of `rowBytes` can join `batch` without pushing it over maxBytes. An empty batch
   * accepts anything: an oversized event must still go somewhere, and a batch of one is that place.
   */
  fits(batch: BatchSize, rowBytes: number): boolean;
  /** Size of `batch` once a row of `rowBytes` is appended. */
  grow(batch: BatchSize, rowBytes: number): BatchSize;
  /** The count or byte trigger that fires for a batch of this size, if any. Count wins a tie. */
  check(batch: BatchSize): "count" | "bytes" | undefined;
}

/** The size of a batch with no rows: the file `[]`. */
export const EMPTY_BATCH: BatchSize = Object.freeze({ records: 0, bytes: batchSizeBytes(0, 0) });

function requirePositiveInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export function createBatchPolicy(options: BatchPolicyOptions): BatchPolicy {
  if (options === null || typeof options !== "object") {
    throw new TypeError("batch policy options must be an object");
  }
  const maxRecords = requirePositiveInteger("maxRecords", options.maxRecords);
  const maxBytes = requirePositiveInteger("maxBytes", options.maxBytes);
  const maxWaitMs = requirePositiveInteger("maxWaitMs", options.maxWaitMs);

  const grow = (batch: BatchSize, rowBytes: number): BatchSize => ({
    records: batch.records + 1,
    // Each row after the first costs a separating comma.
    bytes: batch.bytes + rowBytes + (batch.records > 0 ? 1 : 0),
  });

  return Object.freeze({
    maxRecords,
    maxBytes,
    maxWaitMs,
    fits: (batch: BatchSize, rowBytes: number) =>
      batch.records === 0 || grow(batch, rowBytes).bytes <= maxBytes,
    grow,
    check: (batch: BatchSize) => {
      if (batch.records >= maxRecords) return "count" as const;
      if (batch.bytes >= maxBytes) return "bytes" as const;
      return undefined;
    },
  });
}

/**
 * The row exactly as it is written into the batch file: only the two columns the endpoint reads, in a
 * fixed key order, so that the size the consumer measures is the size the file gets.
 */
export function serializeRow(row: FeatureRow): string {
  return JSON.stringify({ store_id: row.store_id, features: row.features });
}

/** Bytes a row takes in the batch file, without the array framing. The consumer stores it as FeatureEvent.sizeBytes. */
export function rowSizeBytes(row: FeatureRow): number {
  return Buffer.byteLength(serializeRow(row), "utf8");
}

/** Bytes of a batch file holding `records` rows whose rowSizeBytes sum to `rowBytes`: `[` + rows + commas + `]`. */
export function batchSizeBytes(records: number, rowBytes: number): number {
  return 2 + rowBytes + Math.max(0, records - 1);
}

/**
 * The batch file: a compact JSON array of `{store_id, features}`, the guide's input format. Its length is
 * batchSizeBytes(rows.length, sum of rowSizeBytes), which is what the byte trigger counted.
 */
export function serializeBatch(rows: readonly FeatureRow[]): Buffer {
  return Buffer.from(`[${rows.map(serializeRow).join(",")}]`, "utf8");
}

/** The batch file from rows already serialised (serializeRow), each stringified once for its size and its file. */
export function joinSerializedRows(rows: readonly string[]): Buffer {
  return Buffer.from(`[${rows.join(",")}]`, "utf8");
}
