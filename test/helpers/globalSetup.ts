/**
 * Finds the real services the integration tests talk to, taking the first that applies:
 *   1. an existing cluster named by environment variables (FC_TEST_KAFKA_BROKERS, FC_TEST_REGISTRY_URL,
 *      FC_TEST_BLOB_CONNECTION_STRING: all three, or none);
 *   2. the project's local stack (Kafka and Apicurio jars fetched with Maven, Azurite from node_modules), when
 *      its prerequisites are installed (Java 17+ and Maven 3.8+), started here and stopped at the end;
 *   3. containers, when a container runtime (Docker, Podman) answers.
 * FC_TEST_SERVICES=local or FC_TEST_SERVICES=containers forces one of the last two. Whatever is missing fails
 * the run with what to install; no test is ever skipped for want of a service. One line says which path ran.
 *
 * The real identity path: on the local stack Azurite serves HTTPS and accepts Entra tokens (`--oauth basic`), and
 * on every path a CA and a server certificate are made for the tests' own token services (tokenService.ts, one per
 * harness). NODE_EXTRA_CA_CERTS is set to that CA here, before any worker starts: vitest builds each worker's
 * environment from this process's after the global setup, so workers and the processes they spawn trust it.
 */
import "./expectedNoise.ts";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { DEFAULT_KAFKA_VERSION } from "../../stack/src/artifacts.ts";
import { ensureServerCertificates, type ServerCertificates } from "../../stack/src/certificates.ts";
import { stackDir } from "../../stack/src/paths.ts";
import { isAlive, killProcessGroupNow } from "../../stack/src/processes.ts";
import { freeStackPorts, startStack, stopStack } from "../../stack/src/stack.ts";
import type { StackEndpoints } from "../../stack/src/types.ts";
import { findContainerRuntime, startContainerStack } from "./containers.ts";

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackEndpoints;
    /** The local stack's name when that path ran (the chaos suite restarts its broker), else "". */
    stackName: string;
    /** The HTTPS certificate the tests' token services serve, and its CA (trusted through NODE_EXTRA_CA_CERTS). */
    tls: ServerCertificates;
  }
}

const ENV_VARIABLES = [
  "FC_TEST_KAFKA_BROKERS",
  "FC_TEST_REGISTRY_URL",
  "FC_TEST_BLOB_CONNECTION_STRING",
] as const;

function endpointsFromEnv(): StackEndpoints | undefined {
  const present = ENV_VARIABLES.filter((name) => process.env[name]);
  if (present.length === 0) return undefined;
  const missing = ENV_VARIABLES.filter((name) => !process.env[name]);
  if (missing.length > 0) {
    throw new Error(`${present.join(", ")} set but ${missing.join(", ")} missing: set all three, or none`);
  }
  const connectionString = process.env.FC_TEST_BLOB_CONNECTION_STRING as string;
  const blobEndpoint = /BlobEndpoint=([^;]+)/.exec(connectionString)?.[1];
  if (!blobEndpoint) throw new Error("FC_TEST_BLOB_CONNECTION_STRING has no BlobEndpoint=");
  return {
    kafkaBrokers: (process.env.FC_TEST_KAFKA_BROKERS as string).split(",").map((b) => b.trim()),
    kafkaVersion: "external",
    registryUrl: process.env.FC_TEST_REGISTRY_URL as string,
    blobConnectionString: connectionString,
    blobEndpoint,
  };
}

/** Folders of earlier test runs whose vitest process is gone and services stopped: their logs are no longer needed. */
function pruneFinishedTestStacks(): void {
  const root = stackDir("");
  if (!existsSync(root)) return;
  for (const name of readdirSync(root)) {
    const pid = Number(name.slice("test-".length));
    if (name.startsWith("test-") && !isAlive(pid) && !existsSync(join(root, name, "state.json"))) {
      rmSync(join(root, name), { recursive: true, force: true });
    }
  }
}

/** The local stack's prerequisites: "Java 17.0.15, Maven 3.8.7" when Java 17+ and Maven 3.8+ answer, else what is wrong. */
function localStackPrerequisites(): { found: string } | { missing: string } {
  const java = spawnSync("java", ["-version"], { encoding: "utf8" });
  const javaVersion = /version "([^"]+)"/.exec(`${java.stderr ?? ""}${java.stdout ?? ""}`)?.[1];
  const javaParts = (javaVersion ?? "").split(/[._+-]/).map(Number);
  const javaMajor = javaParts[0] === 1 ? javaParts[1] : javaParts[0]; // "1.8.0_292" is Java 8
  const maven = spawnSync("mvn", ["-B", "--version"], { encoding: "utf8" });
  const mavenVersion = /Apache Maven (\d+\.\d+(?:\.\d+)?)/.exec(maven.stdout ?? "")?.[1];
  const [mavenMajor = 0, mavenMinor = 0] = (mavenVersion ?? "").split(".").map(Number);
  const problems: string[] = [];
  if (javaVersion === undefined) problems.push("no working java on PATH");
  else if (!(Number(javaMajor) >= 17)) problems.push(`Java ${javaVersion} (17+ needed)`);
  if (mavenVersion === undefined) problems.push("no working mvn on PATH");
  else if (mavenMajor < 3 || (mavenMajor === 3 && mavenMinor < 8))
    problems.push(`Maven ${mavenVersion} (3.8+ needed)`);
  return problems.length > 0
    ? { missing: problems.join(", ") }
    : { found: `Java ${javaVersion}, Maven ${mavenVersion}` };
}

const LOCAL_HINT =
  "install Java 17+ and Apache Maven 3.8+ (Debian: apt-get install openjdk-17-jdk-headless maven)";
const SERVICES_CHOICES = ["local", "containers"] as const;

type Choice =
  | { path: "env"; endpoints: StackEndpoints; why: string }
  | { path: "local"; why: string }
  | { path: "containers"; why: string };

/** Which services to use, and why, in one phrase; throws with what to do when none can be had. */
export async function chooseServices(): Promise<Choice> {
  const forced = process.env.FC_TEST_SERVICES || undefined;
  if (forced !== undefined && !(SERVICES_CHOICES as readonly string[]).includes(forced)) {
    throw new Error(
      `FC_TEST_SERVICES must be "local" or "containers" (or unset, to take the first that works), got "${forced}"`,
    );
  }
  const fromEnv = endpointsFromEnv();
  if (fromEnv && forced) {
    throw new Error(
      `FC_TEST_SERVICES=${forced} and FC_TEST_KAFKA_BROKERS/FC_TEST_REGISTRY_URL/FC_TEST_BLOB_CONNECTION_STRING are both set: unset one`,
    );
  }
  if (fromEnv)
    return { path: "env", endpoints: fromEnv, why: "FC_TEST_KAFKA_BROKERS and the other two are set" };

  const reason = forced ? `FC_TEST_SERVICES=${forced}` : "FC_TEST_SERVICES unset";
  if (forced !== "containers") {
    const local = localStackPrerequisites();
    if ("found" in local) return { path: "local", why: `${reason}; ${local.found} found` };
    if (forced === "local") {
      throw new Error(
        `FC_TEST_SERVICES=local, but the local stack cannot run: ${local.missing}; ${LOCAL_HINT}`,
      );
    }
    const runtime = await findContainerRuntime();
    if (runtime)
      return { path: "containers", why: `${reason}; local stack unavailable (${local.missing}); ${runtime}` };
    throw new Error(
      `No services for the integration tests: the local stack cannot run (${local.missing}) and no container runtime answers. ` +
        `Either ${LOCAL_HINT}; or start Docker or Podman; or name an existing cluster with FC_TEST_KAFKA_BROKERS, FC_TEST_REGISTRY_URL and FC_TEST_BLOB_CONNECTION_STRING.`,
    );
  }
  const runtime = await findContainerRuntime();
  if (!runtime) {
    throw new Error(
      "FC_TEST_SERVICES=containers, but no container runtime answers (testcontainers found no Docker or Podman socket): start one, or unset FC_TEST_SERVICES to use the local stack",
    );
  }
  return { path: "containers", why: `${reason}; ${runtime}` };
}

/**
 * Trusts `tls`'s CA in every worker (and every process a test spawns with the environment): NODE_EXTRA_CA_CERTS,
 * joined with a CA file already named there.
 */
function trustTestCa(tls: ServerCertificates, dir: string): void {
  const existing = process.env.NODE_EXTRA_CA_CERTS;
  if (existing && existing !== tls.caFile && existsSync(existing)) {
    const bundle = join(dir, "ca-bundle.pem");
    writeFileSync(bundle, `${readFileSync(existing, "utf8")}\n${readFileSync(tls.caFile, "utf8")}`);
    process.env.NODE_EXTRA_CA_CERTS = bundle;
  } else {
    process.env.NODE_EXTRA_CA_CERTS = tls.caFile;
  }
}

/** Certificates for the tests' token services when no local stack made them (existing cluster, containers). */
function testCertificates(): ServerCertificates {
  const dir = join(stackDir(`test-${process.pid}`), "tls");
  mkdirSync(dir, { recursive: true });
  const tls = ensureServerCertificates(dir);
  trustTestCa(tls, dir);
  return tls;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const kafkaVersion = process.env.FC_KAFKA_VERSION || DEFAULT_KAFKA_VERSION;
  const choice = await chooseServices();
  const started = Date.now();
  const took = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  if (choice.path === "env") {
    project.provide("tls", testCertificates());
    console.log(
      `[services] existing cluster (${choice.why}): Kafka ${choice.endpoints.kafkaBrokers.join(",")}, registry ${choice.endpoints.registryUrl}`,
    );
    project.provide("stack", choice.endpoints);
    project.provide("stackName", "");
    return async () => {};
  }

  if (choice.path === "containers") {
    project.provide("tls", testCertificates());
    const containers = await startContainerStack(kafkaVersion);
    console.log(
      `[services] containers (${choice.why}): Kafka ${kafkaVersion}, Apicurio Registry and Azurite started in ${took()}`,
    );
    project.provide("stack", containers.endpoints);
    project.provide("stackName", "");
    return containers.stop;
  }

  const stackName = `test-${process.pid}`;
  pruneFinishedTestStacks();
  const stack = await startStack({
    // Its own folder per run (.stack/test-<pid>/), so parallel runs never stop each other's services.
    name: stackName,
    kafkaVersion,
    ports: await freeStackPorts(),
    // Azurite over HTTPS with OAuth, so the harness can use blob storage by identity.
    identity: true,
  });
  const tlsDir = join(stack.dir, "tls");
  const tls = ensureServerCertificates(tlsDir);
  trustTestCa(tls, tlsDir);
  // If the run is interrupted before teardown, still take the services down with us.
  const killAll = () => {
    for (const p of stack.processes) killProcessGroupNow(p.pid);
  };
  process.once("exit", killAll);
  console.log(
    `[services] local stack (${choice.why}): Kafka ${kafkaVersion}, Apicurio Registry and Azurite (HTTPS, OAuth) started in ${took()} (${stack.dir})`,
  );
  project.provide("tls", tls);
  project.provide("stack", stack.endpoints);
  project.provide("stackName", stackName);
  return async () => {
    // By its state file first: a broker the chaos suite restarted runs under a new pid recorded there.
    await stopStack(stackName);
    await stack.stop();
    process.off("exit", killAll);
  };
}
