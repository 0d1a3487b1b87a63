import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { artifactCacheDir, mavenDir } from "./paths.ts";
import { requireProgram } from "./processes.ts";

export const DEFAULT_KAFKA_VERSION = "4.1.1";
export const DEFAULT_APICURIO_VERSION = "3.0.9";

const MAVEN_HINT =
  "Install Java 17+ and Apache Maven 3.8+ (Debian: apt-get install openjdk-17-jdk-headless maven).";

/** Which of the repository's poms fetches a given Kafka version (the logging backend differs by line). */
function kafkaPom(version: string): string {
  if (/^4\.\d+\.\d+$/.test(version)) return join(mavenDir(), "kafka-4.pom.xml");
  if (/^3\.9\.\d+$/.test(version)) return join(mavenDir(), "kafka-3.9.pom.xml");
  throw new RangeError(`FC_KAFKA_VERSION must be a 4.x.y or 3.9.y release, got "${version}"`);
}

function runMaven(args: readonly string[], what: string): void {
  requireProgram("java", "-version", MAVEN_HINT);
  requireProgram("mvn", "--version", MAVEN_HINT);
  const result = spawnSync("mvn", ["-B", "-q", ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (result.status !== 0) {
    const output = `${result.stdout}\n${result.stderr}`.trim().split("\n").slice(-20).join("\n");
    throw new Error(`Maven could not fetch ${what}:\n${output}`);
  }
}

/**
 * Fetches into `finalDir` once: downloads go to a temporary sibling that is renamed when complete,
 * so an interrupted download is never mistaken for a cached one.
 */
function cached(finalDir: string, fetch: (tmpDir: string) => void): string {
  if (existsSync(join(finalDir, ".complete"))) return finalDir;
  const tmpDir = `${finalDir}.tmp-${process.pid}`;
  // Leftovers of interrupted downloads (any pid) are never complete: clear them.
  const parent = dirname(finalDir);
  if (existsSync(parent)) {
    for (const name of readdirSync(parent)) {
      if (name.startsWith(`${basename(finalDir)}.tmp-`))
        rmSync(join(parent, name), { recursive: true, force: true });
    }
  }
  mkdirSync(tmpDir, { recursive: true });
  fetch(tmpDir);
  writeFileSync(join(tmpDir, ".complete"), new Date().toISOString());
  rmSync(finalDir, { recursive: true, force: true });
  renameSync(tmpDir, finalDir);
  return finalDir;
}

/** Returns a folder holding the broker's jars and its logging backend, fetching them from Maven Central once. */
export function ensureKafkaJars(version: string): string {
  const pom = kafkaPom(version);
  return cached(join(artifactCacheDir(), `kafka-${version}`), (dir) => {
    runMaven(
      ["-f", pom, `-Dkafka.version=${version}`, "dependency:copy-dependencies", `-DoutputDirectory=${dir}`],
      `Apache Kafka ${version}`,
    );
  });
}

/**
 * Returns the folder holding Apicurio Registry's runnable jar, fetching and unpacking it once. Releases ship
 * either Quarkus' fast-jar layout (`quarkus-app/quarkus-run.jar`) or the legacy one (`*-runner.jar` + `lib/`).
 */
export function ensureApicurio(version: string): string {
  return cached(join(artifactCacheDir(), `apicurio-${version}`), (dir) => {
    // dependency:copy fetches just the assembly; its parent pom is not needed for that.
    runMaven(
      [
        "dependency:copy",
        `-Dartifact=io.apicurio:apicurio-registry-app:${version}:tar.gz:all`,
        `-DoutputDirectory=${dir}`,
      ],
      `Apicurio Registry ${version}`,
    );
    const archive = readdirSync(dir).find((name) => name.endsWith(".tar.gz"));
    if (!archive) throw new Error(`Apicurio Registry ${version}: no tar.gz was downloaded into ${dir}`);
    const untar = spawnSync("tar", ["-xzf", archive], { cwd: dir, encoding: "utf8" });
    if (untar.status !== 0) throw new Error(`could not unpack ${archive}: ${untar.stderr}`);
    rmSync(join(dir, archive));
    if (!findApicurioJar(dir))
      throw new Error(`Apicurio Registry ${version}: no runnable jar after unpacking`);
  });
}

export function findApicurioJar(dir: string): string | undefined {
  return findFile(dir, (name) => name === "quarkus-run.jar" || name.endsWith("-runner.jar"));
}

/** Depth-first search below `dir` for a file whose name passes `matches`. */
function findFile(dir: string, matches: (name: string) => boolean): string | undefined {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isFile() && matches(entry.name)) return path;
    if (entry.isDirectory()) {
      const found = findFile(path, matches);
      if (found) return found;
    }
  }
  return undefined;
}
