/**
 * The production identity path end to end: the connector's DefaultAzureCredential (@azure/identity, MSAL) gets its
 * tokens from the local Entra-compatible token service (stack/src/tokenService.ts) with a client secret or with a
 * federated token file (workload identity), the emulator validates every request's token (signature, audience,
 * issuer, expiry), and blob storage is reached by account URL with the same credential (Azurite over HTTPS with
 * OAuth). Also: renewals of short-lived tokens without a request lost, a wrong secret stopping start-up, and no
 * secret, token, key or signature in any log line or dead letter of a run at debug level.
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import { createEmulator } from "../../emulator/index.ts";
import { AZURITE_ACCOUNT_KEY } from "../../stack/src/azurite.ts";
import { freePort } from "../../stack/src/processes.ts";
import { runCli } from "../helpers/cli.ts";
import {
  type DeadLetterRecord,
  expectedPrediction,
  features,
  type PublishedPrediction,
  startHarness,
  startTestIdentity,
} from "../helpers/connectorHarness.ts";
import { createTopics, testKafka, uniqueName } from "../helpers/kafka.ts";

type Harness = Awaited<ReturnType<typeof startHarness>>;

const ML = "https://ml.azure.com";
const STORAGE = "https://storage.azure.com";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

function validEvents(count: number, offset = 0) {
  return Array.from({ length: count }, (_, i) => {
    const storeId = `ST_${(i + offset) % 13}`;
    const row = { store_id: storeId, features: features(i + offset) };
    return { key: storeId, value: JSON.stringify(row), row };
  });
}

const INVALID_EVENTS = [
  { key: "bad-json", value: "{not json", reason: "malformed_json" },
  {
    key: "bad-count",
    value: JSON.stringify({ store_id: "CA_1", features: [1, 2, 3] }),
    reason: "wrong_feature_count",
  },
] as const;

/** One prediction per valid event, equal to the formula, no duplicates. */
function expectPredictions(
  predictions: readonly PublishedPrediction[],
  sent: ReturnType<typeof validEvents>,
) {
  expect(predictions).toHaveLength(sent.length);
  expect(new Set(predictions.map((p) => `${p.value.source_partition}/${p.value.source_offset}`)).size).toBe(
    sent.length,
  );
  const expected = sent.map(({ row }) => `${row.store_id}|${expectedPrediction(row.features)}`).sort();
  expect(predictions.map((p) => `${p.value.store_id}|${p.value.prediction}`).sort()).toEqual(expected);
}

function expectDeadLetters(deadLetters: readonly DeadLetterRecord[]) {
  expect(deadLetters.map((d) => [d.key, d.headers["dlq.reason"]]).sort()).toEqual(
    INVALID_EVENTS.map((e) => [e.key, e.reason]).sort(),
  );
}

describe.each([
  { credential: "client-secret", grant: "client_secret", flavor: "guide" },
  { credential: "client-secret", grant: "client_secret", flavor: "v2" },
  { credential: "workload-identity", grant: "client_assertion", flavor: "guide" },
  { credential: "workload-identity", grant: "client_assertion", flavor: "v2" },
] as const)(
  "real identity: $credential, $flavor flavor, blob by identity",
  ({ credential, grant, flavor }) => {
    it("every valid event gets its prediction and every invalid one a dead letter, on tokens the emulator validated", async () => {
      const h = await startHarness({
        credential,
        storage: "identity",
        env: { FC_ENDPOINT_API_FLAVOR: flavor },
      });
      harness = h;
      const identity = h.identity;
      if (identity === undefined) throw new Error("the harness started no token service");
      // The connector's blob traffic goes by account URL, not by key.
      expect(h.config.inputStorage.connectionString).toBeUndefined();
      expect(h.config.inputStorage.accountUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/devstoreaccount1$/);
      expect(h.config.outputStorage.accountUrl).toBe(h.config.inputStorage.accountUrl);

      const sent = validEvents(80);
      await h.produce(sent);
      await h.produce(INVALID_EVENTS.map(({ key, value }) => ({ key, value })));
      expectPredictions(await h.readPredictions(sent.length), sent);
      expectDeadLetters(await h.readAllDeadLetters());
      expect((await h.waitForCommitsAtEnd()).every((p) => p.committed === p.end)).toBe(true);

      const jobs = h.emulator.jobs();
      expect(jobs.length).toBeGreaterThanOrEqual(Math.ceil(sent.length / 25));
      expect(jobs.every((j) => j.flavor === flavor)).toBe(true);
      // Tokens for the endpoint and for storage came from the token service, by the grant of this path.
      expect(identity.tokenService.issuedCount(ML)).toBeGreaterThanOrEqual(1);
      expect(identity.tokenService.issuedCount(STORAGE)).toBeGreaterThanOrEqual(1);
      expect(new Set(identity.tokenService.issued().map((t) => t.grant))).toEqual(new Set([grant]));
      expect(identity.tokenService.refusals()).toEqual([]);
      expect(await h.metric("forecast_connector_token_renewals_total", { cause: "unauthorized" })).toBe(0);
    });
  },
);

describe("emulator token validation on the data plane", () => {
  it("refuses a token for another audience or from another authority with a bearer challenge; NODE_EXTRA_CA_CERTS reached this worker", async () => {
    // The global setup set it before the workers started: this worker trusts the local CA without being told.
    expect(process.env.NODE_EXTRA_CA_CERTS).toMatch(/\.pem$/);
    const h = await startHarness({ credential: "client-secret" });
    harness = h;
    const identity = h.identity;
    if (identity === undefined) throw new Error("the harness started no token service");
    const tokenFor = async (service: typeof identity.tokenService, secret: string, scope: string) => {
      const response = await fetch(`${service.authority}/oauth2/v2.0/token`, {
        method: "POST",
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: identity.clientId,
          client_secret: secret,
          scope,
        }),
      });
      expect(response.status).toBe(200);
      return ((await response.json()) as { access_token: string }).access_token;
    };
    const submit = (token: string) =>
      fetch(h.emulator.scoringUri, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ input_data: { uri: "https://127.0.0.1/devstoreaccount1/in/x/" } }),
      });

    const storageToken = await tokenFor(identity.tokenService, identity.clientSecret, `${STORAGE}/.default`);
    const wrongAudience = await submit(storageToken);
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.headers.get("www-authenticate")).toBe(
      `Bearer authorization_uri="${identity.tokenService.authority}", error="invalid_token", error_description="The audience '${STORAGE}' is invalid"`,
    );
    // A token signed by another authority's key (another token service, same shape).
    const other = await startTestIdentity();
    try {
      const response = await fetch(`${other.tokenService.authority}/oauth2/v2.0/token`, {
        method: "POST",
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: other.clientId,
          client_secret: other.clientSecret,
          scope: `${ML}/.default`,
        }),
      });
      const otherToken = ((await response.json()) as { access_token: string }).access_token;
      const refused = await submit(otherToken);
      expect(refused.status).toBe(401);
      expect(refused.headers.get("www-authenticate")).toMatch(
        /error="invalid_token", error_description="The (token is signed by an unknown key|issuer .* is invalid)"/,
      );
    } finally {
      await other.close();
    }
    const missing = await fetch(h.emulator.scoringUri, { method: "POST", body: "{}" });
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe(
      `Bearer authorization_uri="${identity.tokenService.authority}"`,
    );
    expect(h.emulator.jobs()).toEqual([]);
  });
});

describe("short-lived tokens", () => {
  it("20-second tokens are renewed while jobs run for about 50 s, and not one request is lost to expiry", async () => {
    const h = await startHarness({
      credential: "client-secret",
      storage: "identity",
      tokenLifetimeSeconds: 20,
      emulator: { coldStartMs: 1000, runMs: 3000 },
      env: { FC_JOB_POLL_INTERVAL_MS: "500", FC_JOB_TIMEOUT_MS: "60000" },
    });
    harness = h;
    const identity = h.identity;
    if (identity === undefined) throw new Error("the harness started no token service");
    const sent: ReturnType<typeof validEvents> = [];
    // A wave of events every 5 s for 45 s: jobs submitted and polled across several token lifetimes.
    for (let wave = 0; wave < 10; wave++) {
      const events = validEvents(20, wave * 20);
      sent.push(...events);
      await h.produce(events);
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
    expectPredictions(await h.readPredictions(sent.length, 90_000), sent);
    expect(await h.readAllDeadLetters()).toEqual([]);

    const renewals = {
      initial: await h.metric("forecast_connector_token_renewals_total", { cause: "initial" }),
      expiry: await h.metric("forecast_connector_token_renewals_total", { cause: "expiry" }),
      unauthorized: await h.metric("forecast_connector_token_renewals_total", { cause: "unauthorized" }),
    };
    // Renewed halfway through each 20-s life: over ~50 s, at least 3 renewals before expiry.
    expect(renewals.initial).toBe(1);
    expect(renewals.expiry).toBeGreaterThanOrEqual(3);
    // No request went out with an expired token: the emulator never answered 401.
    expect(renewals.unauthorized).toBe(0);
    expect(identity.tokenService.issuedCount(ML)).toBeGreaterThanOrEqual(4);
    expect(identity.tokenService.issuedCount(STORAGE)).toBeGreaterThanOrEqual(3);
    expect(identity.tokenService.refusals()).toEqual([]);
    expect(h.emulator.jobs().every((j) => j.status === "Completed")).toBe(true);
    console.log(
      `[identity] 20-s tokens over ${sent.length} events, ${h.emulator.jobs().length} jobs: renewals ${JSON.stringify(renewals)}, ` +
        `tokens issued: ml ${identity.tokenService.issuedCount(ML)}, storage ${identity.tokenService.issuedCount(STORAGE)}`,
    );
  });
});

describe("credentials never leak", () => {
  it("a wrong client secret stops start-up naming the credential and AADSTS7000215, without the secret", async () => {
    const stack = inject("stack");
    const identity = await startTestIdentity({ credential: "client-secret" });
    const emulator = await createEmulator({
      blobConnectionString: stack.blobConnectionString,
      auth: { authority: identity.tokenService.authority, tenantId: identity.tenantId },
    });
    const id = uniqueName("wrongsecret");
    const kafka = testKafka();
    await createTopics(kafka, [`${id}-in`, `${id}-out`, `${id}-dlq`], 1);
    const wrongSecret = `wrong-${identity.clientSecret.split("").reverse().join("")}`;
    try {
      const run = runCli({
        ...identity.env,
        AZURE_CLIENT_SECRET: wrongSecret,
        FC_KAFKA_BROKERS: stack.kafkaBrokers.join(","),
        FC_KAFKA_GROUP_ID: `${id}-group`,
        FC_INPUT_TOPIC: `${id}-in`,
        FC_RESULTS_TOPIC: `${id}-out`,
        FC_DEAD_LETTER_TOPIC: `${id}-dlq`,
        // A ledger of its own: the default name is shared by every test on this broker.
        FC_LEDGER_TOPIC: `${id}-ledger`,
        FC_CREATE_TOPICS: "true",
        FC_SCHEMA_REGISTRY_URL: stack.registryUrl,
        FC_INPUT_STORAGE_ACCOUNT_URL: stack.blobEndpoint,
        FC_INPUT_CONTAINER: `${id}-in`,
        FC_ENDPOINT_SCORING_URI: emulator.scoringUri,
        FC_HTTP_PORT: "0",
        FC_LOG_LEVEL: "debug",
      });
      expect(await run.exitCode).toBe(2);
      const output = run.output();
      expect(output).toContain("Entra credential: no token for https://ml.azure.com/.default");
      expect(output).toContain("AADSTS7000215: Invalid client secret provided");
      expect(output).not.toContain(wrongSecret);
      expect(output).not.toContain(identity.clientSecret);
      expect(identity.tokenService.issued()).toEqual([]);
      expect(identity.tokenService.refusals().every((r) => r.code === 7000215)).toBe(true);
    } finally {
      await emulator.close();
      await identity.close();
    }
  });

  it.each(["client-secret", "workload-identity"] as const)(
    "a full CLI run at debug level (%s) logs no secret, assertion, token, account key or signature, nor do its metrics or dead letters",
    async (credential) => {
      const h = await startHarness({ credential, storage: "identity", startConnector: false });
      harness = h;
      const identity = h.identity;
      if (identity === undefined) throw new Error("the harness started no token service");
      // The Azure SDK's own log too, at its most talkative (request lines, MSAL, retries), on stderr.
      const httpPort = String(await freePort());
      const run = runCli({
        ...h.env,
        ...identity.env,
        FC_HTTP_PORT: httpPort,
        FC_LOG_LEVEL: "debug",
        AZURE_LOG_LEVEL: "verbose",
      });
      let output = "";
      try {
        const sent = validEvents(60);
        await h.produce(sent);
        await h.produce(INVALID_EVENTS.map(({ key, value }) => ({ key, value })));
        expectPredictions(await h.readPredictions(sent.length), sent);
        const deadLetters = await h.readAllDeadLetters();
        expectDeadLetters(deadLetters);
        const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
        expect(metrics).toContain("forecast_connector_token_renewals_total");
        run.child.kill("SIGTERM");
        expect(await run.exitCode).toBe(0);
        output = run.output();

        const issued = identity.tokenService.issued();
        expect(issued.filter((t) => t.resource === ML).length).toBeGreaterThanOrEqual(1);
        expect(issued.filter((t) => t.resource === STORAGE).length).toBeGreaterThanOrEqual(1);
        // The run logged at debug level: there is something to grep.
        expect(output.split("\n").filter((l) => l.includes('"level":"debug"')).length).toBeGreaterThan(0);
        expect(output).toMatch(/azure:identity:info/);
        const deadLetterText = deadLetters
          .map((d) => `${d.key} ${d.value?.toString("utf8")} ${JSON.stringify(d.headers)}`)
          .join("\n");
        const secrets: Array<[string, string]> = [
          ["client secret", identity.clientSecret],
          ["federated assertion", identity.federatedToken],
          ["account key", AZURITE_ACCOUNT_KEY],
          ...issued.map((t, i): [string, string] => [`token ${i} (${t.resource})`, t.token]),
          // A token's signature alone is enough to recognise it.
          ...issued.map((t, i): [string, string] => [
            `signature of token ${i}`,
            t.token.split(".")[2] as string,
          ]),
        ];
        for (const [what, value] of secrets) {
          expect(output.includes(value), `${what} in the connector's output`).toBe(false);
          expect(metrics.includes(value), `${what} in the metrics`).toBe(false);
          expect(deadLetterText.includes(value), `${what} in a dead letter`).toBe(false);
        }
        // Nor a SAS signature or a bearer header of any kind.
        for (const text of [output, deadLetterText, metrics]) {
          expect(text).not.toMatch(/[?&]sig=/i);
          expect(text).not.toMatch(/Bearer\s+[A-Za-z0-9_-]{20,}/);
          expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
        }
      } finally {
        if (run.child.exitCode === null) run.child.kill("SIGKILL");
      }
    },
  );
});
