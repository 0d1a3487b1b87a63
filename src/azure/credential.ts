import { randomUUID } from "node:crypto";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { DefaultAzureCredential } from "@azure/identity";
import type { CredentialSettings } from "./settings.ts";

/**
 * A development-only credential for the local batch-endpoint emulator: an opaque, unsigned token that no
 * Entra-protected service accepts. Configuration refuses it unless the scoring URI is on loopback.
 */
export function createLocalDevCredential(lifetimeMs = 60 * 60 * 1000): TokenCredential {
  return {
    async getToken(): Promise<AccessToken> {
      return { token: `local-dev.${randomUUID()}`, expiresOnTimestamp: Date.now() + lifetimeMs };
    },
  };
}

/** The credential the connector uses for the endpoint and (with an account URL) for Blob Storage. */
export function createCredential(settings: CredentialSettings): TokenCredential {
  return settings.kind === "local-dev" ? createLocalDevCredential() : new DefaultAzureCredential();
}
