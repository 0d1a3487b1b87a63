/**
 * Which offsets may be committed (docs/architecture.md, invariant 1): per partition, the contiguous prefix of fetched
 * offsets whose outcome Kafka has acknowledged. Batches finish out of order, so completion arrives out of
 * order; the commit point only moves when the oldest in-flight offset completes.
 *
 * Offsets are compared as BigInt and never assumed contiguous: compaction and transaction markers leave
 * gaps, so "next" means "next tracked", not "+1". Memory is proportional to the tracked window: the
 * completed prefix is dropped as the commit point passes it.
 */

import type { TopicPartitionOffset } from "../types.ts";

export interface OffsetTracker {
  /**
   * Registers a fetched offset, in fetch order. Returns false, tracking nothing, when the offset is not
   * above every offset already seen on the partition: a re-delivery after a seek, which must not move
   * the commit point backwards.
   */
  track(topic: string, partition: number, offset: string): boolean;
  /**
   * Marks a tracked offset's outcome as acknowledged. Returns false, changing nothing, for an offset that
   * is unknown, already complete, malformed, or on a revoked partition.
   */
  complete(topic: string, partition: number, offset: string): boolean;
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

interface Entry {
  readonly offset: bigint;
  done: boolean;
}

interface PartitionState {
  /** Tracked offsets in fetch (= ascending) order; entries before `head` are released. */
  entries: Entry[];
  head: number;
  /** Not-yet-released entries by offset, for O(1) complete(). */
  readonly byOffset: Map<bigint, Entry>;
  /** Highest offset ever tracked here. */
  highest: bigint;
  /** Highest O such that every tracked offset <= O is complete; undefined until the first release. */
  released: bigint | undefined;
  /** Last commit offset recorded by markCommitted. */
  committed: bigint | undefined;
  inFlight: number;
}

/** Below this many released entries the array is not worth copying. */
const COMPACT_THRESHOLD = 1024;
const INT64_MAX = (1n << 63n) - 1n;

function parseOffset(offset: string): bigint | undefined {
  if (typeof offset !== "string" || !/^\d{1,19}$/.test(offset)) return undefined;
  const value = BigInt(offset);
  return value <= INT64_MAX ? value : undefined;
}

export function createOffsetTracker(): OffsetTracker {
  // topic -> partition -> state. Nested maps: no key encoding to get wrong.
  const topics = new Map<string, Map<number, PartitionState>>();
  let totalInFlight = 0;

  function stateOf(topic: string, partition: number): PartitionState | undefined {
    return topics.get(topic)?.get(partition);
  }

  function release(state: PartitionState): void {
    let entry = state.entries[state.head];
    while (entry?.done === true) {
      state.released = entry.offset;
      state.byOffset.delete(entry.offset);
      state.head += 1;
      entry = state.entries[state.head];
    }
    if (state.head === state.entries.length) {
      state.entries = [];
      state.head = 0;
    } else if (state.head >= COMPACT_THRESHOLD && state.head * 2 >= state.entries.length) {
      state.entries = state.entries.slice(state.head);
      state.head = 0;
    }
  }

  return {
    track(topic: string, partition: number, offset: string): boolean {
      const value = parseOffset(offset);
      if (value === undefined) {
        throw new RangeError(
          `offset must be a non-negative int64 decimal string, got ${JSON.stringify(offset)}`,
        );
      }
      let partitions = topics.get(topic);
      if (partitions === undefined) {
        partitions = new Map();
        topics.set(topic, partitions);
      }
      let state = partitions.get(partition);
      if (state === undefined) {
        state = {
          entries: [],
          head: 0,
          byOffset: new Map(),
          highest: -1n,
          released: undefined,
          committed: undefined,
          inFlight: 0,
        };
        partitions.set(partition, state);
      } else if (value <= state.highest) {
        return false;
      }
      const entry: Entry = { offset: value, done: false };
      state.entries.push(entry);
      state.byOffset.set(value, entry);
      state.highest = value;
      state.inFlight += 1;
      totalInFlight += 1;
      return true;
    },

    complete(topic: string, partition: number, offset: string): boolean {
      const state = stateOf(topic, partition);
      const value = state === undefined ? undefined : parseOffset(offset);
      if (state === undefined || value === undefined) return false;
      const entry = state.byOffset.get(value);
      if (entry === undefined || entry.done) return false;
      entry.done = true;
      state.inFlight -= 1;
      totalInFlight -= 1;
      release(state);
      return true;
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
