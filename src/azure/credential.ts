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

/**
 * The credential the connector uses for the endpoint and (with an account URL) for Blob Storage.
 * DefaultAzureCredential reads its environment itself (README.md, Credentials): AZURE_FEDERATED_TOKEN_FILE with
 * AZURE_CLIENT_ID and AZURE_TENANT_ID (workload identity), AZURE_CLIENT_SECRET (a service principal), or a managed
 * identity; AZURE_AUTHORITY_HOST names another cloud's authority. MSAL asks the public cloud's instance discovery
 * about an authority host it does not know; disableInstanceDiscovery trusts the host as configured instead (the
 * option @azure/identity offers for private and disconnected authorities).
 */
export function createCredential(settings: CredentialSettings): TokenCredential {
  if (settings.kind === "local-dev") return createLocalDevCredential();
  return new DefaultAzureCredential(
    settings.disableInstanceDiscovery ? { disableInstanceDiscovery: true } : {},
  );
}

/**
 * The start-up check of the credential: a token for `scope` (the endpoint's), so that a wrong secret, an
 * unmatched federated credential or a missing identity stops start-up naming the credential rather than failing
 * the first job. Returns the problems as lines (the credential's own message, which never holds a secret).
 */
export async function credentialProblems(credential: TokenCredential, scope: string): Promise<string[]> {
  try {
    const token = await credential.getToken(scope);
    return token ? [] : [`Entra credential: no token for ${scope}`];
  } catch (error) {
    return [`Entra credential: no token for ${scope}: ${(error as Error).message}`];
  }
}
