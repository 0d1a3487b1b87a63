/**
 * Which offsets may be committed (docs/architecture.md, invariant 1): per partition, the contiguous prefix of fetched
 * offsets whose outcome Kafka has acknowledged. Batches finish out of order, so completion arrives out of
 * order; the commit point only moves when the oldest in-flight offset completes.
 *
 * Offsets are compared as BigInt and never assumed contiguous: compaction and transaction markers leave
 * gaps, so "next" means "next tracked", not "+1". Memory is proportional to the tracked window: the
 * completed prefix is dropped as the commit point passes it. An offset may be given as kafkajs's string or
 * as a BigInt already parsed, so that a caller parses it once.
 */

import type { TopicPartitionOffset } from "../types.ts";

export interface OffsetTracker {
  /**
   * Registers a fetched offset, in fetch order. Returns false, tracking nothing, when the offset is not
   * above every offset already seen on the partition: a re-delivery after a seek, which must not move
   * the commit point backwards.
   */
  track(topic: string, partition: number, offset: string | bigint): boolean;
  /**
   * Marks a tracked offset's outcome as acknowledged. Returns false, changing nothing, for an offset that
   * is unknown, already complete, malformed, or on a revoked partition.
   */
  complete(topic: string, partition: number, offset: string | bigint): boolean;
  /**
   * Completes every tracked offset from `from` to `to` (both included; offsets in between that were never
   * tracked are skipped, as gaps are). A batch's offsets as ranges, in one walk rather than one search each.
   * Returns how many were completed.
   */
  completeRange(topic: string, partition: number, from: bigint, to: bigint): number;
  /** For each partition whose commit point moved since markCommitted: the offset to commit (last complete + 1). */
  committable(): TopicPartitionOffset[];
  /** Records what the coordinator committed, so committable() stops offering it. */
  markCommitted(entries: Iterable<TopicPartitionOffset>): void;
  /** Forgets a partition lost in a rebalance. Returns how many of its offsets were still in flight. */
  revoke(topic: string, partition: number): number;
  /** Offsets tracked and not complete, across all partitions. */
  inFlight(): number;
  inFlightFor(topic: string, partition: number): number;
}

/**
 * Offsets are kept in chunks of typed arrays, about 5 bytes each (docs/architecture.md, invariant 8 holds the
 * rest of what an event in flight costs): a chunk has a BigInt base (its first offset) and each offset's
 * distance from it as a 32-bit integer; an offset 2^32 or more past the base starts a new chunk. Chunks are
 * dropped whole as the commit point passes them.
 */
const CHUNK_ENTRIES = 4096;

interface Chunk {
  readonly base: bigint;
  readonly deltas: Uint32Array;
  readonly done: Uint8Array;
  length: number;
  /** Entries before this are complete and released. */
  head: number;
}

interface PartitionState {
  /** Tracked offsets in fetch (= ascending) order; the first chunk holds the oldest unreleased one. */
  readonly chunks: Chunk[];
  /** Highest offset ever tracked here. */
  highest: bigint;
  /** Highest O such that every tracked offset <= O is complete; undefined until the first release. */
  released: bigint | undefined;
  /** Last commit offset recorded by markCommitted. */
  committed: bigint | undefined;
  inFlight: number;
}

const INT64_MAX = (1n << 63n) - 1n;
const MAX_DELTA = 0xffff_ffffn;

/** An offset as kafkajs gives it (int64 decimal string), or undefined when it is not one. */
export function parseOffset(offset: string | bigint): bigint | undefined {
  if (typeof offset === "bigint") return offset >= 0n && offset <= INT64_MAX ? offset : undefined;
  if (typeof offset !== "string" || !/^\d{1,19}$/.test(offset)) return undefined;
  const value = BigInt(offset);
  return value <= INT64_MAX ? value : undefined;
}

function newChunk(base: bigint): Chunk {
  return {
    base,
    deltas: new Uint32Array(CHUNK_ENTRIES),
    done: new Uint8Array(CHUNK_ENTRIES),
    length: 0,
    head: 0,
  };
}

/** The index of the chunk that would hold `value`: the last one whose base is not above it, or -1. */
function chunkIndexFor(chunks: readonly Chunk[], value: bigint): number {
  let lo = 0;
  let hi = chunks.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((chunks[mid] as Chunk).base <= value) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

function chunkFor(chunks: readonly Chunk[], value: bigint): Chunk | undefined {
  return chunks[chunkIndexFor(chunks, value)];
}

/** The first index whose distance is at least `delta`. */
function lowerBound(chunk: Chunk, delta: number): number {
  let lo = 0;
  let hi = chunk.length;
  const deltas = chunk.deltas;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((deltas[mid] as number) < delta) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index of `delta` in the chunk's ascending deltas, or -1. */
function indexIn(chunk: Chunk, delta: number): number {
  let lo = 0;
  let hi = chunk.length - 1;
  const deltas = chunk.deltas;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = deltas[mid] as number;
    if (at === delta) return mid;
    if (at < delta) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

export function createOffsetTracker(): OffsetTracker {
  // topic -> partition -> state. Nested maps: no key encoding to get wrong.
  const topics = new Map<string, Map<number, PartitionState>>();
  let totalInFlight = 0;

  function stateOf(topic: string, partition: number): PartitionState | undefined {
    return topics.get(topic)?.get(partition);
  }

  function release(state: PartitionState): void {
    const chunks = state.chunks;
    let last: Chunk | undefined;
    let lastIndex = -1;
    for (;;) {
      const chunk = chunks[0];
      if (chunk === undefined) break;
      const done = chunk.done;
      let head = chunk.head;
      while (head < chunk.length && done[head] === 1) head++;
      if (head > chunk.head) {
        chunk.head = head;
        last = chunk;
        lastIndex = head - 1;
      }
      // A released chunk goes once it can take no more offsets: full, or another one started after it.
      if (head === chunk.length && (chunk.length === CHUNK_ENTRIES || chunks.length > 1)) chunks.shift();
      else break;
    }
    if (last !== undefined) state.released = last.base + BigInt(last.deltas[lastIndex] as number);
  }

  return {
    track(topic: string, partition: number, offset: string | bigint): boolean {
      const value = parseOffset(offset);
      if (value === undefined) {
        throw new RangeError(
          `offset must be a non-negative int64 decimal string, got ${JSON.stringify(String(offset))}`,
        );
      }
      let partitions = topics.get(topic);
      if (partitions === undefined) {
        partitions = new Map();
        topics.set(topic, partitions);
      }
      let state = partitions.get(partition);
      if (state === undefined) {
        state = { chunks: [], highest: -1n, released: undefined, committed: undefined, inFlight: 0 };
        partitions.set(partition, state);
      } else if (value <= state.highest) {
        return false;
      }
      let chunk = state.chunks[state.chunks.length - 1];
      if (chunk === undefined || chunk.length === CHUNK_ENTRIES || value - chunk.base > MAX_DELTA) {
        chunk = newChunk(value);
        state.chunks.push(chunk);
      }
      chunk.deltas[chunk.length] = Number(value - chunk.base);
      chunk.done[chunk.length] = 0;
      chunk.length += 1;
      state.highest = value;
      state.inFlight += 1;
      totalInFlight += 1;
      return true;
    },

    complete(topic: string, partition: number, offset: string | bigint): boolean {
      const state = stateOf(topic, partition);
      const value = state === undefined ? undefined : parseOffset(offset);
      if (state === undefined || value === undefined) return false;
      const chunk = chunkFor(state.chunks, value);
      if (chunk === undefined) return false;
      const index = indexIn(chunk, Number(value - chunk.base));
      if (index < chunk.head || chunk.done[index] === 1) return false;
      chunk.done[index] = 1;
      state.inFlight -= 1;
      totalInFlight -= 1;
      release(state);
      return true;
    },
    completeRange(topic: string, partition: number, from: bigint, to: bigint): number {
      const state = stateOf(topic, partition);
      if (state === undefined || to < from) return 0;
      const chunks = state.chunks;
      let count = 0;
      for (let c = Math.max(0, chunkIndexFor(chunks, from)); c < chunks.length; c++) {
        const chunk = chunks[c] as Chunk;
        if (chunk.base > to) break;
        const start = from > chunk.base ? from - chunk.base : 0n;
        if (start > MAX_DELTA) continue;
        const end = to - chunk.base;
        const last = end > MAX_DELTA ? Number.POSITIVE_INFINITY : Number(end);
        const { deltas, done } = chunk;
        for (let i = Math.max(chunk.head, lowerBound(chunk, Number(start))); i < chunk.length; i++) {
          if ((deltas[i] as number) > last) break;
          if (done[i] === 0) {
            done[i] = 1;
            count += 1;
          }
        }
      }
      if (count > 0) {
        state.inFlight -= count;
        totalInFlight -= count;
        release(state);
      }
      return count;
    },

    committable(): TopicPartitionOffset[] {
      const out: TopicPartitionOffset[] = [];
      for (const [topic, partitions] of topics) {
        for (const [partition, state] of partitions) {
          if (state.released === undefined) continue;
          const next = state.released + 1n;
          if (state.committed === undefined || next > state.committed) {
            out.push({ topic, partition, offset: next.toString() });
          }
        }
      }
      return out;
    },

    markCommitted(entries: Iterable<TopicPartitionOffset>): void {
      for (const { topic, partition, offset } of entries) {
        const state = stateOf(topic, partition);
        const value = parseOffset(offset);
        // A commit for a partition revoked in the meantime concerns the previous owner's state: ignore it.
        if (state === undefined || value === undefined) continue;
        if (state.committed === undefined || value > state.committed) state.committed = value;
      }
    },

    revoke(topic: string, partition: number): number {
      const partitions = topics.get(topic);
      const state = partitions?.get(partition);
      if (partitions === undefined || state === undefined) return 0;
      partitions.delete(partition);
      if (partitions.size === 0) topics.delete(topic);
      totalInFlight -= state.inFlight;
      return state.inFlight;
    },

    inFlight(): number {
      return totalInFlight;
    },

    inFlightFor(topic: string, partition: number): number {
      return stateOf(topic, partition)?.inFlight ?? 0;
    },
  };
}
