import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { repoRoot } from "./paths.ts";
import { type ServiceProcess, spawnService, waitUntilReady } from "./processes.ts";

/** Azurite's documented, public development account (not a secret: it is the same on every machine). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteServiceOptions {
  readonly port: number;
  /** Folder for Azurite's data and log. */
  readonly dir: string;
  readonly readyTimeoutMs?: number;
  /**
   * Serve HTTPS with this certificate (and its CA, for the readiness check), and accept Entra bearer tokens
   * (`--oauth basic`: Azurite checks a token's lifetime, issuer https://sts.windows.net/... and audience
   * https://storage.azure.com, not its signature). The account key keeps working beside it.
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

export interface AzuriteService {
  readonly process: ServiceProcess;
  readonly blobEndpoint: string;
  readonly connectionString: string;
}

export function azuriteConnectionString(blobEndpoint: string): string {
  const protocol = blobEndpoint.startsWith("https:") ? "https" : "http";
  return `DefaultEndpointsProtocol=${protocol};AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${blobEndpoint};`;
}

/** Any HTTPS answer (even 400 for an unsigned request) means the blob service is listening. */
function httpsAnswers(url: string, ca: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) > 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** Starts Azurite's blob service from the project's own node_modules. */
export async function startAzurite(options: AzuriteServiceOptions): Promise<AzuriteService> {
  const tls = options.tls;
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
      ...(tls ? ["--cert", tls.certFile, "--key", tls.keyFile, "--oauth", "basic"] : []),
    ],
    logFile: join(options.dir, "azurite.log"),
  });
  const blobEndpoint = `${tls ? "https" : "http"}://127.0.0.1:${options.port}/${AZURITE_ACCOUNT}`;
  const ca = tls ? readFileSync(tls.caFile, "utf8") : undefined;
  await waitUntilReady(
    service,
    async () =>
      ca !== undefined
        ? httpsAnswers(`${blobEndpoint}?comp=list`, ca)
        : (await fetch(`${blobEndpoint}?comp=list`, { signal: AbortSignal.timeout(2000) })).status > 0,
    options.readyTimeoutMs ?? 30_000,
  );
  return { process: service, blobEndpoint, connectionString: azuriteConnectionString(blobEndpoint) };
}
