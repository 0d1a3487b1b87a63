/**
 * Batcher: add() of validated events, sealing by count or bytes as the policy says (real timers: one per
 * batch, armed on its first event and cleared on seal).
 *   node bench/batcher.ts
 */
import { createBatcher, createBatchPolicy, rowSizeBytes, serializeRow } from "../src/batcher/index.ts";
import type { FeatureEvent } from "../src/types.ts";
import {
  banner,
  cpuRate,
  num,
  printTable,
  prng,
  rate,
  realisticFeatures,
  spread,
  storeId,
  timedFigures,
  timeRounds,
  writeFigures,
} from "./lib.ts";

const EVENTS = 200_000;

banner("batcher add + seal (src/batcher/)");

const random = prng(11);
const events: FeatureEvent[] = Array.from({ length: EVENTS }, (_, i) => {
  const row = { store_id: storeId(i), features: realisticFeatures(random) };
  return {
    source: {
      topic: "store-features",
      partition: i % 6,
      offset: String(i),
      timestampMs: 1_700_000_000_000 + i,
    },
    row,
    sizeBytes: rowSizeBytes(row),
    json: serializeRow(row),
  };
});

const cases = [
  { name: "count trigger, 1,000/batch (default)", maxRecords: 1_000, maxBytes: 4 * 1024 * 1024 },
  { name: "count trigger, 10,000/batch", maxRecords: 10_000, maxBytes: 4 * 1024 * 1024 },
  { name: "bytes trigger, 64 KiB files", maxRecords: 1_000_000, maxBytes: 64 * 1024 },
];

const figures: Record<string, unknown> = {};
const rows = cases.map((c) => {
  let batches = 0;
  let members = 0;
  const batcher = createBatcher({
    policy: createBatchPolicy({ maxRecords: c.maxRecords, maxBytes: c.maxBytes, maxWaitMs: 60_000 }),
    onSeal: (batch) => {
      batches++;
      members += batch.members.length;
    },
  });
  const t = timeRounds(
    EVENTS,
    () => {
      for (const e of events) batcher.add(e);
      batcher.flush("shutdown");
    },
    { rounds: 15 },
  );
  batcher.close();
  figures[c.name] = { ...timedFigures(t), eventsPerBatch: members / batches };
  return [c.name, rate(t), spread(t), cpuRate(t), `${num(t.nsPerOp)} ns`, num(members / batches)];
});
printTable(
  `${num(EVENTS)} events per round, flushed at the end of each round (median of rounds)`,
  ["policy", "events/s", "range", "per CPU-s", "per event", "events/batch"],
  rows,
);
writeFigures("batcher", { events: EVENTS, cases: figures });
