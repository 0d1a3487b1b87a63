/**
 * matchPredictions: predictions.csv rows back to the events of their batch (matcher built, every row added,
 * finish() called: the whole per-batch cost).
 *   node bench/matchPredictions.ts
 */
import { matchPredictions } from "../src/results/matchPredictions.ts";
import type { BatchMember, PredictionRow } from "../src/types.ts";
import {
  banner,
  cpuRate,
  num,
  printTable,
  prng,
  rate,
  shuffle,
  spread,
  storeId,
  timedFigures,
  timeRounds,
  writeFigures,
} from "./lib.ts";

banner("matchPredictions (src/results/matchPredictions.ts)");

const FILE = "b-0m3xk2a1q-5f3c9d2e8a71.json";
const random = prng(19);

interface Case {
  readonly name: string;
  readonly members: number;
  readonly stores: number;
  readonly order: "input" | "shuffled";
}

const cases: Case[] = [
  { name: "1,000 events, 50 stores, input order", members: 1_000, stores: 50, order: "input" },
  { name: "1,000 events, 50 stores, shuffled", members: 1_000, stores: 50, order: "shuffled" },
  { name: "37,000 events, 50 stores, shuffled", members: 37_000, stores: 50, order: "shuffled" },
  { name: "200,000 events, 3,000 stores, shuffled", members: 200_000, stores: 3_000, order: "shuffled" },
];

const figures: Record<string, unknown> = {};
const rows = cases.map((c) => {
  const members: BatchMember[] = Array.from({ length: c.members }, (_, i) => ({
    source: { topic: "store-features", partition: i % 6, offset: String(i), timestampMs: 1_700_000_000_000 },
    storeId: storeId(i, c.stores),
  }));
  // The folder path the endpoint may prefix, as in the wild: the matcher strips it on every row.
  const predictions: PredictionRow[] = members.map((m, i) => ({
    fileName: i % 2 === 0 ? FILE : `azureml/inputs/${FILE}`,
    storeId: m.storeId,
    prediction: i / 7,
  }));
  if (c.order === "shuffled") shuffle(predictions, random);
  const batch = { fileName: FILE, members };
  const repeat = Math.max(1, Math.round(200_000 / c.members));
  let matched = 0;
  const t = timeRounds(c.members * repeat, () => {
    for (let r = 0; r < repeat; r++) {
      const result = matchPredictions(batch, predictions);
      matched += result.predictions.length;
      if (result.missing.length !== 0 || result.unmatchedRows !== 0) throw new Error("rows left unmatched");
    }
  });
  if (matched === 0) throw new Error("nothing matched");
  figures[c.name] = timedFigures(t);
  return [c.name, rate(t), spread(t), cpuRate(t), `${num(t.nsPerOp)} ns`];
});
printTable(
  "rows matched per second, matcher creation and finish() included (median of rounds)",
  ["batch", "rows/s", "range", "per CPU-s", "per row"],
  rows,
);
writeFigures("matchPredictions", { cases: figures });
