/**
 * A stand-in for a Kubernetes cluster's service-account token issuer: what the Azure Workload Identity webhook
 * mounts at AZURE_FEDERATED_TOKEN_FILE is a projected service-account token signed by the cluster's issuer, with
 * `sub` system:serviceaccount:<namespace>:<name> and audience api://AzureADTokenExchange. The local token service
 * trusts this issuer's key the way Entra trusts a cluster's OIDC issuer named in a federated identity credential.
 */
import { createSigningKey, type SigningKey, signJwt } from "./jwt.ts";

/** The audience Entra expects in a federated assertion (the default of a federated identity credential). */
export const TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange";

export interface ServiceAccountTokenIssuer {
  /** The issuer URL (a cluster's OIDC issuer URL). */
  readonly issuer: string;
  readonly key: SigningKey;
  /** `system:serviceaccount:<namespace>:<name>`. */
  subject(namespace: string, name: string): string;
  /** A projected service-account token, as kubelet writes it (default lifetime 1 hour, audience token exchange). */
  issue(options: {
    namespace: string;
    serviceAccount: string;
    audience?: string;
    lifetimeSeconds?: number;
    /** A key other than the issuer's (a forged token, for tests). */
    signWith?: SigningKey;
  }): string;
}

export function createServiceAccountTokenIssuer(
  issuer = "https://oidc.local-cluster.invalid/forecast-connector",
): ServiceAccountTokenIssuer {
  const key = createSigningKey();
  const subject = (namespace: string, name: string) => `system:serviceaccount:${namespace}:${name}`;
  return {
    issuer,
    key,
    subject,
    issue(options) {
      const now = Math.floor(Date.now() / 1000);
      return signJwt(
        {
          aud: [options.audience ?? TOKEN_EXCHANGE_AUDIENCE],
          exp: now + (options.lifetimeSeconds ?? 3600),
          iat: now,
          nbf: now,
          iss: issuer,
          sub: subject(options.namespace, options.serviceAccount),
          "kubernetes.io": {
            namespace: options.namespace,
            serviceaccount: { name: options.serviceAccount },
          },
        },
        options.signWith ?? key,
      );
    },
  };
}
