/**
 * Where a CPU profile's time went: the functions with the most self time, and the time per package or
 * source folder, so that a profile from BENCH_CPU_PROF can be read without a browser.
 *   node bench/profileTop.ts <file.cpuprofile> [rows=25]
 */
import { readFileSync } from "node:fs";
import { num, printTable } from "./lib.ts";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly hitCount?: number;
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
}

const file = process.argv[2];
if (!file) {
  console.error("usage: node bench/profileTop.ts <file.cpuprofile> [rows]");
  process.exit(2);
}
const rows = Number(process.argv[3] ?? 25);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const hits = new Map<number, number>();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const total = profile.samples.length;
const msPerSample = (profile.endTime - profile.startTime) / 1000 / Math.max(1, total);

/** A package (node_modules/<name>), a source folder (src/<folder>), node's own, or the engine. */
function area(url: string): string {
  if (url === "") return "(engine: gc, idle, program)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith("node:")) return "node core";
  const src = /\/(src|bench|emulator|stack)\/(?:([^/]+)\/)?[^/]+$/.exec(url);
  if (src) return src[2] ? `${src[1]}/${src[2]}` : (src[1] as string);
  return url;
}

const byFunction = new Map<string, number>();
const byArea = new Map<string, number>();
for (const node of profile.nodes) {
  const count = hits.get(node.id) ?? 0;
  if (count === 0) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url
    ? `${url.replace(/^.*\/(node_modules|src|bench|emulator)\//, "$1/")}:${lineNumber + 1}`
    : "";
  const key = `${functionName || "(anonymous)"} ${where}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + count);
  byArea.set(area(url), (byArea.get(area(url)) ?? 0) + count);
}
const top = (map: Map<string, number>) =>
  [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, rows)
    .map(([k, v]) => [k, `${num((v / total) * 100, 1)}%`, `${num(v * msPerSample)} ms`]);
console.log(`${file}: ${num(total)} samples, ${num((profile.endTime - profile.startTime) / 1e6, 1)} s`);
printTable("self time by package or source folder", ["where", "share", "time"], top(byArea));
printTable("self time by function", ["function", "share", "time"], top(byFunction));
