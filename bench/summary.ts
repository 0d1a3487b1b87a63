/**
 * The summary of a run's figures (bench/results/*.json) against issue 8's targets: printed by bench/run.ts,
 * and as the README's Performance tables by
 *   node bench/summary.ts [bench/results/latest.json]
 * so the README's figures can be checked against (and remade from) the committed JSON.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { num } from "./lib.ts";

type Benches = Record<string, { status: string; seconds: number; figures?: unknown }>;

interface Run {
  readonly name: string;
  readonly ok: boolean;
  readonly eventsPerSecond: number;
  readonly eventsPerSecondFromStart: number;
  readonly cpuUsPerEvent: number;
  readonly ratioToBaseline?: number;
  readonly ratioToBaselineFromStart?: number;
  readonly peakRssBytes: number;
  readonly machineBusy?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: figures are plain JSON, read defensively
type Json = any;

const figuresOf = (benches: Benches, name: string): Json => benches[name]?.figures ?? {};

const n = (v: unknown, digits = 0): string =>
  typeof v === "number" && Number.isFinite(v) ? num(v, digits) : "n/a";

/** "met" / "missed" for a figure against a bound; "" when there is no figure. */
function verdict(value: unknown, bound: number, atLeast: boolean): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "";
  return (atLeast ? value >= bound : value <= bound) ? "met" : "missed";
}

export function summaryRows(benches: Benches): string[][] {
  const e2e = figuresOf(benches, "e2e");
  const rows: string[][] = [];
  const runs: Run[] = e2e.throughput?.runs ?? [];
  const baseline = runs[0];
  if (baseline) {
    rows.push([
      "baseline (bare kafkajs pipe) events/s, first -> last / from start",
      `${n(baseline.eventsPerSecond)} / ${n(baseline.eventsPerSecondFromStart)}`,
      "",
      "",
    ]);
    rows.push(["baseline CPU per event", `${n(baseline.cpuUsPerEvent, 1)} us`, "", ""]);
  }
  const headline = e2e.settings?.batchSizes?.[0];
  for (const r of runs.slice(1)) {
    const isHeadline = headline !== undefined && r.name.endsWith(`batches of ${num(headline)}`);
    const bound = !isHeadline ? undefined : r.name.includes("at-least-once") ? 0.8 : 0.7;
    rows.push([
      `${r.name}: events/s first -> last (x baseline)`,
      `${n(r.eventsPerSecond)} (${n(r.ratioToBaseline, 2)})`,
      bound === undefined ? "" : `>= ${bound} x`,
      r.ok ? (bound === undefined ? "" : verdict(r.ratioToBaseline, bound, true)) : "FAILED",
    ]);
    rows.push([
      `${r.name}: events/s from start (x baseline), CPU per event`,
      `${n(r.eventsPerSecondFromStart)} (${n(r.ratioToBaselineFromStart, 2)}), ${n(r.cpuUsPerEvent, 1)} us`,
      "",
      "",
    ]);
  }
  if (e2e.scaleOut) {
    const [one, two] = e2e.scaleOut.runs as [Run, Run];
    rows.push([
      "two instances / one (events/s first -> last, live input)",
      `${n(e2e.scaleOut.ratio, 2)} (${n(one?.eventsPerSecond)} -> ${n(two?.eventsPerSecond)}; machine CPU busy ${n((one?.machineBusy ?? Number.NaN) * 100)}% -> ${n((two?.machineBusy ?? Number.NaN) * 100)}%)`,
      ">= 1.7 x",
      verdict(e2e.scaleOut.ratio, 1.7, true),
    ]);
  }
  if (e2e.memory) {
    rows.push([
      `live heap + array buffers per in-flight event (${n(e2e.memory.eventsInFlight)} in flight, jobs held)`,
      `${n(e2e.memory.bytesPerEvent)} B (slope ${n(e2e.memory.bytesPerEventSlope)} B; JS heap alone ${n(e2e.memory.heapBytesPerEvent)} B)`,
      "<= 64 B",
      e2e.memory.ok ? verdict(e2e.memory.bytesPerEvent, 64, false) : "FAILED",
    ]);
    rows.push([
      "peak RSS of the connector with them in flight",
      `${n((e2e.memory.peakRssBytes ?? Number.NaN) / 1024 / 1024)} MiB`,
      "",
      "",
    ]);
  }
  const parse = figuresOf(benches, "parsePredictions");
  const shapes = parse.shapes ?? {};
  for (const [name, t] of Object.entries(shapes) as Array<[string, Json]>) {
    const guide = name.startsWith("space, no header");
    const bound = guide ? 1_000_000 : name.includes("quoted") ? 300_000 : undefined;
    rows.push([
      `predictions.csv parsed, ${name} (${n(parse.rows)} rows), rows/s`,
      n(t.opsPerSec),
      bound === undefined ? "" : `>= ${num(bound)}`,
      bound === undefined ? "" : verdict(t.opsPerSec, bound, true),
    ]);
  }
  if (e2e.stall) {
    const s = e2e.stall;
    rows.push([
      `longest event-loop stall, ${n(s.rows)}-row predictions.csv parsed + published`,
      `${n(s.maxStallMs)} ms`,
      "<= 100 ms",
      s.ok ? verdict(s.maxStallMs, 100, false) : "FAILED",
    ]);
    rows.push([
      "live heap while it is published (at job completion -> peak)",
      `${n((s.heapAtResultsBytes ?? Number.NaN) / 1024 / 1024)} -> ${n((s.peakHeapDuringResultsBytes ?? Number.NaN) / 1024 / 1024)} MiB`,
      "flat",
      "",
    ]);
  }
  const stage = (label: string, value: string) => rows.push([label, value, "", ""]);
  const validate = figuresOf(benches, "validate").cases ?? {};
  const decode = Object.entries(validate).find(([k]) => k.startsWith("decode + validate"))?.[1] as Json;
  if (decode) stage("stage: decode + validate (JSON), events/s", n(decode.opsPerSec));
  const serialize = figuresOf(benches, "serialize").batches ?? {};
  const ser = serialize["10000"] as Json;
  if (ser)
    stage(
      "stage: batch serialisation, 10,000 rows, rows/s (MiB/s)",
      `${n(ser.rowsPerSec)} (${n(ser.mibPerSec, 1)})`,
    );
  const io = figuresOf(benches, "stagesIo").cases ?? {};
  for (const [name, t] of Object.entries(io) as Array<[string, Json]>)
    stage(`stage: ${name}, records/s`, n(t.opsPerSec));
  const match = figuresOf(benches, "matchPredictions").cases ?? {};
  for (const [name, t] of Object.entries(match) as Array<[string, Json]>)
    stage(`stage: matching, ${name}, rows/s`, n(t.opsPerSec));
  for (const f of (e2e.files ?? []) as Json[]) {
    stage(
      `files per batch / rows per file, ${f.name}`,
      `${n(f.filesPerBatch?.mean, 1)} / ${n(f.rowsPerFile, 1)} (${n(f.run?.eventsPerSecond)} events/s)`,
    );
  }
  return rows;
}

/** The end-to-end contenders side by side, one row each (the README's first table). */
export function sideBySideRows(benches: Benches): string[][] {
  const e2e = figuresOf(benches, "e2e");
  const runs: Run[] = [...(e2e.throughput?.runs ?? []), ...(e2e.scaleOut?.runs ?? [])];
  return runs.map((r) => [
    r.name,
    n(r.eventsPerSecondFromStart),
    n(r.eventsPerSecond),
    `${n(r.cpuUsPerEvent, 1)} us`,
    r.ratioToBaseline === undefined ? "" : n(r.ratioToBaseline, 2),
    `${n(r.peakRssBytes / 1024 / 1024)} MiB`,
    r.machineBusy === undefined ? "" : `${n(r.machineBusy * 100)}%`,
  ]);
}

export const SIDE_BY_SIDE_HEADERS = [
  "contender",
  "events/s from start",
  "events/s first -> last output",
  "CPU per event",
  "x baseline",
  "peak RSS",
  "machine CPU busy",
];

/** The rows as a Markdown table (the README's). */
export function markdown(
  rows: readonly string[][],
  headers: readonly string[] = ["figure", "value", "target", ""],
): string {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] ?? fileURLToPath(new URL("./results/latest.json", import.meta.url));
  const results = JSON.parse(readFileSync(file, "utf8")) as {
    benches: Benches;
    machine: Json;
    command: string;
  };
  const m = results.machine;
  console.log(
    `${results.command}: node ${m.node} (${m.platform}/${m.arch}), ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB RAM, load average ${m.loadAverage.join(" ")}\n`,
  );
  console.log(`${markdown(sideBySideRows(results.benches), SIDE_BY_SIDE_HEADERS)}\n`);
  console.log(markdown(summaryRows(results.benches)));
}
