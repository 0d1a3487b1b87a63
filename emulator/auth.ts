/**
 * Bearer-token validation as an Entra-protected Azure API does it: the RS256 signature against the authority's
 * published keys (its OpenID configuration's jwks_uri, fetched over HTTPS, cached, fetched again when a token names
 * a key id not seen yet), the audience of the API called (data plane: https://ml.azure.com; ARM:
 * https://management.azure.com), the issuer, and the lifetime with a small clock skew. A refusal says why, in the
 * words of the `error_description` of the service's `WWW-Authenticate` challenge.
 */
import { createPublicKey, type KeyObject, verify } from "node:crypto";

/** Which API a request is for: the audience its token must have. */
export type TokenApi = "data-plane" | "arm";

export type AuthDecision = { readonly ok: true } | { readonly ok: false; readonly description: string };

export interface Authenticator {
  authenticate(token: string, api: TokenApi): Promise<AuthDecision>;
}

export interface EntraAuthOptions {
  /** The authority, e.g. https://login.microsoftonline.com/<tenant> (locally the token service's). */
  readonly authority: string;
  /** The tenant whose tokens are accepted (`tid`). */
  readonly tenantId: string;
  /** Accepted `iss`. Default https://sts.windows.net/<tenant>/ (v1 access tokens) and <authority>/v2.0. */
  readonly issuers?: readonly string[];
  /** Default https://ml.azure.com (Azure ML's data-plane audience). */
  readonly dataPlaneAudience?: string;
  /** Default https://management.azure.com. */
  readonly armAudience?: string;
  /** Tolerated clock difference for exp and nbf, in seconds. Default 5 (Azure's own validators allow 300). */
  readonly clockSkewSeconds?: number;
  /**
   * Also accept the connector's local development tokens (FC_AZURE_CREDENTIAL=local-dev: `local-dev.<uuid>`,
   * unsigned), so the demo runs without a token service. Default false.
   */
  readonly allowLocalDevTokens?: boolean;
  /** Fetch used for discovery and keys (tests). Default: the global fetch, trusting NODE_EXTRA_CA_CERTS. */
  readonly fetch?: typeof fetch;
}

interface Jwk {
  readonly kid?: string;
  readonly kty?: string;
  readonly n?: string;
  readonly e?: string;
}

const LOCAL_DEV_TOKEN = /^local-dev\.[0-9a-f-]{36}$/;
const sameAudience = (a: string, b: string) => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");

/** Validates Entra access tokens against an authority's keys. */
export function createEntraAuthenticator(options: EntraAuthOptions): Authenticator {
  const authority = options.authority.replace(/\/+$/, "");
  if (!authority.startsWith("https://")) {
    throw new RangeError(`auth.authority must be an https URL, got ${JSON.stringify(options.authority)}`);
  }
  const issuers = options.issuers ?? [`https://sts.windows.net/${options.tenantId}/`, `${authority}/v2.0`];
  const audiences: Record<TokenApi, string> = {
    "data-plane": options.dataPlaneAudience ?? "https://ml.azure.com",
    arm: options.armAudience ?? "https://management.azure.com",
  };
  const skew = options.clockSkewSeconds ?? 5;
  const doFetch = options.fetch ?? fetch;
  let keys = new Map<string, KeyObject>();
  let loading: Promise<void> | undefined;

  const loadKeys = (): Promise<void> => {
    loading ??= (async () => {
      const configuration = (await (
        await doFetch(`${authority}/v2.0/.well-known/openid-configuration`)
      ).json()) as { jwks_uri?: string };
      if (typeof configuration.jwks_uri !== "string")
        throw new Error(`${authority}: no jwks_uri in its OpenID configuration`);
      const jwks = (await (await doFetch(configuration.jwks_uri)).json()) as { keys?: Jwk[] };
      const next = new Map<string, KeyObject>();
      for (const jwk of jwks.keys ?? []) {
        if (jwk.kty === "RSA" && jwk.kid && jwk.n && jwk.e) {
          next.set(jwk.kid, createPublicKey({ key: { kty: "RSA", n: jwk.n, e: jwk.e }, format: "jwk" }));
        }
      }
      keys = next;
    })().finally(() => {
      loading = undefined;
    });
    return loading;
  };

  const keyFor = async (kid: string): Promise<KeyObject | undefined> => {
    if (!keys.has(kid)) await loadKeys();
    return keys.get(kid);
  };

  return {
    async authenticate(token, api) {
      if (options.allowLocalDevTokens === true && LOCAL_DEV_TOKEN.test(token)) return { ok: true };
      const parts = token.split(".");
      if (parts.length !== 3) return { ok: false, description: "The token is not a JWT" };
      const [h, p, s] = parts as [string, string, string];
      let header: { alg?: unknown; kid?: unknown };
      let claims: Record<string, unknown>;
      try {
        header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
        claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
      } catch {
        return { ok: false, description: "The token is not a JWT" };
      }
      if (header.alg !== "RS256" || typeof header.kid !== "string") {
        return { ok: false, description: "The token's signing algorithm is not RS256 or it names no key" };
      }
      const key = await keyFor(header.kid);
      if (key === undefined) return { ok: false, description: "The token is signed by an unknown key" };
      if (!verify("RSA-SHA256", Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url"))) {
        return { ok: false, description: "The token's signature is invalid" };
      }
      const aud = claims.aud;
      if (typeof aud !== "string" || !sameAudience(aud, audiences[api])) {
        return { ok: false, description: `The audience '${String(aud)}' is invalid` };
      }
      if (typeof claims.iss !== "string" || !issuers.includes(claims.iss)) {
        return { ok: false, description: `The issuer '${String(claims.iss)}' is invalid` };
      }
      if (claims.tid !== undefined && claims.tid !== options.tenantId) {
        return { ok: false, description: "The token is from another tenant" };
      }
      const now = Date.now() / 1000;
      if (typeof claims.exp !== "number" || now > claims.exp + skew) {
        return { ok: false, description: "The token is expired" };
      }
      if (typeof claims.nbf === "number" && now < claims.nbf - skew) {
        return { ok: false, description: "The token is not yet valid" };
      }
      return { ok: true };
    },
  };
}

/** Accepts what `accept` says yes to: the emulator's default (any non-empty token) and tests. */
export function predicateAuthenticator(accept: (token: string, api: TokenApi) => boolean): Authenticator {
  return {
    async authenticate(token, api) {
      return accept(token, api) ? { ok: true } : { ok: false, description: "The bearer token was rejected" };
    },
  };
}

/**
 * The challenge of a 401, as Azure APIs send it (RFC 6750): the authority to get a token from and, when a token
 * was presented and refused, error="invalid_token" with why.
 */
export function bearerChallenge(authority: string | undefined, description?: string): string {
  const parts = [
    ...(authority === undefined ? [] : [`authorization_uri="${authority}"`]),
    ...(description === undefined
      ? []
      : ['error="invalid_token"', `error_description="${description.replaceAll('"', "'")}"`]),
  ];
  return parts.length === 0 ? "Bearer" : `Bearer ${parts.join(", ")}`;
}
