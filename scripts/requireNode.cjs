/**
 * Stops with one line when this Node.js is older than package.json's engines.node, the project's one minimum.
 *
 *   node scripts/requireNode.cjs && exec node demo/run.ts     (the npm scripts' prefix)
 *   import "../scripts/requireNode.cjs";                      (first import of a TypeScript entry point)
 *
 * Plain CommonJS in old syntax on purpose (no optional chaining, no `node:` specifiers, nothing newer than
 * Node 8 can parse): it has to run, and say what is wrong, on exactly the Node versions it refuses.
 * Silent with exit 0 when the version is fine; one line on stderr and exit 1 when it is not.
 * REQUIRE_NODE_FAKE_VERSION=20.1.0 makes it judge that version instead of the running one (for tests).
 */
"use strict";

// biome-ignore lint/style/useNodejsImportProtocol: "node:" specifiers need Node 14.18; this must run on older ones
const fs = require("fs");
// biome-ignore lint/style/useNodejsImportProtocol: as above
const path = require("path");

const ROOT = path.resolve(__dirname, "..");

function parseVersion(text) {
  const match = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(String(text).trim());
  if (!match) return undefined;
  return [Number(match[1]), Number(match[2] || 0), Number(match[3] || 0)];
}

function compareVersions(a, b) {
  for (let i = 0; i < 3; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

/** engines.node as written in package.json: one ">=X.Y.Z" bound, the only form the project uses. */
function requiredRange() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
  // biome-ignore lint/complexity/useOptionalChain: optional chaining needs Node 14; this must parse on older ones
  const range = pkg.engines && pkg.engines.node;
  const match = typeof range === "string" ? /^>=\s*(\S+)$/.exec(range.trim()) : null;
  const minimum = match ? parseVersion(match[1]) : undefined;
  if (!minimum) {
    throw new Error(
      `package.json engines.node must be one ">=X.Y.Z" bound (scripts/requireNode.cjs reads it), got ${JSON.stringify(range)}`,
    );
  }
  return { range: range.trim(), minimum: minimum };
}

/** The npm registry's Node.js package for this platform, installed into a folder of its own (as .ci/run does). */
function howToGetIt() {
  const pkg = `node-${process.platform === "win32" ? "win" : process.platform}-${process.arch}`;
  const folder = path.join(ROOT, ".tools", "node");
  const bin = path.join(folder, "node_modules", pkg, "bin");
  return `get Node 24 LTS with: npm install --prefix ${folder} ${pkg}@24 && export PATH=${bin}:$PATH`;
}

/** The line to print when `found` does not satisfy engines.node, or undefined when it does. */
function problem(found) {
  const required = requiredRange();
  const version = parseVersion(found);
  if (version && compareVersions(version, required.minimum) >= 0) return undefined;
  const shown = version ? `v${version.join(".")}` : JSON.stringify(String(found));
  return `forecast-connector needs Node.js ${required.range} (package.json engines.node), found ${shown} (${process.execPath}); ${howToGetIt()}`;
}

module.exports = { problem: problem, requiredRange: requiredRange };

const message = problem(process.env.REQUIRE_NODE_FAKE_VERSION || process.versions.node);
if (message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}
