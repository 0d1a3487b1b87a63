/**
 * The local Entra-compatible token service with @azure/identity itself as the client (the connector's own
 * credential, createCredential), and the emulator's token validation (emulator/auth.ts) against its keys. Its CA is
 * trusted for this worker with tls.setDefaultCACertificates; the integration tests use NODE_EXTRA_CA_CERTS.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { bearerChallenge, createEntraAuthenticator } from "../../emulator/auth.ts";
import { resolveEmulatorOptions } from "../../emulator/options.ts";
import { createCredential } from "../../src/azure/credential.ts";
import { ensureServerCertificates } from "../../stack/src/certificates.ts";
import { createSigningKey, decodeJwt } from "../../stack/src/jwt.ts";
import { createServiceAccountTokenIssuer } from "../../stack/src/kubernetesIssuer.ts";
import { startTokenService, type TokenService } from "../../stack/src/tokenService.ts";

const TENANT = "8a2f6c1e-4b7d-4e0f-9c3a-2d5e8f1b6a90";
const CLIENT_ID = "3c9b1f2e-7a4d-4c8e-b5f6-0e1d2c3b4a59";
const SECRET = "unit-test-client-secret-value";
const ML = "https://ml.azure.com/.default";
const AZURE_VARIABLES = [
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_AUTHORITY_HOST",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_TOKEN_CREDENTIALS",
] as const;

const dir = mkdtempSync(join(tmpdir(), "fc-token-service-"));
const k8s = createServiceAccountTokenIssuer();
const federatedFile = join(dir, "azure-identity-token");
let service: TokenService;
const saved = Object.fromEntries(AZURE_VARIABLES.map((name) => [name, process.env[name]]));

function useEnvironment(values: Partial<Record<(typeof AZURE_VARIABLES)[number], string>>): void {
  for (const name of AZURE_VARIABLES) delete process.env[name];
  Object.assign(process.env, { AZURE_TOKEN_CREDENTIALS: "prod", ...values });
}

const credential = () => createCredential({ kind: "default", disableInstanceDiscovery: true });

beforeAll(async () => {
  const tls = ensureServerCertificates(join(dir, "tls"));
  setDefaultCACertificates([...getCACertificates("default"), readFileSync(tls.caFile, "utf8")]);
  service = await startTokenService({
    tenantId: TENANT,
    tls,
    clients: [
      {
        clientId: CLIENT_ID,
        secret: SECRET,
        federated: [{ issuer: k8s.issuer, subject: k8s.subject("forecasting", "forecast-connector") }],
      },
    ],
    trustedIssuers: { [k8s.issuer]: k8s.key.publicKey },
    tokenLifetimeSeconds: 600,
  });
});

afterEach(() => {
  for (const name of AZURE_VARIABLES) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

afterAll(async () => {
  await service?.close();
  setDefaultCACertificates(getCACertificates("bundled"));
  rmSync(dir, { recursive: true, force: true });
});

describe("token service with DefaultAzureCredential", () => {
  it("client secret (EnvironmentCredential): an RS256 JWT for the scope's resource, with Entra's claims", async () => {
    useEnvironment({
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_CLIENT_SECRET: SECRET,
      AZURE_AUTHORITY_HOST: service.authorityHost,
    });
    const before = Date.now();
    const token = await credential().getToken(ML);
    const jwt = decodeJwt(token?.token ?? "");
    expect(jwt?.header).toMatchObject({ alg: "RS256", typ: "JWT" });
    expect(jwt?.claims).toMatchObject({
      aud: "https://ml.azure.com",
      iss: `https://sts.windows.net/${TENANT}/`,
      tid: TENANT,
      appid: CLIENT_ID,
      appidacr: "1",
      ver: "1.0",
    });
    const claims = jwt?.claims as { exp: number; iat: number; nbf: number; oid: string; sub: string };
    expect(claims.exp - claims.iat).toBe(600);
    expect(claims.nbf).toBe(claims.iat);
    expect(claims.sub).toBe(claims.oid);
    // What the SDK reports is what the token says.
    expect(Math.abs((token?.expiresOnTimestamp ?? 0) - claims.exp * 1000)).toBeLessThan(2000);
    expect(claims.iat * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(service.issued().at(-1)).toMatchObject({
      resource: "https://ml.azure.com",
      grant: "client_secret",
    });
  });

  it("workload identity (WorkloadIdentityCredential): a service-account token exchanged for an access token", async () => {
    writeFileSync(
      federatedFile,
      k8s.issue({ namespace: "forecasting", serviceAccount: "forecast-connector" }),
    );
    useEnvironment({
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_FEDERATED_TOKEN_FILE: federatedFile,
      AZURE_AUTHORITY_HOST: service.authorityHost,
    });
    const before = service.issuedCount("https://storage.azure.com");
    const token = await credential().getToken("https://storage.azure.com/.default");
    expect(decodeJwt(token?.token ?? "")?.claims).toMatchObject({
      aud: "https://storage.azure.com",
      appidacr: "2",
      tid: TENANT,
    });
    expect(service.issuedCount("https://storage.azure.com")).toBe(before + 1);
    expect(service.issued().at(-1)?.grant).toBe("client_assertion");
  });

  it("a wrong secret is refused with AADSTS7000215, and the error does not carry the secret", async () => {
    const wrong = "wrong-secret-that-must-not-leak";
    useEnvironment({
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_CLIENT_SECRET: wrong,
      AZURE_AUTHORITY_HOST: service.authorityHost,
    });
    const error = (await credential()
      .getToken(ML)
      .catch((e: unknown) => e)) as Error;
    expect(error.message).toContain("AADSTS7000215: Invalid client secret provided");
    expect(`${error.message}${error.stack}${JSON.stringify(error)}`).not.toContain(wrong);
    expect(service.refusals().at(-1)).toEqual({ clientId: CLIENT_ID, code: 7000215 });
  });

  it("assertions of another subject, a forged signature, or another audience are refused", async () => {
    const attempts = [
      { token: k8s.issue({ namespace: "forecasting", serviceAccount: "someone-else" }), code: 700213 },
      {
        token: k8s.issue({
          namespace: "forecasting",
          serviceAccount: "forecast-connector",
          signWith: createSigningKey(),
        }),
        code: 700027,
      },
      {
        token: k8s.issue({
          namespace: "forecasting",
          serviceAccount: "forecast-connector",
          audience: "api://other",
        }),
        code: 700212,
      },
    ];
    for (const { token, code } of attempts) {
      writeFileSync(federatedFile, token);
      useEnvironment({
        AZURE_TENANT_ID: TENANT,
        AZURE_CLIENT_ID: CLIENT_ID,
        AZURE_FEDERATED_TOKEN_FILE: federatedFile,
        AZURE_AUTHORITY_HOST: service.authorityHost,
        AZURE_TOKEN_CREDENTIALS: "WorkloadIdentityCredential",
      });
      const error = (await credential()
        .getToken(ML)
        .catch((e: unknown) => e)) as Error;
      expect(error.message).toContain(`AADSTS${code}`);
      expect(error.message).not.toContain(token);
      expect(service.refusals().at(-1)?.code).toBe(code);
    }
  });
});

describe("token endpoint error bodies", () => {
  const post = async (body: Record<string, string>) => {
    const response = await fetch(`${service.authority}/oauth2/v2.0/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it("answers as Entra does: status, error, AADSTS description, codes, trace and correlation ids, timestamp", async () => {
    const cases = [
      {
        form: { grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: "nope", scope: ML },
        status: 401,
        error: "invalid_client",
        code: 7000215,
      },
      {
        form: {
          grant_type: "client_credentials",
          client_id: "unknown-app",
          client_secret: SECRET,
          scope: ML,
        },
        status: 400,
        error: "unauthorized_client",
        code: 700016,
      },
      {
        form: {
          grant_type: "client_credentials",
          client_id: CLIENT_ID,
          client_secret: SECRET,
          scope: "https://ml.azure.com",
        },
        status: 400,
        error: "invalid_scope",
        code: 1002012,
      },
      {
        form: {
          grant_type: "client_credentials",
          client_id: CLIENT_ID,
          client_secret: SECRET,
          scope: "https://vault.example/.default",
        },
        status: 400,
        error: "invalid_resource",
        code: 500011,
      },
      {
        form: { grant_type: "password", client_id: CLIENT_ID, client_secret: SECRET, scope: ML },
        status: 400,
        error: "unsupported_grant_type",
        code: 70003,
      },
    ];
    for (const c of cases) {
      const { status, body } = await post(c.form);
      expect({ status, error: body.error, codes: body.error_codes }).toEqual({
        status: c.status,
        error: c.error,
        codes: [c.code],
      });
      expect(body.error_description).toMatch(
        new RegExp(
          `^AADSTS${c.code}: .+ Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`,
        ),
      );
      expect(body).toMatchObject({
        trace_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        correlation_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        timestamp: expect.stringMatching(/Z$/),
      });
      expect(JSON.stringify(body)).not.toContain(SECRET);
    }
  });

  it("publishes OpenID discovery and its keys", async () => {
    const configuration = (await (
      await fetch(`${service.authority}/v2.0/.well-known/openid-configuration`)
    ).json()) as Record<string, string>;
    expect(configuration).toMatchObject({
      issuer: `${service.authority}/v2.0`,
      token_endpoint: `${service.authority}/oauth2/v2.0/token`,
      jwks_uri: service.jwksUri,
    });
    const jwks = (await (await fetch(service.jwksUri)).json()) as { keys: Array<Record<string, string>> };
    expect(jwks.keys[0]).toMatchObject({
      kty: "RSA",
      use: "sig",
      kid: expect.any(String),
      n: expect.any(String),
      e: "AQAB",
    });
  });
});

describe("emulator token validation", () => {
  const secretToken = async (scope: string) => {
    useEnvironment({
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_CLIENT_SECRET: SECRET,
      AZURE_AUTHORITY_HOST: service.authorityHost,
    });
    return (await credential().getToken(scope))?.token ?? "";
  };

  it("accepts the audience of the API called and refuses the other, a tampered token and another tenant", async () => {
    const auth = createEntraAuthenticator({ authority: service.authority, tenantId: TENANT });
    const ml = await secretToken(ML);
    const arm = await secretToken("https://management.azure.com/.default");
    const storage = await secretToken("https://storage.azure.com/.default");
    expect(await auth.authenticate(ml, "data-plane")).toEqual({ ok: true });
    expect(await auth.authenticate(arm, "arm")).toEqual({ ok: true });
    expect(await auth.authenticate(ml, "arm")).toEqual({
      ok: false,
      description: "The audience 'https://ml.azure.com' is invalid",
    });
    expect(await auth.authenticate(storage, "data-plane")).toMatchObject({ ok: false });
    const [h, p, s] = ml.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, exp: (claims.exp as number) + 3600 })).toString("base64url")}.${s}`;
    expect(await auth.authenticate(tampered, "data-plane")).toEqual({
      ok: false,
      description: "The token's signature is invalid",
    });
    const otherTenant = createEntraAuthenticator({
      authority: service.authority,
      tenantId: "another-tenant",
    });
    expect((await otherTenant.authenticate(ml, "data-plane")).ok).toBe(false);
    expect(
      await auth.authenticate("local-dev.8a2f6c1e-4b7d-4e0f-9c3a-2d5e8f1b6a90", "data-plane"),
    ).toMatchObject({ ok: false });
    const demo = createEntraAuthenticator({
      authority: service.authority,
      tenantId: TENANT,
      allowLocalDevTokens: true,
    });
    expect(await demo.authenticate("local-dev.8a2f6c1e-4b7d-4e0f-9c3a-2d5e8f1b6a90", "data-plane")).toEqual({
      ok: true,
    });
  });

  it("fetches the keys again when a token names a new key id (rotation), once per new key", async () => {
    let fetches = 0;
    const counting: typeof fetch = (input, init) => {
      fetches++;
      return fetch(input, init);
    };
    const auth = createEntraAuthenticator({
      authority: service.authority,
      tenantId: TENANT,
      fetch: counting,
    });
    expect(await auth.authenticate(await secretToken(ML), "data-plane")).toEqual({ ok: true });
    expect(await auth.authenticate(await secretToken(ML), "data-plane")).toEqual({ ok: true });
    expect(fetches).toBe(2); // discovery + keys, once
    service.rotateSigningKey();
    expect(await auth.authenticate(await secretToken(ML), "data-plane")).toEqual({ ok: true });
    expect(fetches).toBe(4);
  });

  it("refuses an expired token (beyond the skew)", async () => {
    const shortLived = await startTokenService({
      tenantId: TENANT,
      tls: ensureServerCertificates(join(dir, "tls")),
      clients: [{ clientId: CLIENT_ID, secret: SECRET }],
      // Long enough to be valid at the first check on a busy machine (the JWKS is fetched then), short enough
      // to wait out; exp is in whole seconds.
      tokenLifetimeSeconds: 4,
    });
    try {
      const response = await fetch(`${shortLived.authority}/oauth2/v2.0/token`, {
        method: "POST",
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: CLIENT_ID,
          client_secret: SECRET,
          scope: ML,
        }),
      });
      const { access_token: token } = (await response.json()) as { access_token: string };
      const auth = createEntraAuthenticator({
        authority: shortLived.authority,
        tenantId: TENANT,
        clockSkewSeconds: 0,
      });
      expect(await auth.authenticate(token, "data-plane")).toEqual({ ok: true });
      const { exp } = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as {
        exp: number;
      };
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, (exp + 1) * 1000 - Date.now() + 50)));
      expect(await auth.authenticate(token, "data-plane")).toEqual({
        ok: false,
        description: "The token is expired",
      });
    } finally {
      await shortLived.close();
    }
  });

  it("words the 401 challenge as Azure does", () => {
    expect(bearerChallenge("https://login.example/t", "The token is expired")).toBe(
      'Bearer authorization_uri="https://login.example/t", error="invalid_token", error_description="The token is expired"',
    );
    expect(bearerChallenge("https://login.example/t")).toBe(
      'Bearer authorization_uri="https://login.example/t"',
    );
    expect(bearerChallenge(undefined)).toBe("Bearer");
  });

  it("the emulator takes auth or acceptToken, not both, and authenticates through the one given", async () => {
    const base = { blobConnectionString: "UseDevelopmentStorage=true" };
    expect(() =>
      resolveEmulatorOptions({
        ...base,
        acceptToken: () => true,
        auth: { authority: service.authority, tenantId: TENANT },
      }),
    ).toThrow(/auth and options.acceptToken are exclusive/);
    expect(() =>
      resolveEmulatorOptions({ ...base, auth: { authority: "http://plain", tenantId: TENANT } }),
    ).toThrow(/https URL/);
    const open = resolveEmulatorOptions(base);
    expect(open.authority).toBeUndefined();
    expect(await open.authenticate("anything", "arm")).toEqual({ ok: true });
    const strict = resolveEmulatorOptions({
      ...base,
      auth: { authority: `${service.authority}/`, tenantId: TENANT },
    });
    expect(strict.authority).toBe(service.authority);
    expect(await strict.authenticate("anything", "data-plane")).toEqual({
      ok: false,
      description: "The token is not a JWT",
    });
    expect(await strict.authenticate(await secretToken(ML), "data-plane")).toEqual({ ok: true });
  });
});
