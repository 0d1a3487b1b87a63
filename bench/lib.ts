/**
 * Shared helpers of the benchmarks: timing, percentiles, memory sampling and table printing.
 * Every benchmark file runs on its own (`node bench/<name>.ts`); bench/run.ts runs them one process each,
 * so no benchmark's heap or JIT state leaks into another's figures.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** A full garbage collection, whether or not the process was started with --expose-gc. */
export const gc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

export function settle(): void {
  gc();
  gc();
}

export const MiB = 1024 * 1024;

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

export function signedMib(bytes: number): string {
  return `${bytes >= 0 ? "+" : ""}${(bytes / MiB).toFixed(1)} MiB`;
}

/** 1234567 -> "1,234,567"; fractional values keep `digits` decimals. */
export function num(value: number, digits = 0): string {
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Value at quantile q (0..1) of an ascending-sorted array, nearest-rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] as number;
}

export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/** Deterministic PRNG (mulberry32): runs repeat, inputs are the same on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** Realistic store ids: the M5 data set's 10 stores, then synthetic ones, so matching sees many stores. */
export function storeId(i: number, stores = 50): string {
  const states = ["CA", "TX", "WI", "NY", "WA"];
  const k = i % stores;
  return `${states[k % states.length]}_${Math.floor(k / states.length) + 1}`;
}

/** 13 features as they look in the wild: prices, lags, rolling means, calendar flags. */
export function realisticFeatures(random: () => number, count = 13): number[] {
  return Array.from({ length: count }, (_, i) => {
    if (i % 5 === 4) return random() < 0.5 ? 0 : 1; // a flag
    if (i % 5 === 3) return Math.floor(random() * 400); // a count
    return Number((random() * 100).toFixed(i % 2 === 0 ? 2 : 6)); // a price, a mean
  });
}

export interface Timed {
  /** Operations per second: the median over rounds. */
  readonly opsPerSec: number;
  readonly minOpsPerSec: number;
  readonly maxOpsPerSec: number;
  readonly nsPerOp: number;
  /** Operations per second of this process's CPU time (user + system, GC threads included): the median over
   * rounds. Less disturbed than the wall-clock figure when other processes compete for the cores. */
  readonly cpuOpsPerSec: number;
  readonly rounds: number;
}

function summarise(opsPerRound: number, wallNs: readonly number[], cpuUs: readonly number[]): Timed {
  const rates = wallNs.map((ns) => (opsPerRound * 1e9) / ns);
  const opsPerSec = median(rates);
  return {
    opsPerSec,
    minOpsPerSec: Math.min(...rates),
    maxOpsPerSec: Math.max(...rates),
    nsPerOp: 1e9 / opsPerSec,
    cpuOpsPerSec: median(cpuUs.map((us) => (opsPerRound * 1e6) / Math.max(us, 1))),
    rounds: rates.length,
  };
}

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** BENCH_SMOKE (CI): one round, no warm-up, so every benchmark runs its code once and quickly. */
const SMOKE = process.env.BENCH_SMOKE === "1" || process.env.BENCH_SMOKE === "true";

function roundsOf(
  options: { rounds?: number; budgetMs?: number; warmup?: number },
  rounds: number,
  budgetMs: number,
): { rounds: number; budgetMs: number; warmup: number } {
  if (SMOKE) return { rounds: 1, budgetMs: 0, warmup: 0 };
  return {
    rounds: options.rounds ?? rounds,
    budgetMs: options.budgetMs ?? budgetMs,
    warmup: options.warmup ?? 1,
  };
}

/**
 * Runs `round` (which performs `opsPerRound` operations) once to warm up, then for `rounds` rounds or until
 * `budgetMs` is spent (at least 3 rounds), and reports the median throughput.
 */
export function timeRounds(
  opsPerRound: number,
  round: () => void,
  options: { rounds?: number; budgetMs?: number; warmup?: number } = {},
): Timed {
  const { rounds, budgetMs, warmup } = roundsOf(options, 7, 4_000);
  for (let i = 0; i < warmup; i++) round();
  const wall: number[] = [];
  const cpu: number[] = [];
  const deadline = performance.now() + budgetMs;
  while (wall.length < rounds && (wall.length < Math.min(3, rounds) || performance.now() < deadline)) {
    const cpuStarted = cpuMicros();
    const started = process.hrtime.bigint();
    round();
    wall.push(Number(process.hrtime.bigint() - started));
    cpu.push(cpuMicros() - cpuStarted);
  }
  return summarise(opsPerRound, wall, cpu);
}

/** Async version of timeRounds, for stages that are async iterators. */
export async function timeRoundsAsync(
  opsPerRound: number,
  round: () => Promise<void>,
  options: { rounds?: number; budgetMs?: number; warmup?: number } = {},
): Promise<Timed> {
  const { rounds, budgetMs, warmup } = roundsOf(options, 5, 6_000);
  for (let i = 0; i < warmup; i++) await round();
  const wall: number[] = [];
  const cpu: number[] = [];
  const deadline = performance.now() + budgetMs;
  while (wall.length < rounds && (wall.length < Math.min(3, rounds) || performance.now() < deadline)) {
    const cpuStarted = cpuMicros();
    const started = process.hrtime.bigint();
    await round();
    wall.push(Number(process.hrtime.bigint() - started));
    cpu.push(cpuMicros() - cpuStarted);
  }
  return summarise(opsPerRound, wall, cpu);
}

/** Median wall-clock throughput, "1,234,567/s". */
export function rate(t: Timed): string {
  return `${num(t.opsPerSec)}/s`;
}

/** Median throughput per CPU-second. */
export function cpuRate(t: Timed): string {
  return `${num(t.cpuOpsPerSec)}/s`;
}

export function spread(t: Timed): string {
  const short = (v: number) =>
    v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(0);
  return `${short(t.minOpsPerSec)}..${short(t.maxOpsPerSec)}`;
}

/**
 * Samples heapUsed and RSS while work runs. `sample()` is cheap enough to call from a hot loop every few
 * thousand iterations; a timer also samples, for work that yields to the event loop.
 */
export class MemoryWatch {
  readonly baseHeap: number;
  readonly baseRss: number;
  peakHeap: number;
  peakRss: number;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(intervalMs = 25) {
    settle();
    const m = process.memoryUsage();
    this.baseHeap = m.heapUsed;
    this.baseRss = m.rss;
    this.peakHeap = m.heapUsed;
    this.peakRss = m.rss;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    const heap = process.memoryUsage().heapUsed;
    if (heap > this.peakHeap) this.peakHeap = heap;
    const rss = process.memoryUsage.rss();
    if (rss > this.peakRss) this.peakRss = rss;
  }

  stop(): { peakHeapDelta: number; peakRssDelta: number; peakRss: number } {
    clearInterval(this.timer);
    this.sample();
    return {
      peakHeapDelta: this.peakHeap - this.baseHeap,
      peakRssDelta: this.peakRss - this.baseRss,
      peakRss: this.peakRss,
    };
  }
}

const FIGURE = /^[-+~]?[\d.,]|^n\/a$|^-$/;

/** Prints a titled table: columns of figures right-aligned, text columns (and the first) left-aligned. */
export function printTable(
  title: string,
  headers: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const figures = headers.map(
    (_, i) => i > 0 && rows.every((r) => (r[i] ?? "") === "" || FIGURE.test(r[i] as string)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (figures[i] ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  const out = ["", title, line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
  console.log(out.join("\n"));
}

/** The machine a figure came from, as recorded beside the figures (bench/results/*.json). */
export interface Machine {
  readonly node: string;
  readonly platform: string;
  readonly arch: string;
  readonly cores: number;
  readonly cpu: string;
  readonly memoryGiB: number;
  readonly loadAverage: readonly number[];
}

export function machine(): Machine {
  return {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cores: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
    memoryGiB: Number((totalmem() / 1024 ** 3).toFixed(1)),
    loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
  };
}

/**
 * Hands a benchmark's figures to bench/run.ts, which gathers them into bench/results/latest.json: written to
 * BENCH_FIGURES_DIR/<name>.json when run.ts set it (alone, a benchmark only prints).
 */
export function writeFigures(name: string, figures: unknown): void {
  const dir = process.env.BENCH_FIGURES_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(figures, null, 2)}\n`);
}

/** The figures of a Timed, for the JSON. */
export function timedFigures(t: Timed): Record<string, number> {
  return {
    opsPerSec: Math.round(t.opsPerSec),
    minOpsPerSec: Math.round(t.minOpsPerSec),
    maxOpsPerSec: Math.round(t.maxOpsPerSec),
    cpuOpsPerSec: Math.round(t.cpuOpsPerSec),
    nsPerOp: Math.round(t.nsPerOp),
    rounds: t.rounds,
  };
}

export function machineFacts(): string {
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  const cores = availableParallelism();
  const load = loadavg()[0] ?? 0;
  const busy =
    load > cores * 0.75
      ? `  << the machine is busy (load ${load.toFixed(1)} on ${cores} cores): wall-clock figures suffer, CPU-time ones less`
      : "";
  return (
    `node ${process.version} (${process.platform}/${process.arch}), ${cores} cores (${cpu}), ` +
    `${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}${busy}`
  );
}

/** The header every benchmark prints first, so its output stands on its own. */
export function banner(name: string): void {
  console.log(`\n=== ${name} ===\n${machineFacts()}`);
}

/** Process-lifetime peak RSS, as the kernel counts it. */
export function maxRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}
