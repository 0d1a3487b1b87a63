/**
 * The job ledger's records (docs/architecture.md, invariant 13): one compacted topic with the input's
 * partition count; ledger partition P records the batches holding events of input partition P. A record's
 * key is the batch id, so compaction keeps each batch's latest state; a tombstone (null value) removes a
 * batch once the committed offset has passed all of its events.
 *
 * Offsets are kept as ranges, never one entry per event: a batch's events of one partition are mostly
 * consecutive offsets, split only where an invalid event or a transaction marker sits between them.
 */

/** intent: written before the job is submitted; submitted: the job id is known; done: outcomes published. */
export type LedgerState = "intent" | "submitted" | "done";

/** Inclusive offset ranges, ascending, int64 as decimal strings (as Kafka offsets travel in kafkajs). */
export type OffsetRanges = ReadonlyArray<readonly [string, string]>;

export interface LedgerEntry {
  readonly batchId: string;
  readonly state: LedgerState;
  /** This partition's offsets in the batch. */
  readonly ranges: OffsetRanges;
  /** Job attempt (1-based) the state is about; 0 for records that are no job (dead letters of invalid events). */
  readonly attempt: number;
  readonly repeatabilityId?: string;
  readonly jobId?: string;
  /** When the job was submitted: the job timeout counts from here, across restarts. */
  readonly submittedAtMs?: number;
  /** The batch's input folder, the job's input. */
  readonly folderUri?: string;
  /** Blob path of the batch's manifest: which event each row of each file is (src/azure/blobStore.ts). */
  readonly manifestPath?: string;
  /** Every input partition the batch holds events of (the other partitions' owners resume their share). */
  readonly partitions?: readonly number[];
}

const VERSION = 1;

export function encodeLedgerEntry(entry: LedgerEntry): Buffer {
  return Buffer.from(JSON.stringify({ v: VERSION, ...entry }));
}

/** A record's value back to an entry; undefined for a value this version cannot read (logged by the caller). */
export function decodeLedgerEntry(value: Buffer): LedgerEntry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString("utf8"));
  } catch {
    return undefined;
  }
  const entry = parsed as Partial<LedgerEntry> & { v?: unknown };
  if (
    entry === null ||
    typeof entry !== "object" ||
    entry.v !== VERSION ||
    typeof entry.batchId !== "string" ||
    (entry.state !== "intent" && entry.state !== "submitted" && entry.state !== "done") ||
    !Array.isArray(entry.ranges) ||
    typeof entry.attempt !== "number"
  ) {
    return undefined;
  }
  const { v: _, ...rest } = entry;
  return rest as LedgerEntry;
}

/** Ascending offsets (strings) to inclusive ranges of consecutive offsets. */
export function toRanges(offsets: Iterable<string | bigint>): OffsetRanges {
  // A typed array sorts numerically and natively; offsets are int64 (src/pipeline/offsetTracker.ts).
  const sorted = BigInt64Array.from(offsets, (o) => (typeof o === "bigint" ? o : BigInt(o))).sort();
  const ranges: Array<[string, string]> = [];
  let start: bigint | undefined;
  let end: bigint | undefined;
  for (const offset of sorted) {
    if (end !== undefined && offset === end + 1n) {
      end = offset;
      continue;
    }
    if (end === offset) continue; // duplicate
    if (start !== undefined && end !== undefined) ranges.push([String(start), String(end)]);
    start = offset;
    end = offset;
  }
  if (start !== undefined && end !== undefined) ranges.push([String(start), String(end)]);
  return ranges;
}

/** Whether an offset lies in the ranges (binary search). */
export function inRanges(ranges: OffsetRanges, offset: bigint): boolean {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const [from, to] = ranges[mid] as readonly [string, string];
    if (offset < BigInt(from)) high = mid - 1;
    else if (offset > BigInt(to)) low = mid + 1;
    else return true;
  }
  return false;
}

/** The highest offset of the ranges. */
export function lastOffset(ranges: OffsetRanges): bigint | undefined {
  const last = ranges.at(-1);
  return last === undefined ? undefined : BigInt(last[1]);
}

/** Every offset of the ranges, ascending. */
export function* offsetsOf(ranges: OffsetRanges): Generator<string> {
  for (const [from, to] of ranges) {
    for (let o = BigInt(from); o <= BigInt(to); o++) yield String(o);
  }
}
