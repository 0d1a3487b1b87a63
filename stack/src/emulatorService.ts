import { join } from "node:path";
import { repoRoot } from "./paths.ts";
import { type ServiceProcess, spawnService, waitUntilReady } from "./processes.ts";

export interface EmulatorProcessOptions {
  readonly port: number;
  readonly blobConnectionString: string;
  /** Folder for the emulator's log. */
  readonly dir: string;
  /** Extra EMULATOR_* settings (cold start, run time, faults), see emulator/README.md. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface EmulatorProcess {
  readonly process: ServiceProcess;
  readonly scoringUri: string;
}

/** Runs the batch-endpoint emulator (emulator/main.ts) as its own process, for people and the demo. */
export async function startEmulatorProcess(options: EmulatorProcessOptions): Promise<EmulatorProcess> {
  const service = spawnService({
    name: "batch-endpoint-emulator",
    command: process.execPath,
    args: [join(repoRoot, "emulator", "main.ts")],
    logFile: join(options.dir, "emulator.log"),
    env: {
      ...process.env,
      EMULATOR_HOST: "127.0.0.1",
      EMULATOR_PORT: String(options.port),
      EMULATOR_BLOB_CONNECTION_STRING: options.blobConnectionString,
      ...options.env,
    },
  });
  const baseUrl = `http://127.0.0.1:${options.port}`;
  await waitUntilReady(
    service,
    async () => (await fetch(`${baseUrl}/_emulator/health`, { signal: AbortSignal.timeout(2000) })).ok,
    30_000,
  );
  return { process: service, scoringUri: `${baseUrl}/jobs` };
}
