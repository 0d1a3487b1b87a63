/**
 * serializeBatch: a sealed batch's rows to the JSON file that is uploaded.
 *   node bench/serialize.ts
 */
import { rowSizeBytes, serializeBatch } from "../src/batcher/index.ts";
import type { FeatureRow } from "../src/types.ts";
import {
  banner,
  MiB,
  num,
  printTable,
  prng,
  realisticFeatures,
  spread,
  storeId,
  timedFigures,
  timeRounds,
  writeFigures,
} from "./lib.ts";

banner("serializeBatch (src/batcher/policy.ts)");

const random = prng(13);
const sizes = [1_000, 10_000, 37_000];
const figures: Record<string, unknown> = {};
const rows = sizes.map((size) => {
  const batch: FeatureRow[] = Array.from({ length: size }, (_, i) => ({
    store_id: storeId(i),
    features: realisticFeatures(random),
  }));
  const bytes = serializeBatch(batch).length;
  const expected = 2 + batch.reduce((sum, r) => sum + rowSizeBytes(r), 0) + size - 1;
  if (bytes !== expected)
    throw new Error(`serializeBatch wrote ${bytes} bytes, the policy counted ${expected}`);
  const repeat = Math.max(1, Math.round(100_000 / size));
  let sink = 0;
  const t = timeRounds(repeat, () => {
    for (let i = 0; i < repeat; i++) sink += serializeBatch(batch).length;
  });
  if (sink === 0) throw new Error("nothing serialised");
  const mbPerSec = (t.opsPerSec * bytes) / MiB;
  figures[String(size)] = {
    bytes,
    rowsPerSec: Math.round(t.opsPerSec * size),
    mibPerSec: mbPerSec,
    ...timedFigures(t),
  };
  return [
    num(size),
    `${num(bytes / 1024)} KiB`,
    `${num(mbPerSec, 1)} MiB/s`,
    `${num((t.cpuOpsPerSec * bytes) / MiB, 1)} MiB/s`,
    `${num(t.opsPerSec * size)}/s`,
    `${num(t.nsPerOp / 1e6, 2)} ms`,
    spread(t),
  ];
});
printTable(
  "one batch file per call (37,000 rows is about the 4 MiB FC_BATCH_MAX_BYTES default)",
  ["rows", "file size", "throughput", "per CPU-s", "rows/s", "per batch", "batches/s range"],
  rows,
);
writeFigures("serialize", { batches: figures });
