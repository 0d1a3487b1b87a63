/**
 * parsePredictions on large predictions.csv files, in the shapes the emulator writes (its own renderer makes
 * the bytes), fed as 64 KiB chunks cut at arbitrary byte positions like a blob download stream.
 *   node bench/parsePredictions.ts            (BENCH_PARSE_ROWS=1000000 by default)
 *
 * Throughput: the file is rendered beforehand, so only parsing is timed. Memory: each size runs in a fresh
 * process, the file rendered lazily while it is parsed and never held whole. Two figures: the live heap (a
 * forced full GC every 20,000 rows, so garbage not yet collected does not count) and the peak RSS over the
 * process's RSS before parsing. Neither should grow with the file. For contrast, the non-streaming way
 * (whole file in memory, csv-parse/sync) is measured the same way.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parse as parseCsv } from "csv-parse/sync";
import type { OutputShape } from "../emulator/options.ts";
import { renderPredictions, type ScoredRow } from "../emulator/output.ts";
import { parsePredictions } from "../src/results/parsePredictions.ts";
import {
  banner,
  cpuRate,
  gc,
  MiB,
  maxRss,
  mib,
  num,
  printTable,
  prng,
  rate,
  settle,
  signedMib,
  spread,
  storeId,
  timedFigures,
  timeRoundsAsync,
  writeFigures,
} from "./lib.ts";

const ROWS = Number(process.env.BENCH_PARSE_ROWS || 1_000_000);
const CHUNK_BYTES = 64 * 1024;
const RENDER_ROWS = 1_000;

const SHAPES: ReadonlyArray<{ name: string; shape: OutputShape }> = [
  { name: "space, no header (guide default)", shape: {} },
  { name: "quoted, comma + header", shape: { delimiter: ",", header: true, quoted: true } },
  { name: "bracketed [x] + CRLF", shape: { bracketed: true, crlf: true } },
];

const FILE_NAME = "b-0m3xk2a1q-5f3c9d2e8a71.json";

/** The predictions.csv text of `rows` rows, RENDER_ROWS at a time (the header only in the first block). */
function* renderBlocks(rows: number, shape: OutputShape): Generator<string> {
  const random = prng(17);
  for (let start = 0; start < rows; start += RENDER_ROWS) {
    const block: ScoredRow[] = [];
    for (let i = start; i < Math.min(rows, start + RENDER_ROWS); i++) {
      block.push({ fileName: FILE_NAME, indexInFile: i, storeId: storeId(i), prediction: random() * 500 });
    }
    const blockShape = { ...shape, header: start === 0 && shape.header === true };
    yield renderPredictions(block, { outputShape: blockShape, rowSeed: 1 }).text;
  }
}

/** Cuts the text into CHUNK_BYTES buffers regardless of line ends (a character may be split, too). */
function* chunked(blocks: Iterable<string>): Generator<Buffer> {
  let pending = Buffer.alloc(0);
  for (const block of blocks) {
    pending = Buffer.concat([pending, Buffer.from(block, "utf8")]);
    while (pending.length >= CHUNK_BYTES) {
      yield pending.subarray(0, CHUNK_BYTES);
      pending = Buffer.from(pending.subarray(CHUNK_BYTES));
    }
  }
  if (pending.length > 0) yield pending;
}

async function* stream(chunks: Iterable<Buffer>): AsyncGenerator<Buffer> {
  for (const chunk of chunks) yield chunk;
}

/** Parses everything and checks every row came out ok; `every` is called every 20,000 rows. */
async function parseAll(input: AsyncIterable<Buffer>, expected: number, every?: () => void): Promise<void> {
  let ok = 0;
  let bad = 0;
  for await (const line of parsePredictions(input)) {
    if (line.ok) ok++;
    else bad++;
    if (every !== undefined && ok % 20_000 === 0) every();
  }
  if (ok !== expected || bad !== 0)
    throw new Error(`parsed ${ok} ok and ${bad} bad rows, expected ${expected}`);
}

interface MemoryFigures {
  readonly bytes: number;
  readonly liveHeapDelta: number;
  readonly peakRssDelta: number;
}

/** One memory measurement, in this (fresh) process: prints its figures as one JSON line. */
async function memoryChild(mode: string, rows: number): Promise<void> {
  settle();
  const baseHeap = process.memoryUsage().heapUsed;
  const baseRss = process.memoryUsage.rss();
  let liveHeap = baseHeap;
  const probe = () => {
    gc();
    liveHeap = Math.max(liveHeap, process.memoryUsage().heapUsed);
  };
  let bytes = 0;
  if (mode === "stream") {
    const counted = function* () {
      for (const chunk of chunked(renderBlocks(rows, {}))) {
        bytes += chunk.length;
        yield chunk;
      }
    };
    await parseAll(stream(counted()), rows, probe);
  } else {
    const whole = Buffer.concat([...chunked(renderBlocks(rows, {}))]);
    bytes = whole.length;
    const records = parseCsv(whole, { delimiter: " ", relax_column_count: true }) as string[][];
    probe();
    if (records.length !== rows) throw new Error(`csv-parse read ${records.length} records`);
  }
  const figures: MemoryFigures = {
    bytes,
    liveHeapDelta: liveHeap - baseHeap,
    peakRssDelta: maxRss() - baseRss,
  };
  console.log(JSON.stringify(figures));
}

function measureInChild(mode: "stream" | "whole", rows: number): MemoryFigures {
  const child = spawnSync(
    process.execPath,
    ["--expose-gc", fileURLToPath(import.meta.url), "--memory-child", mode, String(rows)],
    { encoding: "utf8", timeout: 120_000 },
  );
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) {
    throw new Error(`memory measurement (${mode}, ${rows} rows) failed: ${child.stderr || child.error}`);
  }
  return JSON.parse(last) as MemoryFigures;
}

if (process.argv[2] === "--memory-child") {
  await memoryChild(process.argv[3] as string, Number(process.argv[4]));
} else {
  await main();
}

async function main(): Promise<void> {
  banner("parsePredictions (src/results/parsePredictions.ts)");

  // Throughput, per shape. Warmed up on a small file, then timed on the full one.
  const throughputRows: string[][] = [];
  const figures: Record<string, unknown> = { rows: ROWS, shapes: {} as Record<string, unknown> };
  for (const { name, shape } of SHAPES) {
    const chunks = [...chunked(renderBlocks(ROWS, shape))];
    const small = [...chunked(renderBlocks(20_000, shape))];
    await parseAll(stream(small), 20_000);
    const bytes = chunks.reduce((sum, c) => sum + c.length, 0);
    const t = await timeRoundsAsync(ROWS, () => parseAll(stream(chunks), ROWS), {
      rounds: ROWS >= 500_000 ? 2 : 3,
      budgetMs: 1,
      warmup: 0,
    });
    (figures.shapes as Record<string, unknown>)[name] = { fileBytes: bytes, ...timedFigures(t) };
    throughputRows.push([
      name,
      mib(bytes),
      rate(t),
      spread(t),
      cpuRate(t),
      `${num((t.opsPerSec * bytes) / ROWS / MiB, 1)} MiB/s`,
      `${num(t.nsPerOp / 1000, 1)} us`,
    ]);
  }
  printTable(
    `${num(ROWS)} rows per file, 64 KiB chunks (median of rounds)`,
    ["shape", "file", "rows/s", "range", "per CPU-s", "throughput", "per row"],
    throughputRows,
  );

  // Memory: each size in a fresh process.
  const memoryRows: string[][] = [];
  const memory: Array<Record<string, unknown>> = [];
  for (const rows of [...new Set([Math.round(ROWS / 10), ROWS])]) {
    const m = measureInChild("stream", rows);
    memory.push({ how: "stream", rows, ...m });
    memoryRows.push([
      "streaming parsePredictions",
      num(rows),
      mib(m.bytes),
      signedMib(m.liveHeapDelta),
      signedMib(m.peakRssDelta),
    ]);
  }
  const whole = measureInChild("whole", ROWS);
  memory.push({ how: "whole file + csv-parse/sync", rows: ROWS, ...whole });
  figures.memory = memory;
  writeFigures("parsePredictions", figures);
  memoryRows.push([
    "whole file + csv-parse/sync (contrast)",
    num(ROWS),
    mib(whole.bytes),
    signedMib(whole.liveHeapDelta),
    signedMib(whole.peakRssDelta),
  ]);
  printTable(
    "memory while parsing the default shape, a fresh process per size (figures over that process before parsing)",
    ["how", "rows", "file", "live heap (max)", "peak RSS"],
    memoryRows,
  );
}
