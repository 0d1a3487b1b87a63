/**
 * Finds the real services the integration tests talk to, in this order:
 *   1. an existing cluster named by environment variables (FC_TEST_KAFKA_BROKERS, FC_TEST_REGISTRY_URL,
 *      FC_TEST_BLOB_CONNECTION_STRING: all three, or none);
 *   2. containers, when a container runtime answers;
 *   3. the project's local stack (Java + Maven artifacts + Azurite from node_modules), started here and
 *      stopped at the end.
 * A missing prerequisite fails the run with what to install; no test is ever skipped for want of a service.
 */
import "./expectedNoise.ts";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { DEFAULT_KAFKA_VERSION } from "../../stack/src/artifacts.ts";
import { stackDir } from "../../stack/src/paths.ts";
import { isAlive, killProcessGroupNow } from "../../stack/src/processes.ts";
import { freeStackPorts, startStack } from "../../stack/src/stack.ts";
import type { StackEndpoints } from "../../stack/src/types.ts";
import { containerRuntimeAvailable, startContainerStack } from "./containers.ts";

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackEndpoints;
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

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const kafkaVersion = process.env.FC_KAFKA_VERSION || DEFAULT_KAFKA_VERSION;
  const fromEnv = endpointsFromEnv();
  if (fromEnv) {
    project.provide("stack", fromEnv);
    return async () => {};
  }
  if (await containerRuntimeAvailable()) {
    const containers = await startContainerStack(kafkaVersion);
    project.provide("stack", containers.endpoints);
    return containers.stop;
  }
  const started = Date.now();
  const stackName = `test-${process.pid}`;
  pruneFinishedTestStacks();
  const stack = await startStack({
    // Its own folder per run (.stack/test-<pid>/), so parallel runs never stop each other's services.
    name: stackName,
    kafkaVersion,
    ports: await freeStackPorts(),
  });
  // If the run is interrupted before teardown, still take the services down with us.
  const killAll = () => {
    for (const p of stack.processes) killProcessGroupNow(p.pid);
  };
  process.once("exit", killAll);
  console.log(
    `[stack] Kafka ${kafkaVersion}, Apicurio Registry and Azurite started in ${Date.now() - started} ms (${stack.dir})`,
  );
  project.provide("stack", stack.endpoints);
  return async () => {
    await stack.stop();
    process.off("exit", killAll);
  };
}
