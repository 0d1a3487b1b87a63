import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  batchSizeBytes,
  createBatcher,
  createBatchPolicy,
  rowSizeBytes,
  serializeBatch,
  serializeRow,
} from "../../src/batcher/index.ts";
import type { FeatureEvent, FeatureRow, SealedBatch } from "../../src/types.ts";

function row(storeId: string, value = 0.5, count = 13): FeatureRow {
  return { store_id: storeId, features: Array.from({ length: count }, () => value) };
}

let nextOffset = 0;
function event(storeId: string, partition = 0): FeatureEvent {
  const r = row(storeId);
  return {
    source: { topic: "features", partition, offset: String(nextOffset++), timestampMs: 1_700_000_000_000 },
    row: r,
    sizeBytes: rowSizeBytes(r),
    json: serializeRow(r),
  };
}

/** A manual clock and timer queue: time moves only when the test says so. */
function manualTime(start = 1_000) {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, { at: number; callback: () => void }>();
  return {
    now: () => now,
    setTimer: (callback: () => void, ms: number) => {
      const id = nextId++;
      timers.set(id, { at: now + ms, callback });
      return id;
    },
    clearTimer: (handle: unknown) => {
      timers.delete(handle as number);
    },
    pending: () => timers.size,
    advance(ms: number) {
      now += ms;
      for (const [id, timer] of [...timers]) {
        if (timer.at <= now && timers.has(id)) {
          timers.delete(id);
          timer.callback();
        }
      }
    },
  };
}

function setup(policy: { maxRecords: number; maxBytes: number; maxWaitMs: number }) {
  const time = manualTime();
  const sealed: SealedBatch[] = [];
  let id = 0;
  const batcher = createBatcher({
    policy: createBatchPolicy(policy),
    onSeal: (batch) => sealed.push(batch),
    now: time.now,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    newBatchId: () => `b-test-${++id}`,
  });
  return { batcher, sealed, time };
}

const ROW_BYTES = rowSizeBytes(row("CA_1"));

describe("createBatchPolicy", () => {
  it.each([
    ["maxRecords", { maxRecords: 0, maxBytes: 10, maxWaitMs: 10 }],
    ["maxRecords", { maxRecords: 1.5, maxBytes: 10, maxWaitMs: 10 }],
    ["maxBytes", { maxRecords: 1, maxBytes: -1, maxWaitMs: 10 }],
    ["maxBytes", { maxRecords: 1, maxBytes: Number.NaN, maxWaitMs: 10 }],
    ["maxWaitMs", { maxRecords: 1, maxBytes: 10, maxWaitMs: 0 }],
    ["maxWaitMs", { maxRecords: 1, maxBytes: 10, maxWaitMs: Number.POSITIVE_INFINITY }],
  ])("rejects a bad %s with a RangeError naming it", (name, options) => {
    expect(() => createBatchPolicy(options)).toThrow(RangeError);
    expect(() => createBatchPolicy(options)).toThrow(name);
  });

  it("tells when the count or the byte trigger fires", () => {
    const policy = createBatchPolicy({ maxRecords: 3, maxBytes: 100, maxWaitMs: 1000 });
    expect(policy.check({ records: 2, bytes: 50 })).toBeUndefined();
    expect(policy.check({ records: 3, bytes: 50 })).toBe("count");
    expect(policy.check({ records: 2, bytes: 100 })).toBe("bytes");
    expect(policy.check({ records: 3, bytes: 200 })).toBe("count");
  });

  it("counts framing: brackets once, a comma between rows", () => {
    const policy = createBatchPolicy({ maxRecords: 10, maxBytes: 100, maxWaitMs: 1000 });
    const one = policy.grow({ records: 0, bytes: 2 }, 30);
    expect(one).toEqual({ records: 1, bytes: 32 });
    expect(policy.grow(one, 30)).toEqual({ records: 2, bytes: 63 });
    expect(policy.fits(one, 67)).toBe(true); // 32 + 1 + 67 = 100
    expect(policy.fits(one, 68)).toBe(false);
    expect(policy.fits({ records: 0, bytes: 2 }, 10_000)).toBe(true); // an empty batch takes anything
  });
});

describe("serializeBatch and rowSizeBytes", () => {
  it("writes the guide's JSON array, with the size the batcher counted", () => {
    const rows = [
      row("CA_1", 0.5),
      row("TX_1", 0.1),
      { ...row("Zürich_1", -1.25e-7), extra: true } as FeatureRow,
    ];
    const file = serializeBatch(rows);
    const parsed = JSON.parse(file.toString("utf8"));
    expect(parsed).toEqual([
      { store_id: "CA_1", features: rows[0]?.features },
      { store_id: "TX_1", features: rows[1]?.features },
      { store_id: "Zürich_1", features: rows[2]?.features },
    ]);
    const rowBytes = rows.reduce((sum, r) => sum + rowSizeBytes(r), 0);
    expect(file.length).toBe(batchSizeBytes(rows.length, rowBytes));
    expect(serializeBatch([]).toString()).toBe("[]");
    expect(batchSizeBytes(0, 0)).toBe(2);
  });

  it("measures UTF-8 bytes, not characters", () => {
    expect(rowSizeBytes(row("é", 0, 1))).toBe(JSON.stringify({ store_id: "é", features: [0] }).length + 1);
  });
});

describe("createBatcher", () => {
  it("seals on max records with trigger count", () => {
    const { batcher, sealed, time } = setup({ maxRecords: 3, maxBytes: 1_000_000, maxWaitMs: 5_000 });
    batcher.add(event("CA_1"));
    batcher.add(event("TX_1"));
    expect(sealed).toHaveLength(0);
    expect(batcher.pendingCount()).toBe(2);
    time.advance(10);
    batcher.add(event("CA_1"));
    expect(sealed).toHaveLength(1);
    const batch = sealed[0] as SealedBatch;
    expect(batch.trigger).toBe("count");
    expect(batch.members.map((m) => m.storeId)).toEqual(["CA_1", "TX_1", "CA_1"]);
    expect(batch.rows.map((r) => r.store_id)).toEqual(["CA_1", "TX_1", "CA_1"]);
    expect(batch.members[1]?.source).toEqual(expect.objectContaining({ topic: "features", partition: 0 }));
    expect(batch.batchId).toBe("b-test-1");
    expect(batch.openedAtMs).toBe(1_000);
    expect(batch.sealedAtMs).toBe(1_010);
    expect(batch.sizeBytes).toBe(serializeBatch(batch.rows).length);
    expect(batcher.pendingCount()).toBe(0);
    expect(time.pending()).toBe(0); // the sealed batch's timer is gone
  });

  it("seals before an event that would overflow maxBytes, with trigger bytes", () => {
    // Room for exactly two rows: [row,row]
    const maxBytes = batchSizeBytes(2, 2 * ROW_BYTES);
    const { batcher, sealed } = setup({ maxRecords: 100, maxBytes: maxBytes + 5, maxWaitMs: 5_000 });
    batcher.add(event("CA_1"));
    batcher.add(event("CA_2"));
    expect(sealed).toHaveLength(0);
    batcher.add(event("CA_3"));
    expect(sealed).toHaveLength(1);
    expect(sealed[0]?.trigger).toBe("bytes");
    expect(sealed[0]?.members.map((m) => m.storeId)).toEqual(["CA_1", "CA_2"]);
    expect(sealed[0]?.sizeBytes).toBe(maxBytes);
    expect(sealed[0]?.sizeBytes).toBeLessThanOrEqual(maxBytes + 5);
    expect(batcher.pendingCount()).toBe(1); // C opened the next batch
  });

  it("seals as soon as the batch reaches maxBytes exactly", () => {
    const maxBytes = batchSizeBytes(2, 2 * ROW_BYTES);
    const { batcher, sealed } = setup({ maxRecords: 100, maxBytes, maxWaitMs: 5_000 });
    batcher.add(event("TX_1"));
    batcher.add(event("TX_2"));
    expect(sealed.map((b) => [b.trigger, b.members.length, b.sizeBytes])).toEqual([["bytes", 2, maxBytes]]);
  });

  it("puts an event larger than maxBytes in a batch of its own", () => {
    const { batcher, sealed } = setup({ maxRecords: 100, maxBytes: ROW_BYTES + 10, maxWaitMs: 5_000 });
    batcher.add(event("CA_1"));
    const big = row("big", 0.123456789, 13);
    const bigEvent: FeatureEvent = { ...event("big"), row: big, sizeBytes: 10 * ROW_BYTES };
    batcher.add(bigEvent);
    expect(sealed.map((b) => [b.trigger, b.members.map((m) => m.storeId)])).toEqual([
      ["bytes", ["CA_1"]],
      ["bytes", ["big"]],
    ]);
    expect(batcher.pendingCount()).toBe(0);
  });

  it("seals on time, measured from the batch's first event, with one timer per batch", () => {
    const { batcher, sealed, time } = setup({ maxRecords: 100, maxBytes: 1_000_000, maxWaitMs: 1_000 });
    batcher.add(event("A"));
    expect(time.pending()).toBe(1);
    time.advance(600);
    batcher.add(event("B")); // must not restart the clock
    batcher.add(event("C"));
    expect(time.pending()).toBe(1);
    time.advance(399);
    expect(sealed).toHaveLength(0);
    time.advance(1);
    expect(sealed).toHaveLength(1);
    expect(sealed[0]?.trigger).toBe("time");
    expect(sealed[0]?.members).toHaveLength(3);
    expect(sealed[0]?.openedAtMs).toBe(1_000);
    expect(sealed[0]?.sealedAtMs).toBe(2_000);
    expect(time.pending()).toBe(0);

    // The next batch gets its own clock, armed by its own first event.
    time.advance(5_000);
    expect(sealed).toHaveLength(1);
    batcher.add(event("D"));
    time.advance(999);
    expect(sealed).toHaveLength(1);
    time.advance(1);
    expect(sealed.map((b) => b.trigger)).toEqual(["time", "time"]);
  });

  it("works with real timers through vitest's fake clock", () => {
    vi.useFakeTimers({ now: 50_000 });
    try {
      const sealed: SealedBatch[] = [];
      const batcher = createBatcher({
        policy: createBatchPolicy({ maxRecords: 10, maxBytes: 100_000, maxWaitMs: 250 }),
        onSeal: (b) => sealed.push(b),
      });
      batcher.add(event("A"));
      vi.advanceTimersByTime(100);
      batcher.add(event("B"));
      vi.advanceTimersByTime(149);
      expect(sealed).toHaveLength(0);
      vi.advanceTimersByTime(1);
      expect(sealed).toHaveLength(1);
      expect(sealed[0]?.trigger).toBe("time");
      expect(sealed[0]?.openedAtMs).toBe(50_000);
      expect(sealed[0]?.sealedAtMs).toBe(50_250);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("flush seals the open batch (default trigger shutdown), calls onSeal and returns it", () => {
    const { batcher, sealed, time } = setup({ maxRecords: 100, maxBytes: 1_000_000, maxWaitMs: 1_000 });
    expect(batcher.flush()).toBeUndefined();
    batcher.add(event("A"));
    const flushed = batcher.flush();
    expect(flushed?.trigger).toBe("shutdown");
    expect(sealed).toEqual([flushed]);
    expect(time.pending()).toBe(0);
    batcher.add(event("B"));
    expect(batcher.flush("time")?.trigger).toBe("time");
    expect(batcher.flush()).toBeUndefined();
  });

  it("close stops the timer and refuses new events; flush still seals what is open", () => {
    const { batcher, sealed, time } = setup({ maxRecords: 100, maxBytes: 1_000_000, maxWaitMs: 1_000 });
    batcher.add(event("A"));
    batcher.close();
    expect(time.pending()).toBe(0);
    time.advance(5_000);
    expect(sealed).toHaveLength(0);
    expect(() => batcher.add(event("B"))).toThrow("closed");
    expect(batcher.flush()?.members.map((m) => m.storeId)).toEqual(["A"]);
  });

  it("gives every batch a unique, time-sortable default id and file name", () => {
    let now = 1_700_000_000_000;
    const sealed: SealedBatch[] = [];
    const batcher = createBatcher({
      policy: createBatchPolicy({ maxRecords: 1, maxBytes: 100_000, maxWaitMs: 1_000 }),
      onSeal: (b) => sealed.push(b),
      now: () => now++,
    });
    for (let i = 0; i < 200; i++) batcher.add(event(`S${i}`));
    const ids = sealed.map((b) => b.batchId);
    expect(new Set(ids).size).toBe(200);
    expect([...ids].sort()).toEqual(ids);
    for (const b of sealed) {
      expect(b.batchId).toMatch(/^b-[0-9a-z]{9}-[0-9a-f]{12}$/);
    }
  });

  it("keeps the batch open when newBatchId returns an unusable id", () => {
    const time = manualTime();
    const batcher = createBatcher({
      policy: createBatchPolicy({ maxRecords: 2, maxBytes: 100_000, maxWaitMs: 1_000 }),
      onSeal: () => {},
      newBatchId: () => "../escape",
      setTimer: time.setTimer,
      clearTimer: time.clearTimer,
    });
    batcher.add(event("A"));
    expect(() => batcher.add(event("B"))).toThrow(TypeError);
    expect(batcher.pendingCount()).toBe(2);
  });

  it("lets onSeal add events re-entrantly without corrupting the next batch", () => {
    const time = manualTime();
    const sealed: SealedBatch[] = [];
    let reentered = false;
    const batcher = createBatcher({
      policy: createBatchPolicy({ maxRecords: 2, maxBytes: 100_000, maxWaitMs: 1_000 }),
      onSeal: (b) => {
        sealed.push(b);
        if (!reentered) {
          reentered = true;
          batcher.add(event("late"));
        }
      },
      setTimer: time.setTimer,
      clearTimer: time.clearTimer,
    });
    batcher.add(event("A"));
    batcher.add(event("B"));
    expect(sealed[0]?.members.map((m) => m.storeId)).toEqual(["A", "B"]);
    expect(batcher.pendingCount()).toBe(1);
    expect(time.pending()).toBe(1);
  });

  it("rejects an event without a usable sizeBytes and bad options", () => {
    const { batcher } = setup({ maxRecords: 2, maxBytes: 100_000, maxWaitMs: 1_000 });
    expect(() => batcher.add({ ...event("A"), sizeBytes: 0 })).toThrow(RangeError);
    expect(() => batcher.add({ ...event("A"), sizeBytes: Number.NaN })).toThrow("sizeBytes");
    expect(() => createBatcher({ policy: undefined as never, onSeal: () => {} })).toThrow(TypeError);
    expect(() =>
      createBatcher({
        policy: createBatchPolicy({ maxRecords: 1, maxBytes: 1, maxWaitMs: 1 }),
        onSeal: 1 as never,
      }),
    ).toThrow("onSeal");
  });
});

describe("batches across partitions", () => {
  let time: ReturnType<typeof manualTime>;
  beforeEach(() => {
    time = manualTime();
  });
  afterEach(() => {
    expect(time.pending()).toBeLessThanOrEqual(1);
  });

  it("keeps members aligned with rows across a mix of partitions", () => {
    const sealed: SealedBatch[] = [];
    const batcher = createBatcher({
      policy: createBatchPolicy({ maxRecords: 4, maxBytes: 100_000, maxWaitMs: 1_000 }),
      onSeal: (b) => sealed.push(b),
      setTimer: time.setTimer,
      clearTimer: time.clearTimer,
    });
    const events = [event("A", 0), event("B", 1), event("A", 1), event("C", 0)];
    for (const e of events) batcher.add(e);
    const batch = sealed[0] as SealedBatch;
    expect(batch.members.map((m) => m.source)).toEqual(events.map((e) => e.source));
    batch.rows.forEach((r, i) => {
      expect(r).toBe(events[i]?.row);
      expect(batch.members[i]?.storeId).toBe(r.store_id);
    });
  });
});
