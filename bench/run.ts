/**
 * `npm run bench`: the connector's speed and memory, side by side with a bare kafkajs pipe, in one run on one
 * local stack (started here, stopped at the end). Prints the tables of each benchmark, then one summary
 * table against issue 8's targets, and writes every figure with the machine's facts to
 * bench/results/latest.json (the README's Performance section is made from that file).
 *
 *   BENCH_ONLY=hot     in-process stages only (no services)
 *   BENCH_ONLY=e2e     the benchmarks on the local stack only (stages against services, end to end)
 *   BENCH_SMOKE=1      tiny numbers, every benchmark still run: `npm run bench:smoke` (CI); figures go to
 *                      bench/results/smoke.json, which is not committed
 *   BENCH_RESULTS_FILE where the figures go instead
 * The knobs of each benchmark (event counts, batch sizes ...) are listed at the top of its file.
 *
 * Each benchmark runs in a process of its own (bench/<name>.ts, runnable alone), so heaps, JIT state and RSS
 * never mix; each has a time limit, after which it is stopped. The run exits non-zero when any benchmark
 * failed or overran: never because of a figure (speed is reported, not asserted).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { killProcessGroupNow } from "../stack/src/processes.ts";
import { freeStackPorts, type RunningStack, startStack } from "../stack/src/stack.ts";
import { machine, machineFacts, num, printTable } from "./lib.ts";
import { summaryRows } from "./summary.ts";

const here = dirname(fileURLToPath(import.meta.url));
const smoke = process.env.BENCH_SMOKE === "1" || process.env.BENCH_SMOKE === "true";

/** Small enough for CI, large enough that every code path of every benchmark runs. */
const SMOKE_ENV: Record<string, string> = {
  BENCH_EVENTS: "2000",
  BENCH_BATCH_SIZES: "500",
  BENCH_MEMORY_EVENTS: "3000",
  BENCH_STALL_ROWS: "3000",
  BENCH_FILES_EVENTS: "1000",
  BENCH_PARSE_ROWS: "5000",
  BENCH_STAGE_RECORDS: "2000",
};

interface Bench {
  readonly file: string;
  readonly part: "hot" | "e2e";
  readonly timeoutMs: number;
}

const BENCHES: readonly Bench[] = [
  { file: "validate.ts", part: "hot", timeoutMs: 60_000 },
  { file: "batcher.ts", part: "hot", timeoutMs: 60_000 },
  { file: "serialize.ts", part: "hot", timeoutMs: 60_000 },
  { file: "parsePredictions.ts", part: "hot", timeoutMs: 600_000 },
  { file: "matchPredictions.ts", part: "hot", timeoutMs: 60_000 },
  { file: "offsetTracker.ts", part: "hot", timeoutMs: 60_000 },
  { file: "stagesIo.ts", part: "e2e", timeoutMs: 180_000 },
  { file: "e2e.ts", part: "e2e", timeoutMs: 2_400_000 },
];

const only = process.env.BENCH_ONLY;
if (only !== undefined && only !== "" && only !== "hot" && only !== "e2e") {
  console.error(`BENCH_ONLY must be "hot" or "e2e", got ${JSON.stringify(only)}`);
  process.exit(2);
}
const selected = BENCHES.filter((b) => !only || b.part === only);
const figuresDir = mkdtempSync(join(tmpdir(), "fc-bench-"));
const resultsFile =
  process.env.BENCH_RESULTS_FILE || join(here, "results", smoke ? "smoke.json" : "latest.json");

let current: ChildProcess | undefined;
let interrupted = false;
let stack: RunningStack | undefined;
// Ctrl-C reaches the child too (same process group); wait for it to clean up, then stop.
process.on("SIGINT", () => {
  interrupted = true;
});
process.on("SIGTERM", () => {
  interrupted = true;
  current?.kill("SIGTERM");
});
// Whatever happens, the stack started here does not outlive the run.
process.once("exit", () => {
  for (const p of stack?.processes ?? []) killProcessGroupNow(p.pid);
  rmSync(figuresDir, { recursive: true, force: true });
});

function run(bench: Bench): Promise<{ status: string; seconds: number }> {
  const started = Date.now();
  const timeoutMs = smoke ? Math.min(bench.timeoutMs, 240_000) : bench.timeoutMs;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--expose-gc", join(here, bench.file)], {
      stdio: "inherit",
      env: {
        ...process.env,
        ...(smoke ? SMOKE_ENV : {}),
        BENCH_FIGURES_DIR: figuresDir,
        ...(stack ? { BENCH_STACK: JSON.stringify(stack.endpoints) } : {}),
      },
    });
    current = child;
    let overran = false;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const timer = setTimeout(() => {
      overran = true;
      console.log(`\n! ${bench.file} ran past ${timeoutMs / 1000} s: stopping it`);
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    }, timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      current = undefined;
      const status = overran ? "timed out" : code === 0 ? "ok" : `failed (${signal ?? `exit ${code}`})`;
      resolve({ status, seconds: (Date.now() - started) / 1000 });
    });
  });
}

console.log(`forecast-connector benchmarks${smoke ? " (smoke: tiny numbers, figures meaningless)" : ""}`);
console.log(machineFacts());
const machineAtStart = machine();
const started = Date.now();
const results: string[][] = [];
const benches: Record<string, { status: string; seconds: number; figures?: unknown }> = {};
let failed = false;
let stackTried = false;
for (const bench of selected) {
  if (interrupted) break;
  // Started before the first benchmark that needs it: the in-process ones run beside no idle broker.
  if (bench.part === "e2e" && !stackTried) {
    stackTried = true;
    console.log('\nstarting the local stack (name "bench")...');
    const stackStarted = Date.now();
    try {
      stack = await startStack({ name: "bench", ports: await freeStackPorts() });
      console.log(
        `stack up in ${num((Date.now() - stackStarted) / 1000, 1)} s (${relative(process.cwd(), stack.dir)})`,
      );
    } catch (error) {
      console.log(`! the local stack did not start: ${(error as Error).message}`);
      failed = true;
    }
  }
  if (bench.part === "e2e" && !stack) {
    results.push([bench.file, "not run (no stack)", "-"]);
    continue;
  }
  const { status, seconds } = await run(bench);
  failed ||= status !== "ok";
  results.push([bench.file, status, `${num(seconds, 1)} s`]);
  const name = bench.file.replace(/\.ts$/, "");
  let figures: unknown;
  try {
    figures = JSON.parse(readFileSync(join(figuresDir, `${name}.json`), "utf8"));
  } catch {
    figures = undefined;
  }
  benches[name] = { status, seconds, ...(figures === undefined ? {} : { figures }) };
}
await stack?.stop();
stack = undefined;

/** The commit measured, "+ changes" when the work tree differs from it. */
function commitMeasured(): string | undefined {
  try {
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: here, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      cwd: here,
      encoding: "utf8",
    }).trim();
    return dirty ? `${head} + changes` : head;
  } catch {
    return undefined;
  }
}

const output = {
  commit: commitMeasured(),
  command: `${only ? `BENCH_ONLY=${only} ` : ""}npm run ${smoke ? "bench:smoke" : "bench"}`,
  smoke,
  startedAt: new Date(started).toISOString(),
  seconds: (Date.now() - started) / 1000,
  machine: { ...machineAtStart, loadAverageAtEnd: machine().loadAverage },
  knobs: Object.fromEntries(
    Object.entries({ ...process.env, ...(smoke ? SMOKE_ENV : {}) }).filter(
      ([k]) => k.startsWith("BENCH_") && k !== "BENCH_FIGURES_DIR" && k !== "BENCH_STACK",
    ),
  ),
  benches,
};
mkdirSync(dirname(resultsFile), { recursive: true });
writeFileSync(resultsFile, `${JSON.stringify(output, null, 2)}\n`);

printTable("benchmarks", ["benchmark", "status", "took"], results);
printTable(
  `summary against issue 8's targets${smoke ? " (smoke: meaningless figures)" : ""}`,
  ["figure", "value", "target", ""],
  summaryRows(output.benches),
);
console.log(`\nfigures written to ${relative(process.cwd(), resultsFile)}`);
console.log(
  `all benchmarks took ${num((Date.now() - started) / 1000, 1)} s${interrupted ? " (interrupted)" : ""}`,
);
process.exit(failed || interrupted ? 1 : 0);
