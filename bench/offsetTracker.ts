/**
 * offsetTracker: track every fetched offset, complete them out of order (batches finish in any order), and ask
 * for the committable offsets after each completed batch, as the coordinator does.
 *   node bench/offsetTracker.ts
 */
import { createOffsetTracker } from "../src/pipeline/offsetTracker.ts";
import {
  banner,
  cpuRate,
  num,
  printTable,
  prng,
  rate,
  shuffle,
  spread,
  timedFigures,
  timeRounds,
  writeFigures,
} from "./lib.ts";

banner("offset tracker (src/pipeline/offsetTracker.ts)");

const TOPIC = "store-features";
const PARTITIONS = 6;
const EVENTS = 300_000;
const random = prng(23);

/** Offsets as kafkajs hands them: strings, per partition, fetched round-robin over the partitions. */
const fetched: Array<{ partition: number; offset: string }> = Array.from({ length: EVENTS }, (_, i) => ({
  partition: i % PARTITIONS,
  offset: String(1_000_000_000 + Math.floor(i / PARTITIONS)),
}));

interface Scenario {
  readonly name: string;
  /** Completion groups, in the order they complete; each is one batch's events. */
  readonly groups: ReadonlyArray<ReadonlyArray<{ partition: number; offset: string }>>;
}

function batches(size: number): Array<Array<{ partition: number; offset: string }>> {
  const out: Array<Array<{ partition: number; offset: string }>> = [];
  for (let i = 0; i < fetched.length; i += size) out.push(fetched.slice(i, i + size));
  return out;
}

/** Batches complete shuffled within windows of `window` batches (e.g. 8 jobs in flight finish in any order). */
function windowShuffled(size: number, window: number) {
  const all = batches(size);
  const out: typeof all = [];
  for (let i = 0; i < all.length; i += window) out.push(...shuffle(all.slice(i, i + window), random));
  return out;
}

const scenarios: Scenario[] = [
  { name: "in order, 1,000-event batches", groups: batches(1_000) },
  { name: "8 jobs in flight finish in any order", groups: windowShuffled(1_000, 8) },
  { name: "all 300 batches finish in random order", groups: shuffle(batches(1_000), random) },
  {
    name: "single events, fully random order",
    groups: shuffle(
      fetched.map((f) => [f]),
      random,
    ),
  },
];

const figures: Record<string, unknown> = {};
const rows = scenarios.map((s) => {
  let committed = 0;
  let maxInFlight = 0;
  const trackT = { total: 0 };
  const t = timeRounds(
    EVENTS,
    () => {
      const tracker = createOffsetTracker();
      const started = performance.now();
      for (const f of fetched) tracker.track(TOPIC, f.partition, f.offset);
      trackT.total += performance.now() - started;
      maxInFlight = Math.max(maxInFlight, tracker.inFlight());
      for (const group of s.groups) {
        for (const f of group) tracker.complete(TOPIC, f.partition, f.offset);
        const ready = tracker.committable();
        if (ready.length > 0) {
          tracker.markCommitted(ready);
          committed += ready.length;
        }
      }
      if (tracker.inFlight() !== 0) throw new Error("offsets left in flight");
    },
    { rounds: 5 },
  );
  if (committed === 0) throw new Error("nothing committed");
  figures[s.name] = timedFigures(t);
  return [s.name, rate(t), spread(t), cpuRate(t), `${num(t.nsPerOp)} ns`, num(s.groups.length)];
});
printTable(
  `${num(EVENTS)} offsets over ${PARTITIONS} partitions: track all, complete in groups, committable() + markCommitted() after each group`,
  ["completion order", "events/s", "range", "per CPU-s", "per event", "groups"],
  rows,
);
writeFigures("offsetTracker", { events: EVENTS, cases: figures });

// The three calls on their own, for the in-flight window the connector allows by default (50,000 events).
{
  const WINDOW = 50_000;
  const window = fetched.slice(0, WINDOW);
  const order = shuffle([...window], random);
  let tracker = createOffsetTracker();
  const track = timeRounds(WINDOW, () => {
    tracker = createOffsetTracker();
    for (const f of window) tracker.track(TOPIC, f.partition, f.offset);
  });
  const complete = timeRounds(
    WINDOW,
    () => {
      for (const f of order) tracker.complete(TOPIC, f.partition, f.offset);
    },
    { warmup: 0, rounds: 1 },
  );
  tracker = createOffsetTracker();
  for (const f of window) tracker.track(TOPIC, f.partition, f.offset);
  const committable = timeRounds(100_000, () => {
    for (let i = 0; i < 100_000; i++) tracker.committable();
  });
  printTable(
    `single operations with ${num(WINDOW)} offsets in flight (complete: random order, one pass)`,
    ["operation", "ops/s", "per CPU-s", "per op"],
    [
      ["track", rate(track), cpuRate(track), `${num(track.nsPerOp)} ns`],
      ["complete (random order)", rate(complete), cpuRate(complete), `${num(complete.nsPerOp)} ns`],
      [
        `committable() (${PARTITIONS} partitions)`,
        rate(committable),
        cpuRate(committable),
        `${num(committable.nsPerOp)} ns`,
      ],
    ],
  );
}
