/**
 * One minimum Node.js version everywhere: package.json engines.node, enforced by scripts/requireNode.cjs in front
 * of every entry point, stated by the README and used by .ci/run, and no lower than what the installed
 * dependencies declare.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);
const GUARD = new URL("scripts/requireNode.cjs", root).pathname;
const pkg = JSON.parse(readFileSync(new URL("package.json", root), "utf8")) as {
  engines: { node: string };
  scripts: Record<string, string>;
};
const lock = JSON.parse(readFileSync(new URL("package-lock.json", root), "utf8")) as {
  packages: Record<string, { engines?: { node?: string } | string[] }>;
};
const guard = createRequire(import.meta.url)(GUARD) as {
  requiredRange(): { range: string; minimum: [number, number, number] };
};

function runGuard(fakeVersion: string) {
  const result = spawnSync(process.execPath, [GUARD], {
    env: { ...process.env, REQUIRE_NODE_FAKE_VERSION: fakeVersion },
    encoding: "utf8",
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

type Version = [number, number, number];

/** The subset of npm's range grammar that engines fields use: ||, space-separated comparators, ^ ~ >= > <= < =, x/* and partial versions. */
function satisfies(version: Version, range: string): boolean {
  const cmp = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  const test = (comparator: string): boolean => {
    const match = /^(\^|~|>=|<=|>|<|=)?\s*v?(\d+|[xX*])?(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?$/.exec(
      comparator,
    );
    if (!match) throw new Error(`unsupported engines comparator "${comparator}" in "${range}"`);
    const [, op = "", ...parts] = match;
    const nums = parts.map((p) => (p === undefined || /[xX*]/.test(p) ? undefined : Number(p)));
    const given = nums.indexOf(undefined);
    const precision = given === -1 ? 3 : given; // how many leading parts were given
    if (precision === 0) return op !== "<" && op !== ">"; // "*": any version
    const low: Version = [
      nums[0] ?? 0,
      precision > 1 ? (nums[1] ?? 0) : 0,
      precision > 2 ? (nums[2] ?? 0) : 0,
    ];
    // The first version above the range a partial version stands for (22 -> 23.0.0, 22.1 -> 22.2.0).
    const next = (p: number): Version =>
      p === 1 ? [low[0] + 1, 0, 0] : p === 2 ? [low[0], low[1] + 1, 0] : [low[0], low[1], low[2] + 1];
    switch (op) {
      case ">=":
        return cmp(version, low) >= 0;
      case ">":
        return cmp(version, next(precision)) >= 0;
      case "<=":
        return cmp(version, next(precision)) < 0;
      case "<":
        return cmp(version, low) < 0;
      case "^": {
        const lead = low[0] !== 0 || precision === 1 ? 1 : low[1] !== 0 || precision === 2 ? 2 : 3;
        return cmp(version, low) >= 0 && cmp(version, next(lead)) < 0;
      }
      case "~":
        return cmp(version, low) >= 0 && cmp(version, next(Math.min(precision, 2))) < 0;
      default:
        return cmp(version, low) >= 0 && cmp(version, next(precision)) < 0;
    }
  };
  return range.split("||").some((alternative) => {
    const comparators = alternative
      .trim()
      .replace(/(\^|~|>=|<=|>|<|=)\s+/g, "$1")
      .split(/\s+/)
      .filter(Boolean);
    return comparators.every(test);
  });
}

const lockedEngines = Object.entries(lock.packages)
  .filter(([path]) => path !== "")
  .flatMap(([path, entry]) => {
    const node = !Array.isArray(entry.engines) ? entry.engines?.node : undefined;
    return node ? [{ name: path.replace(/^.*node_modules\//, ""), node }] : [];
  });

describe("the minimum Node.js version", () => {
  const { range, minimum } = guard.requiredRange();
  const [major, minor, patch] = minimum;

  it("is what scripts/requireNode.cjs enforces: package.json engines.node, read at run time", () => {
    expect(range).toBe(pkg.engines.node);
    expect(runGuard(minimum.join("."))).toEqual({ status: 0, stdout: "", stderr: "" });
    const justBelow = patch > 0 ? [major, minor, patch - 1] : [major, minor - 1, 999];
    expect(runGuard(justBelow.join(".")).status).toBe(1);
  });

  it("satisfies every installed package's engines.node, and one of them needs nothing less", () => {
    expect(lockedEngines.length).toBeGreaterThan(100);
    const refusing = lockedEngines.filter((p) => !satisfies(minimum, p.node));
    expect(refusing).toEqual([]);
    const belowMinimum: Version = patch > 0 ? [major, minor, patch - 1] : [major, minor - 1, 999];
    const bounding = lockedEngines.filter((p) => !satisfies(belowMinimum, p.node));
    expect(bounding.length).toBeGreaterThan(0);
  });

  it("is the one the README states and .ci/run checks with the guard", () => {
    const readme = readFileSync(new URL("README.md", root), "utf8");
    expect(readme).toContain(`\`${pkg.engines.node}\``);
    const ci = readFileSync(new URL(".ci/run", root), "utf8");
    expect(ci).toContain("node scripts/requireNode.cjs");
    expect(ci).not.toMatch(/node_major|-lt 2\d/);
  });
});

describe("scripts/requireNode.cjs", () => {
  it("stops an older Node with one line: the version needed, the version found, how to get Node 24; exit 1", () => {
    const result = runGuard("20.11.1");
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    const lines = result.stderr.split("\n");
    expect(lines).toHaveLength(2); // one line and its newline
    expect(lines[1]).toBe("");
    const installer = `node-${process.platform === "win32" ? "win" : process.platform}-${process.arch}@24`;
    expect(lines[0]).toContain(`forecast-connector needs Node.js ${pkg.engines.node}`);
    expect(lines[0]).toContain("found v20.11.1");
    expect(lines[0]).toContain(`npm install --prefix `);
    expect(lines[0]).toContain(installer);
  });

  it("is silent with exit 0 on newer versions and refuses one it cannot read", () => {
    expect(runGuard("24.0.0")).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(runGuard(process.versions.node)).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(runGuard("v26.1.0")).toEqual({ status: 0, stdout: "", stderr: "" });
    const unreadable = runGuard("banana");
    expect(unreadable.status).toBe(1);
    expect(unreadable.stderr).toContain('found "banana"');
  });

  it("uses no syntax an old Node cannot parse (it must run on the versions it refuses)", () => {
    const source = readFileSync(GUARD, "utf8").replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, "");
    expect(source).not.toMatch(
      /\?\.|\?\?|^\s*(?:import|export)\b|\bimport\(|require\("node:|\basync\b|\bclass\b/m,
    );
  });

  it("runs first at every entry point", () => {
    // Every script a person runs; the tool-only ones (compiler, linter, formatter) run under any Node.
    const toolOnly = new Set(["build", "typecheck", "lint", "format"]);
    const entryScripts = Object.keys(pkg.scripts).filter((name) => !toolOnly.has(name));
    expect(entryScripts).toEqual(
      expect.arrayContaining(["test", "start", "bench", "bench:smoke", "test:chaos"]),
    );
    for (const name of entryScripts) {
      expect(pkg.scripts[name], name).toMatch(/^node scripts\/requireNode\.cjs && /);
    }
    for (const [file, specifier] of [
      ["demo/run.ts", "../scripts/requireNode.cjs"],
      ["stack/src/cli.ts", "../../scripts/requireNode.cjs"],
    ] as const) {
      const firstImport = readFileSync(new URL(file, root), "utf8").match(/^import .*$/m)?.[0];
      expect(firstImport, file).toMatch(new RegExp(`^import "${specifier.replaceAll(".", "\\.")}";`));
    }
  });
});

describe("the engines range check used above", () => {
  it("reads the range forms found in package-lock.json", () => {
    expect(satisfies([22, 22, 0], ">= 22.22")).toBe(true);
    expect(satisfies([22, 21, 9], ">= 22.22")).toBe(false);
    expect(satisfies([23, 1, 0], "^22.12.0 || ^24.0.0 || >=26.0.0")).toBe(false);
    expect(satisfies([24, 3, 0], "^22.12.0 || ^24.0.0 || >=26.0.0")).toBe(true);
    expect(satisfies([22, 22, 0], ">=0.6.11 <=0.7.0 || >=0.7.3")).toBe(true);
    expect(satisfies([0, 7, 1], ">=0.6.11 <=0.7.0 || >=0.7.3")).toBe(false);
    expect(satisfies([22, 0, 0], "6.* || 8.* || >= 10.*")).toBe(true);
    expect(satisfies([9, 0, 0], "6.* || 8.* || >= 10.*")).toBe(false);
    expect(satisfies([14, 16, 0], ">=16 || 14 >=14.17")).toBe(false);
    expect(satisfies([14, 17, 0], ">=16 || 14 >=14.17")).toBe(true);
    expect(satisfies([1, 0, 0], "*")).toBe(true);
    expect(satisfies([10, 0, 0], ">= 10.x")).toBe(true);
  });
});
