import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (stack/src/ is two levels down). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Downloaded artifacts (Kafka jars, the Apicurio assembly) are cached outside the work tree so a fresh clone on
 * the same machine starts warm. FC_STACK_CACHE overrides the location.
 */
export function artifactCacheDir(): string {
  const fromEnv = process.env.FC_STACK_CACHE;
  if (fromEnv) return resolve(fromEnv);
  const xdg = process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache");
  return join(xdg, "forecast-connector", "artifacts");
}

/** Per-stack runtime folder (data, logs, state.json) under .stack/<name>/ in the repository. */
export function stackDir(name: string): string {
  return join(
    process.env.FC_STACK_HOME ? resolve(process.env.FC_STACK_HOME) : join(repoRoot, ".stack"),
    name,
  );
}

export function mavenDir(): string {
  return join(repoRoot, "stack", "maven");
}
