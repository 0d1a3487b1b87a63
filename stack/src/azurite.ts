import { join } from "node:path";
import { repoRoot } from "./paths.ts";
import { type ServiceProcess, spawnService, waitUntilReady } from "./processes.ts";

/** Azurite's documented, public development account (not a secret: it is the same on every machine). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
const AZURITE_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteServiceOptions {
  readonly port: number;
  /** Folder for Azurite's data and log. */
  readonly dir: string;
  readonly readyTimeoutMs?: number;
}

export interface AzuriteService {
  readonly process: ServiceProcess;
  readonly blobEndpoint: string;
  readonly connectionString: string;
}

export function azuriteConnectionString(blobEndpoint: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${blobEndpoint};`;
}

/** Starts Azurite's blob service from the project's own node_modules. */
export async function startAzurite(options: AzuriteServiceOptions): Promise<AzuriteService> {
  const service = spawnService({
    name: "azurite",
    command: process.execPath,
    args: [
      join(repoRoot, "node_modules", "azurite", "dist", "src", "blob", "main.js"),
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(options.port),
      "--location",
      join(options.dir, "data"),
      "--debug",
      join(options.dir, "azurite-debug.log"),
      "--silent",
      "--loose",
      // The Blob SDK speaks a newer service version than Azurite knows; the calls we make are unchanged.
      "--skipApiVersionCheck",
      "--disableTelemetry",
    ],
    logFile: join(options.dir, "azurite.log"),
  });
  const blobEndpoint = `http://127.0.0.1:${options.port}/${AZURITE_ACCOUNT}`;
  // Any HTTP answer (even 400 for an unsigned request) means the blob service is listening.
  await waitUntilReady(
    service,
    async () => (await fetch(`${blobEndpoint}?comp=list`, { signal: AbortSignal.timeout(2000) })).status > 0,
    options.readyTimeoutMs ?? 30_000,
  );
  return { process: service, blobEndpoint, connectionString: azuriteConnectionString(blobEndpoint) };
}
