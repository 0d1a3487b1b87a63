import { describe, expect, it } from "vitest";
import { createOffsetTracker } from "../../src/pipeline/offsetTracker.ts";

const T = "features";

describe("createOffsetTracker", () => {
  it("commits nothing until the oldest offset completes, then the contiguous prefix + 1", () => {
    const tracker = createOffsetTracker();
    for (const o of ["10", "11", "12", "13"]) expect(tracker.track(T, 0, o)).toBe(true);
    expect(tracker.inFlight()).toBe(4);

    expect(tracker.complete(T, 0, "12")).toBe(true);
    expect(tracker.complete(T, 0, "13")).toBe(true);
    expect(tracker.committable()).toEqual([]); // 10 and 11 are still in flight
    expect(tracker.inFlight()).toBe(2);

    expect(tracker.complete(T, 0, "11")).toBe(true);
    expect(tracker.committable()).toEqual([]);

    expect(tracker.complete(T, 0, "10")).toBe(true);
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "14" }]);
    expect(tracker.inFlight()).toBe(0);
  });

  it("advances step by step with out-of-order completion across batches", () => {
    const tracker = createOffsetTracker();
    // Batch A took 1,2,3; batch B took 4,5; batch B finishes first.
    for (const o of ["1", "2", "3", "4", "5"]) tracker.track(T, 0, o);
    tracker.complete(T, 0, "4");
    tracker.complete(T, 0, "5");
    tracker.complete(T, 0, "1");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "2" }]);
    tracker.complete(T, 0, "3");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "2" }]);
    tracker.complete(T, 0, "2");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "6" }]);
  });

  it("never assumes offsets are contiguous (compaction, transaction markers)", () => {
    const tracker = createOffsetTracker();
    for (const o of ["100", "103", "110", "250"]) tracker.track(T, 0, o);
    tracker.complete(T, 0, "100");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "101" }]);
    tracker.complete(T, 0, "110");
    tracker.complete(T, 0, "103");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "111" }]);
    expect(tracker.complete(T, 0, "101")).toBe(false); // a gap, never fetched
    tracker.complete(T, 0, "250");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "251" }]);
  });

  it("compares offsets as int64, beyond Number's precision", () => {
    const tracker = createOffsetTracker();
    const base = 2n ** 62n;
    const o = (n: bigint) => (base + n).toString();
    tracker.track(T, 0, o(1n));
    tracker.track(T, 0, o(2n));
    tracker.track(T, 0, o(3n));
    expect(tracker.track(T, 0, o(2n))).toBe(false); // not above what was seen: Number would round these together
    tracker.complete(T, 0, o(2n));
    tracker.complete(T, 0, o(1n));
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: o(3n) }]);
    expect(tracker.track(T, 0, "9223372036854775807")).toBe(true);
    expect(() => tracker.track(T, 0, "9223372036854775808")).toThrow(RangeError);
  });

  it("compares as numbers, not strings ('9' < '10')", () => {
    const tracker = createOffsetTracker();
    tracker.track(T, 0, "9");
    expect(tracker.track(T, 0, "10")).toBe(true);
    tracker.complete(T, 0, "10");
    tracker.complete(T, 0, "9");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "11" }]);
  });

  it("keeps partitions and topics independent", () => {
    const tracker = createOffsetTracker();
    tracker.track(T, 0, "5");
    tracker.track(T, 1, "5");
    tracker.track("other", 0, "7");
    tracker.track(T, 0, "6");
    tracker.complete(T, 1, "5");
    tracker.complete("other", 0, "7");
    expect(tracker.committable()).toEqual([
      { topic: T, partition: 1, offset: "6" },
      { topic: "other", partition: 0, offset: "8" },
    ]);
    expect(tracker.inFlightFor(T, 0)).toBe(2);
    expect(tracker.inFlightFor(T, 1)).toBe(0);
    expect(tracker.inFlightFor("nope", 3)).toBe(0);
    expect(tracker.inFlight()).toBe(2);
  });

  it("offers a partition again only once its commit point moves past what was committed", () => {
    const tracker = createOffsetTracker();
    for (const o of ["1", "2", "3"]) tracker.track(T, 0, o);
    tracker.complete(T, 0, "1");
    const first = tracker.committable();
    expect(first).toEqual([{ topic: T, partition: 0, offset: "2" }]);
    tracker.markCommitted(first);
    expect(tracker.committable()).toEqual([]);
    tracker.complete(T, 0, "3");
    expect(tracker.committable()).toEqual([]);
    tracker.complete(T, 0, "2");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "4" }]);
    // An older commit acknowledged late does not move the mark backwards.
    tracker.markCommitted([{ topic: T, partition: 0, offset: "4" }]);
    tracker.markCommitted([{ topic: T, partition: 0, offset: "2" }]);
    expect(tracker.committable()).toEqual([]);
  });

  it("returns false for unknown, repeated or malformed completions and changes nothing", () => {
    const tracker = createOffsetTracker();
    tracker.track(T, 0, "1");
    expect(tracker.complete(T, 0, "2")).toBe(false);
    expect(tracker.complete(T, 5, "1")).toBe(false);
    expect(tracker.complete("nope", 0, "1")).toBe(false);
    expect(tracker.complete(T, 0, "abc")).toBe(false);
    expect(tracker.complete(T, 0, "-1")).toBe(false);
    expect(tracker.inFlight()).toBe(1);
    expect(tracker.complete(T, 0, "1")).toBe(true);
    expect(tracker.complete(T, 0, "1")).toBe(false);
    expect(tracker.inFlight()).toBe(0);
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "2" }]);
  });

  it("refuses to re-track an offset at or below what it has seen (a replay after seek)", () => {
    const tracker = createOffsetTracker();
    tracker.track(T, 0, "5");
    tracker.complete(T, 0, "5");
    expect(tracker.track(T, 0, "5")).toBe(false);
    expect(tracker.track(T, 0, "3")).toBe(false);
    expect(tracker.inFlight()).toBe(0);
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "6" }]);
    expect(() => tracker.track(T, 0, "1.5")).toThrow(RangeError);
    expect(() => tracker.track(T, 0, "")).toThrow(RangeError);
  });

  it("forgets a revoked partition entirely", () => {
    const tracker = createOffsetTracker();
    for (const o of ["1", "2", "3"]) tracker.track(T, 0, o);
    tracker.track(T, 1, "1");
    tracker.complete(T, 0, "1");
    expect(tracker.revoke(T, 0)).toBe(2);
    expect(tracker.inFlight()).toBe(1);
    expect(tracker.inFlightFor(T, 0)).toBe(0);
    expect(tracker.committable()).toEqual([]);
    // Late outcomes of the lost partition change nothing, and commits for it are ignored.
    expect(tracker.complete(T, 0, "2")).toBe(false);
    tracker.markCommitted([{ topic: T, partition: 0, offset: "3" }]);
    expect(tracker.committable()).toEqual([]);
    // Re-assigned later: starts fresh, the old high-water mark is gone.
    expect(tracker.track(T, 0, "2")).toBe(true);
    tracker.complete(T, 0, "2");
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "3" }]);
    expect(tracker.revoke("nope", 9)).toBe(0);
  });

  it("stays correct over a long run with random completion order", () => {
    const tracker = createOffsetTracker();
    let offset = 0n;
    const pending: bigint[] = [];
    let committed = 0n;
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 50; i++) {
        offset += 1n + BigInt(Math.floor(Math.random() * 3)); // gaps
        tracker.track(T, 0, offset.toString());
        pending.push(offset);
      }
      // Complete a random 60% of pending, in random order.
      pending.sort(() => Math.random() - 0.5);
      const done = pending.splice(0, Math.floor(pending.length * 0.6));
      for (const o of done) expect(tracker.complete(T, 0, o.toString())).toBe(true);
      const min = pending.reduce<bigint | undefined>((m, o) => (m === undefined || o < m ? o : m), undefined);
      const entries = tracker.committable();
      for (const e of entries) {
        const value = BigInt(e.offset);
        expect(value).toBeGreaterThan(committed);
        // Never past the oldest still-pending offset.
        if (min !== undefined) expect(value).toBeLessThanOrEqual(min);
        committed = value;
      }
      tracker.markCommitted(entries);
      expect(tracker.inFlight()).toBe(pending.length);
    }
    for (const o of pending) tracker.complete(T, 0, o.toString());
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: (offset + 1n).toString() }]);
    expect(tracker.inFlight()).toBe(0);
  });

  it("keeps offsets exact across chunks and gaps beyond 2^53, given as strings or BigInts", () => {
    const tracker = createOffsetTracker();
    // 10,000 contiguous offsets (several chunks), then one 2^60 further on, then contiguous again.
    const far = 2n ** 60n;
    const offsets = [
      ...Array.from({ length: 10_000 }, (_, i) => BigInt(i)),
      far,
      ...Array.from({ length: 5 }, (_, i) => far + 1n + BigInt(i)),
    ];
    offsets.forEach((o, i) => {
      expect(tracker.track(T, 0, i % 2 === 0 ? o : o.toString())).toBe(true);
    });
    expect(tracker.track(T, 0, far - 1n)).toBe(false); // below what was seen
    // Everything but offset 9,999 and far + 2 completes, in reverse order.
    for (const o of [...offsets].reverse()) {
      if (o === 9_999n || o === far + 2n) continue;
      expect(tracker.complete(T, 0, o)).toBe(true);
    }
    expect(tracker.complete(T, 0, far + 7n)).toBe(false); // never tracked
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: "9999" }]);
    expect(tracker.complete(T, 0, "9999")).toBe(true);
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: String(far + 2n) }]);
    expect(tracker.complete(T, 0, 5n)).toBe(false); // released long ago
    expect(tracker.complete(T, 0, far + 2n)).toBe(true);
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: String(far + 6n) }]);
    expect(tracker.inFlight()).toBe(0);
    expect(() => tracker.track(T, 0, -1n)).toThrow(RangeError);
    expect(() => tracker.track(T, 0, 2n ** 63n)).toThrow(RangeError);
  });

  it("keeps offsets exact around a chunk's 32-bit reach", () => {
    const tracker = createOffsetTracker();
    const edge = 2n ** 32n;
    const offsets = [7n, 7n + edge - 1n, 7n + edge, 7n + edge + 1n, 7n + 2n * edge];
    for (const o of offsets) expect(tracker.track(T, 0, o)).toBe(true);
    for (const o of [...offsets].reverse().slice(0, 4)) expect(tracker.complete(T, 0, o)).toBe(true);
    expect(tracker.complete(T, 0, 7n + edge - 2n)).toBe(false); // never tracked
    expect(tracker.committable()).toEqual([]);
    expect(tracker.complete(T, 0, 7n)).toBe(true);
    expect(tracker.committable()).toEqual([{ topic: T, partition: 0, offset: String(7n + 2n * edge + 1n) }]);
  });

  it("completes a range as completing each of its tracked offsets would, gaps and chunk ends included", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let round = 0; round < 30; round++) {
      const one = createOffsetTracker();
      const bulk = createOffsetTracker();
      const tracked: bigint[] = [];
      let offset = BigInt(Math.floor(random() * 100));
      for (let i = 0; i < 9_000; i++) {
        // Mostly consecutive, sometimes a gap, once in a while one past a chunk's 32-bit reach.
        offset += random() < 0.9 ? 1n : random() < 0.98 ? BigInt(2 + Math.floor(random() * 50)) : 2n ** 33n;
        tracked.push(offset);
        one.track(T, 0, offset);
        bulk.track(T, 0, offset);
      }
      const last = tracked[tracked.length - 1] as bigint;
      for (let r = 0; r < 40; r++) {
        const a = tracked[Math.floor(random() * tracked.length)] as bigint;
        const from = a - BigInt(Math.floor(random() * 3));
        const to = random() < 0.1 ? last + 5n : from + BigInt(Math.floor(random() * 600));
        const expected = tracked.filter((o) => o >= from && o <= to && one.complete(T, 0, o)).length;
        expect(bulk.completeRange(T, 0, from, to)).toBe(expected);
        expect(bulk.inFlight()).toBe(one.inFlight());
        expect(bulk.committable()).toEqual(one.committable());
      }
    }
    expect(createOffsetTracker().completeRange(T, 0, 1n, 5n)).toBe(0);
  });
});
