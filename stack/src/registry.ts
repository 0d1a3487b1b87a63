import { join } from "node:path";
import { ensureApicurio, findApicurioJar } from "./artifacts.ts";
import { type ServiceProcess, spawnService, waitUntilReady } from "./processes.ts";

export interface RegistryServiceOptions {
  /** Apicurio Registry release (3.x). */
  readonly version: string;
  readonly port: number;
  /** Folder for the registry's log. Storage is in-memory: schemas live as long as the process. */
  readonly dir: string;
  readonly heap?: string;
  readonly readyTimeoutMs?: number;
}

export interface RegistryService {
  readonly process: ServiceProcess;
  /** Base URL of the Confluent-compatible API, the `host` @kafkajs/confluent-schema-registry takes. */
  readonly confluentApiUrl: string;
}

/** Starts Apicurio Registry (in-memory storage) and waits until its Confluent-compatible API answers. */
export async function startRegistry(options: RegistryServiceOptions): Promise<RegistryService> {
  const home = ensureApicurio(options.version);
  const jar = findApicurioJar(home);
  if (!jar) throw new Error(`Apicurio Registry ${options.version}: runnable jar missing from ${home}`);
  const service = spawnService({
    name: `apicurio-registry ${options.version}`,
    command: "java",
    args: [
      `-Xmx${options.heap ?? "384m"}`,
      `-Dquarkus.http.port=${options.port}`,
      "-Dquarkus.http.host=127.0.0.1",
      // Quiet start-up and no outbound calls: this machine has no internet.
      "-Dquarkus.log.level=WARN",
      "-Dquarkus.analytics.disabled=true",
      "-jar",
      jar,
    ],
    logFile: join(options.dir, "registry.log"),
    cwd: options.dir,
  });
  const base = `http://127.0.0.1:${options.port}`;
  const confluentApiUrl = `${base}/apis/ccompat/v7`;
  await waitUntilReady(
    service,
    async () => (await fetch(`${confluentApiUrl}/subjects`, { signal: AbortSignal.timeout(2000) })).ok,
    options.readyTimeoutMs ?? 120_000,
  );
  return { process: service, confluentApiUrl };
}
