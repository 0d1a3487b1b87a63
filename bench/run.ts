/**
 * `npm run bench`: the speed and memory figures of the connector, printed as tables.
 *
 *   BENCH_ONLY=hot   in-process hot paths only (no services)
 *   BENCH_ONLY=e2e   end to end on the local stack only
 *   BENCH_EVENTS     events in the end-to-end run (default 20000)
 *   BENCH_PARSE_ROWS rows of the predictions.csv files parsed (default 200000)
 *
 * Each benchmark runs in a process of its own (bench/<name>.ts, runnable alone), so heaps, JIT state and
 * RSS never mix; each has a time limit, after which it is stopped (the end-to-end one first gets SIGTERM, to
 * stop the stack it started). The run exits non-zero when any benchmark failed or overran.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stopStack } from "../stack/src/stack.ts";
import { machineFacts, num, printTable } from "./lib.ts";

const here = dirname(fileURLToPath(import.meta.url));

interface Bench {
  readonly file: string;
  readonly part: "hot" | "e2e";
  readonly timeoutMs: number;
}

const BENCHES: readonly Bench[] = [
  { file: "validate.ts", part: "hot", timeoutMs: 60_000 },
  { file: "batcher.ts", part: "hot", timeoutMs: 60_000 },
  { file: "serialize.ts", part: "hot", timeoutMs: 60_000 },
  { file: "parsePredictions.ts", part: "hot", timeoutMs: 180_000 },
  { file: "matchPredictions.ts", part: "hot", timeoutMs: 60_000 },
  { file: "offsetTracker.ts", part: "hot", timeoutMs: 60_000 },
  { file: "e2e.ts", part: "e2e", timeoutMs: 300_000 },
];

const only = process.env.BENCH_ONLY;
if (only !== undefined && only !== "" && only !== "hot" && only !== "e2e") {
  console.error(`BENCH_ONLY must be "hot" or "e2e", got ${JSON.stringify(only)}`);
  process.exit(2);
}
const selected = BENCHES.filter((b) => !only || b.part === only);

let current: ChildProcess | undefined;
let interrupted = false;
// Ctrl-C reaches the child too (same process group); wait for it to clean up, then stop.
process.on("SIGINT", () => {
  interrupted = true;
});
process.on("SIGTERM", () => {
  interrupted = true;
  current?.kill("SIGTERM");
});

function run(bench: Bench): Promise<{ status: string; seconds: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--expose-gc", join(here, bench.file)], {
      stdio: "inherit",
      env: process.env,
    });
    current = child;
    let overran = false;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const timer = setTimeout(() => {
      overran = true;
      console.log(`\n! ${bench.file} ran past ${bench.timeoutMs / 1000} s: stopping it`);
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    }, bench.timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      current = undefined;
      const status = overran ? "timed out" : code === 0 ? "ok" : `failed (${signal ?? `exit ${code}`})`;
      resolve({ status, seconds: (Date.now() - started) / 1000 });
    });
  });
}

console.log(`forecast-connector benchmarks\n${machineFacts()}`);
const started = Date.now();
const results: string[][] = [];
let failed = false;
for (const bench of selected) {
  if (interrupted) break;
  const { status, seconds } = await run(bench);
  if (bench.part === "e2e" && status !== "ok") {
    // Whatever happened to it, its stack must not outlive the run.
    const left = await stopStack("bench").catch(() => []);
    if (left.length > 0)
      console.log(`stopped what the end-to-end benchmark left running: ${left.join(", ")}`);
  }
  failed ||= status !== "ok";
  results.push([bench.file, status, `${num(seconds, 1)} s`]);
}
printTable("summary", ["benchmark", "status", "took"], results);
console.log(
  `\nall benchmarks took ${num((Date.now() - started) / 1000, 1)} s${interrupted ? " (interrupted)" : ""}`,
);
process.exit(failed || interrupted ? 1 : 0);
