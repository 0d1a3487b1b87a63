/**
 * Decode + validate: what the consumer does to every message before it joins a batch (the decoder's JSON
 * path, which is what a JSON input takes; the validator's calls on their own for comparison).
 *   node bench/validate.ts
 */
import { rowSizeBytes } from "../src/batcher/index.ts";
import { createEventDecoder } from "../src/consumer/decode.ts";
import { createEventValidator } from "../src/consumer/validate.ts";
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
  type Timed,
  timedFigures,
  timeRounds,
  timeRoundsAsync,
  writeFigures,
} from "./lib.ts";

const EVENTS = 20_000;

banner("event validation (src/consumer/validate.ts)");

const random = prng(7);
const objects = Array.from({ length: EVENTS }, (_, i) => ({
  store_id: storeId(i),
  features: realisticFeatures(random),
}));
const valid = objects.map((o) => Buffer.from(JSON.stringify(o)));
const averageBytes = valid.reduce((sum, b) => sum + b.length, 0) / valid.length;

// 5% invalid, spread evenly: the kinds the dead-letter tests use.
const badKinds = [
  Buffer.from("{not json"),
  Buffer.from(JSON.stringify({ store_id: "CA_1", features: [1, 2, 3] })),
  Buffer.from(JSON.stringify({ features: realisticFeatures(random) })),
  Buffer.from(JSON.stringify({ store_id: "CA 1", features: realisticFeatures(random) })),
  Buffer.from(JSON.stringify({ store_id: "CA_1", features: "lots" })),
];
const mixed = valid.map((b, i) => (i % 20 === 19 ? (badKinds[i % badKinds.length] as Buffer) : b));

const validator = createEventValidator();
let sink = 0;

const cases: Array<[string, () => void, string]> = [
  [
    "validateBytes, valid JSON",
    () => {
      for (const b of valid) if (validator.validateBytes(b).ok) sink++;
    },
    "UTF-8 decode + JSON.parse + checks",
  ],
  [
    "validateBytes, 5% invalid",
    () => {
      for (const b of mixed) if (validator.validateBytes(b).ok) sink++;
    },
    "",
  ],
  [
    "validateBytes + rowSizeBytes",
    () => {
      for (const b of valid) {
        const v = validator.validateBytes(b);
        if (v.ok) sink += rowSizeBytes(v.row);
      }
    },
    "per-event work of pipeline.handleMessages",
  ],
  [
    "validateObject (Avro path)",
    () => {
      for (const o of objects) if (validator.validateObject(o).ok) sink++;
    },
    "after the registry decoded the record",
  ],
];

// The decoder as the pipeline calls it; JSON events never reach the registry.
const decoder = createEventDecoder({
  schemaRegistry: {
    decode: () => Promise.reject(new Error("a JSON event reached the schema registry")),
  },
  validator,
  maxMessageBytes: 65_536,
});
const decodeTimed = await timeRoundsAsync(EVENTS, async () => {
  for (const b of valid) if ((await decoder.decode(b)).ok) sink++;
});

const timed: Array<[string, Timed, string]> = [
  ["decode + validate (createEventDecoder), valid JSON", decodeTimed, "the pipeline's per-event call"],
  ...cases.map(([name, round, note]): [string, Timed, string] => [name, timeRounds(EVENTS, round), note]),
];
const rows = timed.map(([name, t, note]) => [
  name,
  rate(t),
  spread(t),
  cpuRate(t),
  `${num(t.nsPerOp)} ns`,
  note,
]);
writeFigures("validate", {
  events: EVENTS,
  averageBytes: Math.round(averageBytes),
  cases: Object.fromEntries(timed.map(([name, t]) => [name, timedFigures(t)])),
});
printTable(
  `${num(EVENTS)} distinct events, ${num(averageBytes)} bytes each on average (median of rounds)`,
  ["case", "events/s", "range", "per CPU-s", "per event", "note"],
  rows,
);
if (sink === 0) console.log("(no events counted)");
