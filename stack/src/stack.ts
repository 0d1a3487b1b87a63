import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  DEFAULT_APICURIO_VERSION,
  DEFAULT_KAFKA_VERSION,
  ensureApicurio,
  ensureKafkaJars,
} from "./artifacts.ts";
import { startAzurite } from "./azurite.ts";
import { ensureServerCertificates } from "./certificates.ts";
import { startEmulatorProcess } from "./emulatorService.ts";
import { startKafka } from "./kafka.ts";
import { stackDir } from "./paths.ts";
import { freePort, isAlive, type ServiceProcess, stopProcessGroup } from "./processes.ts";
import { startRegistry } from "./registry.ts";
import { type LocalIdentity, startTokenServiceProcess } from "./tokenServiceProcess.ts";
import type { StackEndpoints } from "./types.ts";

export interface StackPorts {
  readonly kafka: number;
  readonly kafkaController: number;
  readonly registry: number;
  readonly azurite: number;
  readonly emulator: number;
  /** The token service's port (used with `identity` and `withEmulator`). */
  readonly tokenService?: number;
}

export interface StartStackOptions {
  /** Names the runtime folder .stack/<name>/ (data, logs, state.json). Default "local". */
  readonly name?: string;
  /** Default DEFAULT_KAFKA_VERSION; a 3.9.y release selects the 3.9 line. */
  readonly kafkaVersion?: string;
  readonly apicurioVersion?: string;
  readonly ports: StackPorts;
  /** Also run the batch-endpoint emulator as a process (for people and the demo; tests start their own). */
  readonly withEmulator?: boolean;
  /** EMULATOR_* settings for that process (cold start, run time, faults): see emulator/README.md. */
  readonly emulatorEnv?: Readonly<Record<string, string>>;
  /**
   * Real identity: a CA and a server certificate in <dir>/tls, Azurite over HTTPS accepting Entra tokens
   * (`--oauth basic`; the account key still works), and, with the emulator, the local token service as a process
   * and the emulator validating its tokens (still accepting the demo's local-dev tokens). Clients must trust the
   * CA: NODE_EXTRA_CA_CERTS=<caFile>. Default false (plain http, as the demo and the benchmarks use it).
   */
  readonly identity?: boolean;
}

export interface LocalStackEndpoints extends StackEndpoints {
  /** The emulator's scoring URI, when it was started. */
  readonly emulatorScoringUri?: string;
  /** The token service, when it was started (identity with the emulator). */
  readonly identity?: LocalIdentity;
}

export interface RunningStack {
  readonly endpoints: LocalStackEndpoints;
  readonly processes: readonly ServiceProcess[];
  readonly dir: string;
  stop(): Promise<void>;
}

interface StateFile {
  readonly endpoints: LocalStackEndpoints;
  readonly processes: ReadonlyArray<{ name: string; pid: number; logFile: string }>;
  readonly startedAt: string;
}

/** Free ports for every service: for stacks that must not collide with another (tests, demo, benchmarks). */
export async function freeStackPorts(): Promise<StackPorts> {
  return {
    kafka: await freePort(),
    kafkaController: await freePort(),
    registry: await freePort(),
    azurite: await freePort(),
    emulator: await freePort(),
  };
}

export const DEFAULT_PORTS: StackPorts = {
  kafka: 39092,
  kafkaController: 39093,
  registry: 38081,
  azurite: 30000,
  emulator: 38090,
  tokenService: 38443,
};

/**
 * Starts Kafka, the schema registry and Azurite (and optionally the emulator) as child processes,
 * recording their pids in .stack/<name>/state.json so `stopStack` can end them from any process.
 */
export async function startStack(options: StartStackOptions): Promise<RunningStack> {
  const name = options.name ?? "local";
  const kafkaVersion = options.kafkaVersion ?? DEFAULT_KAFKA_VERSION;
  const apicurioVersion = options.apicurioVersion ?? DEFAULT_APICURIO_VERSION;
  const dir = stackDir(name);
  await stopStack(name); // a previous run of the same name must not linger on our ports
  rmSync(dir, { recursive: true, force: true });
  for (const sub of ["kafka", "registry", "azurite", "emulator", "identity"])
    mkdirSync(join(dir, sub), { recursive: true });
  const tls = options.identity ? ensureServerCertificates(join(dir, "tls")) : undefined;

  // Fetch first (synchronous Maven runs), then start every service at once.
  ensureKafkaJars(kafkaVersion);
  ensureApicurio(apicurioVersion);

  const started: ServiceProcess[] = [];
  const record = <T extends { process: ServiceProcess }>(service: T): T => {
    started.push(service.process);
    return service;
  };
  const stop = async () => {
    await Promise.all(started.map((p) => stopProcessGroup(p.pid)));
    rmSync(join(dir, "state.json"), { force: true });
  };
  try {
    // allSettled, not all: when one service fails, the others must still be recorded so they get stopped.
    const results = await Promise.allSettled([
      startKafka({
        version: kafkaVersion,
        port: options.ports.kafka,
        controllerPort: options.ports.kafkaController,
        dir: join(dir, "kafka"),
      }).then(record),
      startRegistry({
        version: apicurioVersion,
        port: options.ports.registry,
        dir: join(dir, "registry"),
      }).then(record),
      startAzurite({ port: options.ports.azurite, dir: join(dir, "azurite"), ...(tls ? { tls } : {}) }).then(
        record,
      ),
    ] as const);
    const failure = results.find((r) => r.status === "rejected");
    if (failure) throw failure.reason;
    const [kafka, registry, azurite] = results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [
      Awaited<ReturnType<typeof startKafka>>,
      Awaited<ReturnType<typeof startRegistry>>,
      Awaited<ReturnType<typeof startAzurite>>,
    ];
    let emulatorScoringUri: string | undefined;
    let identity: LocalIdentity | undefined;
    if (options.withEmulator) {
      if (tls) {
        identity = record(
          await startTokenServiceProcess({
            port: options.ports.tokenService ?? 0,
            dir: join(dir, "identity"),
            tls,
          }),
        ).identity;
      }
      const emulator = record(
        await startEmulatorProcess({
          port: options.ports.emulator,
          blobConnectionString: azurite.connectionString,
          dir: join(dir, "emulator"),
          env: {
            ...(tls && identity
              ? {
                  NODE_EXTRA_CA_CERTS: tls.caFile,
                  EMULATOR_AUTH_AUTHORITY: `${identity.authorityHost}/${identity.tenantId}`,
                  EMULATOR_AUTH_TENANT_ID: identity.tenantId,
                  EMULATOR_AUTH_ALLOW_LOCAL_DEV: "true",
                }
              : {}),
            ...options.emulatorEnv,
          },
        }),
      );
      emulatorScoringUri = emulator.scoringUri;
    }
    const endpoints: LocalStackEndpoints = {
      kafkaBrokers: [kafka.bootstrap],
      kafkaVersion,
      registryUrl: registry.confluentApiUrl,
      blobConnectionString: azurite.connectionString,
      blobEndpoint: azurite.blobEndpoint,
      ...(tls ? { blobOAuth: true, caFile: tls.caFile } : {}),
      ...(emulatorScoringUri ? { emulatorScoringUri } : {}),
      ...(identity ? { identity } : {}),
    };
    const state: StateFile = {
      endpoints,
      processes: started.map(({ name, pid, logFile }) => ({ name, pid, logFile })),
      startedAt: new Date().toISOString(),
    };
    writeFileSync(join(dir, "state.json"), `${JSON.stringify(state, null, 2)}\n`);
    return { endpoints, processes: started, dir, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export function readStackState(name: string): StateFile | undefined {
  const file = join(stackDir(name), "state.json");
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as StateFile;
}

/** Stops every process recorded for the named stack; returns the names of those that were running. */
export async function stopStack(name: string): Promise<string[]> {
  const state = readStackState(name);
  if (!state) return [];
  const running = state.processes.filter((p) => isAlive(p.pid));
  await Promise.all(running.map((p) => stopProcessGroup(p.pid)));
  rmSync(join(stackDir(name), "state.json"), { force: true });
  return running.map((p) => p.name);
}

/** Names of every stack that has a state file (the person's "local" one and those of test runs). */
export function listStacks(): string[] {
  const root = stackDir("");
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((name) => existsSync(join(root, name, "state.json")));
}

/**
 * Restarts the named stack's Kafka broker on its own data (a broker restart, for the chaos suite): stops it
 * gracefully, starts it again on the same ports and storage, and records the new process in the state file.
 */
export async function restartStackKafka(name: string, downMs = 0): Promise<void> {
  const state = readStackState(name);
  const kafka = state?.processes.find((p) => p.name.startsWith("kafka "));
  if (!state || !kafka) throw new Error(`stack ${name} has no Kafka broker to restart`);
  await stopProcessGroup(kafka.pid);
  if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
  const dir = join(stackDir(name), "kafka");
  const port = Number(state.endpoints.kafkaBrokers[0]?.split(":").pop());
  const properties = readFileSync(join(dir, "server.properties"), "utf8");
  const controllerPort = Number(/CONTROLLER:\/\/127\.0\.0\.1:(\d+)/.exec(properties)?.[1]);
  const restarted = await startKafka({
    version: state.endpoints.kafkaVersion,
    port,
    controllerPort,
    dir,
    keepData: true,
  });
  const processes = state.processes.map((p) =>
    p.pid === kafka.pid
      ? { name: p.name, pid: restarted.process.pid, logFile: restarted.process.logFile }
      : p,
  );
  writeFileSync(join(stackDir(name), "state.json"), `${JSON.stringify({ ...state, processes }, null, 2)}\n`);
}
