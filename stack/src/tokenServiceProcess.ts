import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./paths.ts";
import { type ServiceProcess, spawnService, waitUntilReady } from "./processes.ts";

export interface TokenServiceProcessOptions {
  readonly port: number;
  /** Folder for its log, the client secret file and the federated token file. */
  readonly dir: string;
  readonly tls: { readonly certFile: string; readonly keyFile: string };
  readonly tokenLifetimeSeconds?: number;
}

/** Where the local token service listens and what a connector needs to use it (files, never the values). */
export interface LocalIdentity {
  /** AZURE_AUTHORITY_HOST. */
  readonly authorityHost: string;
  readonly tenantId: string;
  readonly clientId: string;
  /** Holds AZURE_CLIENT_SECRET's value (owner-readable only). */
  readonly clientSecretFile: string;
  /** AZURE_FEDERATED_TOKEN_FILE: a service-account token the service exchanges (valid 24 hours). */
  readonly federatedTokenFile: string;
}

/** Runs the token service (tokenServiceMain.ts) as its own process, for people (`npm run stack:start -- --identity`). */
export async function startTokenServiceProcess(
  options: TokenServiceProcessOptions,
): Promise<{ process: ServiceProcess; identity: LocalIdentity }> {
  const logFile = join(options.dir, "token-service.log");
  const service = spawnService({
    name: "token-service",
    command: process.execPath,
    args: [join(repoRoot, "stack", "src", "tokenServiceMain.ts")],
    logFile,
    env: {
      ...process.env,
      TOKEN_SERVICE_DIR: options.dir,
      TOKEN_SERVICE_PORT: String(options.port),
      TOKEN_SERVICE_CERT_FILE: options.tls.certFile,
      TOKEN_SERVICE_KEY_FILE: options.tls.keyFile,
      TOKEN_SERVICE_LIFETIME_SECONDS: String(options.tokenLifetimeSeconds ?? 3600),
    },
  });
  let identity: LocalIdentity | undefined;
  await waitUntilReady(
    service,
    async () => {
      if (!existsSync(logFile)) return false;
      for (const line of readFileSync(logFile, "utf8").split("\n")) {
        if (!line.startsWith("{")) continue;
        const event = JSON.parse(line) as { event?: string } & LocalIdentity;
        if (event.event === "listening") {
          const { authorityHost, tenantId, clientId, clientSecretFile, federatedTokenFile } = event;
          identity = { authorityHost, tenantId, clientId, clientSecretFile, federatedTokenFile };
          return true;
        }
      }
      return false;
    },
    30_000,
  );
  return { process: service, identity: identity as LocalIdentity };
}
