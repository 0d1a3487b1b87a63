/**
 * Runs the real connector against the stack the global setup found, with its own topics, containers and
 * emulator, and reads back what it published. Nothing here is mocked: only the Azure ML endpoint is the emulator.
 *
 * The production identity path by default: a token service of its own (stack/src/tokenService.ts) stands in for
 * Entra ID, the connector's DefaultAzureCredential gets its tokens through the AZURE_* variables a user sets (a
 * client secret, or a federated token file as workload identity mounts it), the emulator validates them, and blob
 * storage is reached by account URL with the same credential (Azurite over HTTPS with OAuth) when the stack has it.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import type { IHeaders, Kafka } from "kafkajs";
import { pino } from "pino";
import { Registry } from "prom-client";
import { inject } from "vitest";
import { createEmulator, type Emulator, type EmulatorFaults } from "../../emulator/index.ts";
import type { Config } from "../../src/config/index.ts";
import { loadConfig } from "../../src/config/index.ts";
import { type Connector, startConnector } from "../../src/connector.ts";
import { localConnectorEnv } from "../../stack/src/connectorEnv.ts";
import { createServiceAccountTokenIssuer } from "../../stack/src/kubernetesIssuer.ts";
import { startTokenService, type TokenService } from "../../stack/src/tokenService.ts";
import { createRunContainers } from "./blobs.ts";
import { createTopics, testKafka, uniqueName } from "./kafka.ts";

export interface HarnessOptions {
  readonly partitions?: number;
  readonly faults?: EmulatorFaults;
  readonly emulator?: { coldStartMs?: number; runMs?: number };
  /** Extra FC_* settings over the harness's fast defaults. */
  readonly env?: Record<string, string>;
  /**
   * How the connector gets its Entra tokens: "client-secret" (AZURE_CLIENT_SECRET, EnvironmentCredential),
   * "workload-identity" (AZURE_FEDERATED_TOKEN_FILE, WorkloadIdentityCredential), or "local-dev" (the demo's
   * unsigned token; the emulator then accepts any token). Default "client-secret".
   */
  readonly credential?: "client-secret" | "workload-identity" | "local-dev";
  /**
   * How the connector reaches blob storage: "identity" (account URLs with the credential) or "connection-string".
   * Default "identity" when the stack's blob service accepts tokens (the local stack), else "connection-string".
   */
  readonly storage?: "identity" | "connection-string";
  /** Lifetime of the token service's access tokens, in seconds. Default 3600. */
  readonly tokenLifetimeSeconds?: number;
  /**
   * Start the connector in this process. Default true; false prepares everything else (topics, containers,
   * emulator, token service, `env`) for a connector run another way (the CLI as a child process).
   */
  readonly startConnector?: boolean;
}

/** The AZURE_* variables DefaultAzureCredential reads; the harness sets them and puts back what was there. */
const AZURE_VARIABLES = [
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_AUTHORITY_HOST",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_TOKEN_CREDENTIALS",
] as const;

/** What the connector authenticated with: for the tests that check none of it leaks. */
export interface HarnessIdentity {
  readonly tokenService: TokenService;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** The service-account token in AZURE_FEDERATED_TOKEN_FILE. */
  readonly federatedToken: string;
  /** The AZURE_* and FC_* credential variables as a connector process would be given them. */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * A token service with one application (a client secret and a federated credential for a service account), and
 * the environment a connector authenticates with: client secret or workload identity.
 */
export async function startTestIdentity(
  options: { credential?: "client-secret" | "workload-identity"; tokenLifetimeSeconds?: number } = {},
): Promise<HarnessIdentity & { close(): Promise<void> }> {
  const tenantId = randomUUID();
  const clientId = randomUUID();
  const clientSecret = `fc-test-secret-${randomBytes(18).toString("base64url")}`;
  const k8s = createServiceAccountTokenIssuer();
  const tokenService = await startTokenService({
    tenantId,
    tls: inject("tls"),
    clients: [
      {
        clientId,
        secret: clientSecret,
        federated: [{ issuer: k8s.issuer, subject: k8s.subject("forecasting", "forecast-connector") }],
      },
    ],
    trustedIssuers: { [k8s.issuer]: k8s.key.publicKey },
    ...(options.tokenLifetimeSeconds === undefined
      ? {}
      : { tokenLifetimeSeconds: options.tokenLifetimeSeconds }),
  });
  const dir = mkdtempSync(join(tmpdir(), "fc-identity-"));
  const federatedToken = k8s.issue({ namespace: "forecasting", serviceAccount: "forecast-connector" });
  const federatedTokenFile = join(dir, "azure-identity-token");
  writeFileSync(federatedTokenFile, federatedToken, { mode: 0o600 });
  const env: Record<string, string> = {
    AZURE_AUTHORITY_HOST: tokenService.authorityHost,
    AZURE_TENANT_ID: tenantId,
    AZURE_CLIENT_ID: clientId,
    // Only the production credentials (environment, workload identity, managed identity) in the chain.
    AZURE_TOKEN_CREDENTIALS: "prod",
    ...(options.credential === "workload-identity"
      ? { AZURE_FEDERATED_TOKEN_FILE: federatedTokenFile }
      : { AZURE_CLIENT_SECRET: clientSecret }),
    FC_AZURE_CREDENTIAL: "default",
    // The token service is a private authority: no instance discovery against the public cloud.
    FC_AZURE_DISABLE_INSTANCE_DISCOVERY: "true",
  };
  return {
    tokenService,
    tenantId,
    clientId,
    clientSecret,
    federatedToken,
    env,
    async close() {
      await tokenService.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PublishedPrediction {
  readonly key: string;
  readonly value: Record<string, unknown>;
}

export interface DeadLetterRecord {
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

/** The emulator's formula, written out here independently (emulator/README.md): round8(Σ (i+1)·f_i / n). */
export function expectedPrediction(features: readonly number[]): number {
  let sum = 0;
  features.forEach((f, i) => {
    sum += (i + 1) * f;
  });
  return Number((sum / features.length).toFixed(8));
}

export function features(seed: number, count = 13): number[] {
  return Array.from({ length: count }, (_, i) => Number((((seed * 31 + i * 7) % 97) / 10).toFixed(3)));
}

function headersToStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k] = Array.isArray(v) ? String(v[0]) : String(v);
  return out;
}

export async function startHarness(options: HarnessOptions = {}) {
  const stack = inject("stack");
  const kafka: Kafka = testKafka();
  const id = uniqueName("e2e");
  const topics = { input: `${id}-in`, results: `${id}-out`, deadLetter: `${id}-dlq` };
  await createTopics(kafka, [topics.input], options.partitions ?? 3);
  await createTopics(kafka, [topics.results, topics.deadLetter], 2);

  const { blobs, inputContainer, outputContainer } = await createRunContainers(id);

  const credentialKind = options.credential ?? "client-secret";
  const storage = options.storage ?? (stack.blobOAuth ? "identity" : "connection-string");
  if (storage === "identity" && !stack.blobOAuth) {
    throw new Error(
      "storage: identity needs a blob service that accepts Entra tokens (the local stack's Azurite over HTTPS with OAuth); these services have none",
    );
  }
  const identity =
    credentialKind === "local-dev"
      ? undefined
      : await startTestIdentity({
          credential: credentialKind,
          ...(options.tokenLifetimeSeconds === undefined
            ? {}
            : { tokenLifetimeSeconds: options.tokenLifetimeSeconds }),
        });

  const emulator: Emulator = await createEmulator({
    blobConnectionString: stack.blobConnectionString,
    outputContainer,
    coldStartMs: options.emulator?.coldStartMs ?? 100,
    runMs: options.emulator?.runMs ?? 100,
    ...(options.faults ? { faults: options.faults } : {}),
    ...(identity
      ? { auth: { authority: identity.tokenService.authority, tenantId: identity.tenantId } }
      : {}),
  });

  const env: Record<string, string> = {
    ...localConnectorEnv({
      endpoints: stack,
      groupId: `${id}-group`,
      topics,
      inputContainer,
      outputContainer,
      scoringUri: emulator.scoringUri,
    }),
    // The job ledger topic is created by the connector, compacted, with the input's partition count.
    FC_CREATE_TOPICS: "true",
    FC_KAFKA_SESSION_TIMEOUT_MS: "10000",
    FC_BATCH_MAX_RECORDS: "25",
    FC_BATCH_MAX_WAIT_MS: "300",
    FC_JOB_POLL_INTERVAL_MS: "100",
    FC_JOB_TIMEOUT_MS: "20000",
    FC_HTTP_RETRY_DELAY_MS: "20",
    FC_HTTP_MAX_RETRY_DELAY_MS: "200",
    FC_RETRY_INITIAL_DELAY_MS: "20",
    FC_RETRY_MAX_DELAY_MS: "200",
    FC_HTTP_PORT: "0",
    FC_LOG_LEVEL: "warn",
    FC_SHUTDOWN_TIMEOUT_MS: "5000",
    ...Object.fromEntries(Object.entries(identity?.env ?? {}).filter(([name]) => name.startsWith("FC_"))),
    ...options.env,
  };
  if (storage === "identity") {
    delete env.FC_INPUT_STORAGE_CONNECTION_STRING;
    env.FC_INPUT_STORAGE_ACCOUNT_URL = stack.blobEndpoint;
    env.FC_OUTPUT_STORAGE_ACCOUNT_URL = stack.blobEndpoint;
  }
  // DefaultAzureCredential reads its variables from the process environment, as in production.
  const savedAzureEnv = Object.fromEntries(AZURE_VARIABLES.map((name) => [name, process.env[name]]));
  const restoreAzureEnv = () => {
    for (const name of AZURE_VARIABLES) {
      if (savedAzureEnv[name] === undefined) delete process.env[name];
      else process.env[name] = savedAzureEnv[name];
    }
  };
  if (identity) {
    for (const name of AZURE_VARIABLES) delete process.env[name];
    for (const [name, value] of Object.entries(identity.env))
      if (name.startsWith("AZURE_")) process.env[name] = value;
  }
  const config: Config = loadConfig(env);
  const registry = new SchemaRegistry({ host: stack.registryUrl });
  const logger = pino({ level: process.env.FC_TEST_LOG_LEVEL ?? "warn" });
  // Lag refreshed often, so a test can read it soon after the work is done.
  const start = () => startConnector(config, { logger, metricsRegistry: new Registry(), lagIntervalMs: 500 });
  let connector: Connector | undefined;
  try {
    if (options.startConnector !== false) connector = await start();
  } catch (error) {
    await emulator.close();
    await identity?.close();
    restoreAzureEnv();
    throw error;
  }

  type RawMessage = { key: Buffer | null; value: Buffer | null; offset: string; headers?: IHeaders };

  /**
   * Consumes a topic from the beginning with a throwaway group, handing each message to `take`, until it says
   * the reading is complete or the time runs out.
   */
  const consume = async (
    topic: string,
    take: (partition: number, message: RawMessage) => Promise<boolean>,
    progress: () => string,
    timeoutMs: number,
    /** Told each partition's position after every fetched batch, control records (transaction markers) included. */
    reached?: (partition: number, nextOffset: bigint) => boolean,
  ): Promise<void> => {
    // read_committed (kafkajs's default): what a downstream consumer of an exactly-once connector sees.
    const consumer = kafka.consumer({ groupId: uniqueName("reader") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${topic}: ${progress()} after ${timeoutMs} ms`)),
          timeoutMs,
        );
        if (reached) {
          consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
            // A fetch that held nothing at or past its offset says nothing about how far the reading got.
            if (payload.firstOffset === null || payload.firstOffset === undefined) return;
            if (reached(payload.partition, BigInt(payload.lastOffset) + 1n)) {
              clearTimeout(timer);
              resolve();
            }
          });
        }
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            if (await take(partition, message)) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
  };

  /** Reads every record of a topic, from the beginning up to each partition's end as it is now. */
  const readTopicToEnd = async <T>(
    topic: string,
    map: (m: RawMessage) => Promise<T>,
    timeoutMs = 30_000,
  ): Promise<T[]> => {
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const remaining = new Map(
      ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high)]),
    );
    const items: T[] = [];
    if (remaining.size === 0) return items;
    await consume(
      topic,
      async (partition, message) => {
        const end = remaining.get(partition);
        if (end === undefined || BigInt(message.offset) >= end) return false;
        items.push(await map(message));
        return false;
      },
      () => `${items.length} records, not at the end`,
      timeoutMs,
      // The end is reached past the last record or the transaction marker after it.
      (partition, next) => {
        const end = remaining.get(partition);
        if (end !== undefined && next >= end) remaining.delete(partition);
        return remaining.size === 0;
      },
    );
    return items;
  };

  const decodePrediction = async (m: { key: Buffer | null; value: Buffer | null }) => ({
    key: m.key?.toString() ?? "",
    value: (await registry.decode(m.value as Buffer)) as Record<string, unknown>,
  });
  const toDeadLetter = async (m: { key: Buffer | null; value: Buffer | null; headers?: IHeaders }) => ({
    key: m.key?.toString() ?? null,
    value: m.value,
    headers: headersToStrings(m.headers),
  });

  /** Reads a topic from the beginning until `until` says enough or the time runs out. */
  const readTopic = async <T>(
    topic: string,
    map: (m: RawMessage) => Promise<T>,
    until: (items: T[]) => boolean,
    timeoutMs = 60_000,
  ): Promise<T[]> => {
    const items: T[] = [];
    if (!until(items)) {
      await consume(
        topic,
        async (_partition, message) => {
          items.push(await map(message));
          return until(items);
        },
        () => `${items.length} records`,
        timeoutMs,
      );
    }
    // Linger a little: anything beyond the expected count (a duplicate) must show up too.
    await new Promise((r) => setTimeout(r, 1500));
    return items;
  };

  return {
    config,
    topics,
    emulator,
    /** The token service and what the connector authenticated with (undefined with credential: "local-dev"). */
    identity,
    /** The connector's settings (FC_* variables), as a CLI run would be given them. */
    env,
    kafka,
    registry,
    get connector(): Connector {
      return connector as Connector;
    },
    async produce(messages: ReadonlyArray<{ key?: string; value: Buffer | string; headers?: IHeaders }>) {
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic: topics.input,
        messages: messages.map((m) => ({ key: m.key ?? null, ...m })),
      });
      await producer.disconnect();
    },
    /**
     * Produces each message to the partition it names and returns where each landed, in message order.
     * One send per call: Kafka gives each partition's messages consecutive offsets from its base offset.
     */
    async produceTracked(
      messages: ReadonlyArray<{ key?: string; value: Buffer | string; partition: number }>,
    ): Promise<Array<{ partition: number; offset: string }>> {
      const producer = kafka.producer();
      await producer.connect();
      try {
        const metadata = await producer.send({
          topic: topics.input,
          messages: messages.map((m) => ({ key: m.key ?? null, value: m.value, partition: m.partition })),
        });
        const next = new Map(metadata.map((r) => [r.partition, BigInt(r.baseOffset as string)]));
        return messages.map((m) => {
          const offset = next.get(m.partition);
          if (offset === undefined) throw new Error(`no produce metadata for partition ${m.partition}`);
          next.set(m.partition, offset + 1n);
          return { partition: m.partition, offset: offset.toString() };
        });
      } finally {
        await producer.disconnect();
      }
    },
    readPredictions(count: number, timeoutMs?: number): Promise<PublishedPrediction[]> {
      return readTopic(topics.results, decodePrediction, (items) => items.length >= count, timeoutMs);
    },
    readDeadLetters(count: number, timeoutMs?: number): Promise<DeadLetterRecord[]> {
      return readTopic(topics.deadLetter, toDeadLetter, (items) => items.length >= count, timeoutMs);
    },
    /** Every prediction on the results topic now: exact, no waiting for a count (read after the work is done). */
    readAllPredictions(timeoutMs?: number): Promise<PublishedPrediction[]> {
      return readTopicToEnd(topics.results, decodePrediction, timeoutMs);
    },
    /** Every record on the dead-letter topic now. */
    readAllDeadLetters(timeoutMs?: number): Promise<DeadLetterRecord[]> {
      return readTopicToEnd(topics.deadLetter, toDeadLetter, timeoutMs);
    },
    /** The rows of the batch files in a job's input folder (an emulator job's inputUri), in file order. */
    async batchFileRows(folderUri: string): Promise<Array<{ store_id: string; features: number[] }>> {
      const container = blobs.getContainerClient(inputContainer);
      const folder = folderUri.slice(`${container.url}/`.length).replace(/\/+$/, "");
      const rows: Array<{ store_id: string; features: number[] }> = [];
      for await (const blob of container.listBlobsFlat({ prefix: `${folder}/` })) {
        const body = await container.getBlobClient(blob.name).downloadToBuffer();
        rows.push(...(JSON.parse(body.toString("utf8")) as typeof rows));
      }
      return rows;
    },
    /** Committed offsets of the connector's group, and each partition's end, once they are equal or time runs out. */
    async waitForCommitsAtEnd(timeoutMs = 30_000) {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const ends = await admin.fetchTopicOffsets(topics.input);
          const committed = await admin.fetchOffsets({
            groupId: config.consumer.groupId,
            topics: [topics.input],
          });
          const byPartition = new Map(committed[0]?.partitions.map((p) => [p.partition, p.offset]) ?? []);
          const rows = ends.map((e) => ({
            partition: e.partition,
            end: e.high,
            committed: byPartition.get(e.partition),
          }));
          if (rows.every((r) => r.committed === r.end) || Date.now() > deadline) return rows;
          await new Promise((r) => setTimeout(r, 250));
        }
      } finally {
        await admin.disconnect();
      }
    },
    /** The running connector's /metrics as Prometheus scrapes it (its HTTP port, not the registry object). */
    async scrape(): Promise<string> {
      const response = await fetch(`http://127.0.0.1:${(connector as Connector).httpPort}/metrics`);
      if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
      return response.text();
    },
    async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
      const metric = await (connector as Connector).metrics.registry.getSingleMetric(name)?.get();
      if (!metric) throw new Error(`no metric ${name}`);
      return metric.values
        .filter((v) => Object.entries(labels).every(([k, value]) => String(v.labels[k]) === value))
        .reduce((sum, v) => sum + v.value, 0);
    },
    async stopConnector() {
      await connector?.stop();
      connector = undefined;
    },
    async restartConnector() {
      await connector?.stop();
      connector = await start();
    },
    async close() {
      await connector?.stop();
      await emulator.close();
      await identity?.close();
      restoreAzureEnv();
    },
  };
}
