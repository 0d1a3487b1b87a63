/**
 * An Entra-ID-compatible token service for the local stack and the tests, so that @azure/identity itself (the
 * production credential path) runs end to end without reaching Microsoft: HTTPS, OpenID discovery, a JWKS and the
 * v2.0 token endpoint with the client-credentials grant, by client secret (EnvironmentCredential) or by a federated
 * client assertion (WorkloadIdentityCredential, AZURE_FEDERATED_TOKEN_FILE). Access tokens are RS256 JWTs shaped
 * like the v1 access tokens Entra issues for Azure ML, Azure Resource Manager and Storage (those resources accept
 * v1 tokens): iss https://sts.windows.net/<tenant>/, aud the resource, tid, oid/sub, appid, iat/nbf/exp.
 * Refusals carry Entra's error body (error, error_description "AADSTS...", error_codes, trace_id, correlation_id,
 * timestamp). Test stand-in only: see README.md (Credentials).
 */
import { type KeyObject, randomUUID } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import {
  createSigningKey,
  decodeJwt,
  type JwtClaims,
  publicJwk,
  type SigningKey,
  signJwt,
  verifyRs256,
} from "./jwt.ts";
import { TOKEN_EXCHANGE_AUDIENCE } from "./kubernetesIssuer.ts";

/** The resources a `<resource>/.default` scope may name; anything else is refused with AADSTS500011. */
export const KNOWN_RESOURCES = [
  "https://ml.azure.com",
  "https://management.azure.com",
  "https://storage.azure.com",
] as const;

export interface FederatedCredential {
  /** The cluster's OIDC issuer URL (the `iss` of the service-account token). */
  readonly issuer: string;
  /** `system:serviceaccount:<namespace>:<name>`. */
  readonly subject: string;
  /** Default api://AzureADTokenExchange. */
  readonly audience?: string;
}

export interface TokenServiceClient {
  readonly clientId: string;
  /** Accepted as client_secret. */
  readonly secret?: string;
  /** Accepted client assertions (workload identity). */
  readonly federated?: readonly FederatedCredential[];
  /** The service principal's object id (`oid`, `sub`). Default: a random UUID. */
  readonly objectId?: string;
}

export interface TokenServiceOptions {
  readonly tenantId: string;
  readonly clients: readonly TokenServiceClient[];
  /** HTTPS certificate and key (PEM files); ensureServerCertificates (certificates.ts) makes them. */
  readonly tls: { readonly certFile: string; readonly keyFile: string };
  /** Public keys of the OIDC issuers a federated credential may name, by issuer URL. */
  readonly trustedIssuers?: Readonly<Record<string, KeyObject>>;
  /** Lifetime of issued access tokens, in seconds. Default 3600 (Entra's default is 60-90 minutes). */
  readonly tokenLifetimeSeconds?: number;
  /** Default "127.0.0.1". */
  readonly host?: string;
  /** Default 0 (a free port). */
  readonly port?: number;
}

export interface IssuedToken {
  readonly token: string;
  /** The resource (`aud`). */
  readonly resource: string;
  readonly clientId: string;
  readonly grant: "client_secret" | "client_assertion";
}

export interface TokenRefusal {
  readonly clientId: string;
  readonly code: number;
}

export interface TokenService {
  /** https://127.0.0.1:<port>: what AZURE_AUTHORITY_HOST is set to. */
  readonly authorityHost: string;
  /** `${authorityHost}/${tenantId}`. */
  readonly authority: string;
  readonly tenantId: string;
  /** The `iss` of its access tokens: https://sts.windows.net/<tenant>/. */
  readonly accessTokenIssuer: string;
  readonly jwksUri: string;
  /** Every access token issued so far, in order (for the tests' secret grep and assertions). */
  issued(): readonly IssuedToken[];
  /** Tokens issued for a resource (or all), e.g. issuedCount("https://ml.azure.com"). */
  issuedCount(resource?: string): number;
  /** Requests refused, with their AADSTS code. */
  refusals(): readonly TokenRefusal[];
  /** A new signing key; tokens are signed with it from now on, the old key stays in the JWKS. */
  rotateSigningKey(): void;
  close(): Promise<void>;
}

const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const OIDC_SCOPES = new Set(["openid", "profile", "offline_access", "email"]);

class EntraError extends Error {
  readonly status: number;
  readonly error: string;
  readonly code: number;
  constructor(status: number, error: string, code: number, description: string) {
    super(`AADSTS${code}: ${description}`);
    this.status = status;
    this.error = error;
    this.code = code;
  }
}

export async function startTokenService(options: TokenServiceOptions): Promise<TokenService> {
  const { tenantId } = options;
  const lifetime = options.tokenLifetimeSeconds ?? 3600;
  if (!Number.isInteger(lifetime) || lifetime < 1) {
    throw new RangeError(`tokenLifetimeSeconds must be a positive integer, got ${lifetime}`);
  }
  const clients = new Map(
    options.clients.map((c) => [c.clientId, { ...c, objectId: c.objectId ?? randomUUID() }]),
  );
  const keys: SigningKey[] = [createSigningKey()];
  const issued: IssuedToken[] = [];
  const refusals: TokenRefusal[] = [];
  const accessTokenIssuer = `https://sts.windows.net/${tenantId}/`;
  let authorityHost = "";

  const openIdConfiguration = () => {
    const authority = `${authorityHost}/${tenantId}`;
    return {
      token_endpoint: `${authority}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${authority}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: `${authority}/v2.0`,
      request_uri_parameter_supported: false,
      authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${authority}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
      claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
      tenant_region_scope: null,
      cloud_instance_name: "local",
      cloud_graph_host_name: "graph.local",
      msgraph_host: "graph.local",
    };
  };

  /** The client a secret or an assertion proves, or an EntraError as Entra words it. */
  const authenticateClient = (form: URLSearchParams, basic: { id: string; secret: string } | undefined) => {
    const clientId = form.get("client_id") ?? basic?.id ?? "";
    if (clientId === "") {
      throw new EntraError(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'client_id'.",
      );
    }
    const client = clients.get(clientId);
    if (client === undefined) {
      throw new EntraError(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      );
    }
    const secret = form.get("client_secret") ?? basic?.secret;
    const assertion = form.get("client_assertion");
    if (secret !== undefined && secret !== null) {
      if (client.secret === undefined || secret !== client.secret) {
        throw new EntraError(
          401,
          "invalid_client",
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
        );
      }
      return { client, grant: "client_secret" as const };
    }
    if (assertion !== null) {
      if (form.get("client_assertion_type") !== CLIENT_ASSERTION_TYPE) {
        throw new EntraError(
          400,
          "invalid_request",
          700021,
          "Client assertion application identifier doesn't match 'client_assertion_type'.",
        );
      }
      checkAssertion(assertion, client.federated ?? []);
      return { client, grant: "client_assertion" as const };
    }
    throw new EntraError(
      401,
      "invalid_client",
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
  };

  const checkAssertion = (assertion: string, federated: readonly FederatedCredential[]) => {
    const jwt = decodeJwt(assertion);
    if (jwt === undefined) {
      throw new EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.");
    }
    const { iss, sub, aud, exp, nbf } = jwt.claims as {
      iss?: unknown;
      sub?: unknown;
      aud?: unknown;
      exp?: unknown;
      nbf?: unknown;
    };
    const issuerKey = typeof iss === "string" ? options.trustedIssuers?.[iss] : undefined;
    const matching = federated.filter((f) => f.issuer === iss);
    if (issuerKey === undefined || matching.length === 0) {
      throw new EntraError(
        400,
        "invalid_client",
        700211,
        `No matching federated identity record found for presented assertion issuer '${String(iss)}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      );
    }
    if (!verifyRs256(jwt, issuerKey)) {
      throw new EntraError(401, "invalid_client", 700027, "Client assertion failed signature validation.");
    }
    const record = matching.find((f) => f.subject === sub);
    if (record === undefined) {
      throw new EntraError(
        400,
        "invalid_client",
        700213,
        `No matching federated identity record found for presented assertion subject '${String(sub)}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      );
    }
    const audiences = Array.isArray(aud) ? aud : [aud];
    const expected = record.audience ?? TOKEN_EXCHANGE_AUDIENCE;
    if (!audiences.includes(expected)) {
      throw new EntraError(
        400,
        "invalid_client",
        700212,
        `No matching federated identity record found for presented assertion audience '${audiences.join(",")}'.`,
      );
    }
    const now = Date.now() / 1000;
    if (typeof exp !== "number" || exp <= now || (typeof nbf === "number" && nbf > now + 300)) {
      throw new EntraError(
        400,
        "invalid_client",
        700024,
        "Client assertion is not within its valid time range.",
      );
    }
  };

  const resourceOf = (scope: string | null): string => {
    const scopes = (scope ?? "").split(/\s+/).filter((s) => s !== "" && !OIDC_SCOPES.has(s));
    if (scopes.length !== 1 || !scopes[0]?.endsWith("/.default")) {
      throw new EntraError(
        400,
        "invalid_scope",
        1002012,
        `The provided value for scope ${scopes.join(" ") || "(none)"} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const resource = (scopes[0] as string).slice(0, -"/.default".length).replace(/\/+$/, "");
    if (!(KNOWN_RESOURCES as readonly string[]).includes(resource)) {
      throw new EntraError(
        400,
        "invalid_resource",
        500011,
        `The resource principal named ${resource} was not found in the tenant named ${tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      );
    }
    return resource;
  };

  const token = async (req: IncomingMessage, res: ServerResponse) => {
    const form = new URLSearchParams(await readBody(req));
    const basic = basicAuth(req.headers.authorization);
    let clientId = form.get("client_id") ?? basic?.id ?? "";
    try {
      if (form.get("grant_type") !== "client_credentials") {
        throw new EntraError(
          400,
          "unsupported_grant_type",
          70003,
          `The app requested an unsupported grant type '${form.get("grant_type") ?? ""}'.`,
        );
      }
      const { client, grant } = authenticateClient(form, basic);
      clientId = client.clientId;
      const resource = resourceOf(form.get("scope"));
      const now = Math.floor(Date.now() / 1000);
      const claims: JwtClaims = {
        aud: resource,
        iss: accessTokenIssuer,
        iat: now,
        nbf: now,
        exp: now + lifetime,
        aio: randomUUID(),
        appid: client.clientId,
        azp: client.clientId,
        // 1: authenticated by a secret, 2: by a certificate or an assertion.
        appidacr: grant === "client_secret" ? "1" : "2",
        idp: accessTokenIssuer,
        idtyp: "app",
        oid: client.objectId,
        sub: client.objectId,
        tid: tenantId,
        uti: randomUUID().replaceAll("-", ""),
        ver: "1.0",
      };
      const accessToken = signJwt(claims, keys[keys.length - 1] as SigningKey);
      issued.push({ token: accessToken, resource, clientId: client.clientId, grant });
      json(res, 200, {
        token_type: "Bearer",
        expires_in: lifetime,
        ext_expires_in: lifetime,
        access_token: accessToken,
      });
    } catch (error) {
      if (!(error instanceof EntraError)) throw error;
      refusals.push({ clientId, code: error.code });
      const traceId = randomUUID();
      const correlationId = req.headers["client-request-id"]?.toString() ?? randomUUID();
      const timestamp = new Date()
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z");
      json(res, error.status, {
        error: error.error,
        error_description: `${error.message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
        error_codes: [error.code],
        timestamp,
        trace_id: traceId,
        correlation_id: correlationId,
        error_uri: `${authorityHost}/error?code=${error.code}`,
      });
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "https://token-service").pathname;
    const match = /^\/([^/]+)\/(.+)$/.exec(path);
    const tenant = match?.[1];
    const rest = match?.[2];
    if (tenant !== undefined && tenant !== tenantId && tenant !== "organizations" && tenant !== "common") {
      return json(res, 400, {
        error: "invalid_tenant",
        error_description: `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
        error_codes: [90002],
      });
    }
    if (req.method === "GET" && rest === "v2.0/.well-known/openid-configuration") {
      return json(res, 200, openIdConfiguration());
    }
    if (req.method === "GET" && rest === "discovery/v2.0/keys") {
      return json(res, 200, { keys: keys.map(publicJwk) });
    }
    if (req.method === "POST" && rest === "oauth2/v2.0/token") return token(req, res);
    json(res, 404, { error: "not_found", error_description: `no route for ${req.method} ${path}` });
  };

  const server: Server = createServer(
    { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
    (req, res) => {
      handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) json(res, 500, { error: "server_error", error_description: String(error) });
      });
    },
  );
  server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  await once(server, "listening");
  const address = server.address() as AddressInfo;
  authorityHost = `https://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port}`;

  return {
    authorityHost,
    authority: `${authorityHost}/${tenantId}`,
    tenantId,
    accessTokenIssuer,
    jwksUri: `${authorityHost}/${tenantId}/discovery/v2.0/keys`,
    issued: () => [...issued],
    issuedCount: (resource) =>
      resource === undefined ? issued.length : issued.filter((t) => t.resource === resource).length,
    refusals: () => [...refusals],
    rotateSigningKey: () => {
      keys.push(createSigningKey());
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function basicAuth(header: string | undefined): { id: string; secret: string } | undefined {
  const encoded = /^Basic\s+(\S+)$/i.exec(header ?? "")?.[1];
  if (encoded === undefined) return undefined;
  const text = Buffer.from(encoded, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  return {
    id: decodeURIComponent(text.slice(0, colon)),
    secret: decodeURIComponent(text.slice(colon + 1)),
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 256 * 1024) throw new Error("request body too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store, no-cache",
  });
  res.end(text);
}
