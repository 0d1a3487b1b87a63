/**
 * Secure Kafka connections, for real: a broker of this file's own (the shared stack's stays plaintext) with a
 * SASL_SSL listener — TLS with a certificate from a CA made for it, SASL PLAIN and SCRAM users, client
 * certificates checked when presented — and the connector run end to end through it: events in, predictions
 * out, read back through the same listener. Failures must say what they are (authentication, TLS) and never
 * show a password.
 */
import "../../src/kafka/abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import { Kafka, type KafkaConfig, logLevel } from "kafkajs";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { createEmulator, type Emulator } from "../../emulator/index.ts";
import { ConfigError, loadConfig } from "../../src/config/index.ts";
import { type Connector, StartupError, startConnector } from "../../src/connector.ts";
import { DEFAULT_KAFKA_VERSION } from "../../stack/src/artifacts.ts";
import { createUnrelatedCa, issueClientCertificate } from "../../stack/src/certificates.ts";
import { localConnectorEnv } from "../../stack/src/connectorEnv.ts";
import { type KafkaService, type SecureListener, startKafka } from "../../stack/src/kafka.ts";
import { stackDir } from "../../stack/src/paths.ts";
import { freePort, killProcessGroupNow, stopProcessGroup } from "../../stack/src/processes.ts";
import { createRunContainers } from "../helpers/blobs.ts";
import { expectedPrediction, features } from "../helpers/connectorHarness.ts";
import { uniqueName } from "../helpers/kafka.ts";

const USER = "connector";
/** Random, so finding it in a message or a log line cannot be a coincidence. */
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const KEY_PASSPHRASE = `kp-${randomBytes(12).toString("hex")}`;

let broker: KafkaService | undefined;
let secure: SecureListener;
let dir = "";
let failed = false;
const killBroker = () => {
  if (broker) killProcessGroupNow(broker.process.pid);
};

beforeAll(async () => {
  mkdirSync(stackDir(""), { recursive: true });
  dir = mkdtempSync(join(stackDir(""), "secure-kafka-"));
  process.once("exit", killBroker);
  broker = await startKafka({
    version: process.env.FC_KAFKA_VERSION || DEFAULT_KAFKA_VERSION,
    port: await freePort(),
    controllerPort: await freePort(),
    dir,
    heap: "384m",
    // "requested": clients without a certificate are let in (SASL authenticates them), and a certificate
    // presented must be signed by the broker's CA: one broker for every case below.
    secureListener: { port: await freePort(), users: { [USER]: PASSWORD }, clientAuth: "requested" },
  });
  secure = broker.secure as SecureListener;
});

afterEach((context) => {
  if (context.task.result?.state === "fail") failed = true;
});

afterAll(async () => {
  if (broker) await stopProcessGroup(broker.process.pid);
  process.off("exit", killBroker);
  // Its logs are kept when something failed.
  if (failed) console.log(`[secure kafka] broker folder kept for its logs: ${dir}`);
  else if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** A test client through the secure listener: TLS trusting the broker's CA, SCRAM-SHA-512 as USER. */
function secureKafka(): Kafka {
  const config: KafkaConfig = {
    clientId: uniqueName("secure-test"),
    brokers: [secure.bootstrap],
    ssl: { ca: [readFileSync(secure.caFile, "utf8")] },
    sasl: { mechanism: "scram-sha-512", username: USER, password: PASSWORD },
    logLevel: logLevel.WARN,
    retry: { retries: 8, initialRetryTime: 100 },
  };
  return new Kafka(config);
}

/** Every line the connector logs, at debug, to look for passwords in. */
function capturingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

/** The connector's settings for the secure broker, with the shared stack's registry and Azurite. */
function secureEnv(
  id: string,
  scoringUri: string,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    ...localConnectorEnv({
      endpoints: { ...inject("stack"), kafkaBrokers: [secure.bootstrap] },
      groupId: `${id}-group`,
      topics: { input: `${id}-in`, results: `${id}-out`, deadLetter: `${id}-dlq` },
      inputContainer: `${id}-in`,
      outputContainer: `${id}-out`,
      scoringUri,
    }),
    FC_KAFKA_SSL: "true",
    FC_KAFKA_SSL_CA_FILE: secure.caFile,
    FC_KAFKA_SASL_MECHANISM: "scram-sha-512",
    FC_KAFKA_SASL_USERNAME: USER,
    FC_KAFKA_SASL_PASSWORD: PASSWORD,
    FC_CREATE_TOPICS: "true",
    FC_TOPIC_PARTITIONS: "2",
    FC_KAFKA_SESSION_TIMEOUT_MS: "10000",
    FC_BATCH_MAX_RECORDS: "25",
    FC_BATCH_MAX_WAIT_MS: "200",
    FC_JOB_POLL_INTERVAL_MS: "100",
    FC_HTTP_PORT: "0",
    FC_SHUTDOWN_TIMEOUT_MS: "5000",
    ...overrides,
  };
}

interface World {
  readonly id: string;
  readonly kafka: Kafka;
  readonly emulator: Emulator;
  env(overrides?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

/** An input topic on the secure broker (the connector creates the others), two containers and an emulator. */
async function world(prefix: string): Promise<World> {
  const stack = inject("stack");
  const id = uniqueName(prefix);
  const kafka = secureKafka();
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: `${id}-in`, numPartitions: 2, replicationFactor: 1 }],
    });
  } finally {
    await admin.disconnect();
  }
  await createRunContainers(id);
  const emulator = await createEmulator({
    blobConnectionString: stack.blobConnectionString,
    outputContainer: `${id}-out`,
    coldStartMs: 50,
    runMs: 50,
  });
  return {
    id,
    kafka,
    emulator,
    env: (overrides) => secureEnv(id, emulator.scoringUri, overrides),
    close: () => emulator.close(),
  };
}

/**
 * Runs the connector with `env` and sends `count` events through the secure listener; returns the
 * predictions read back through it (read_committed), decoded from Avro.
 */
async function runFlow(w: World, env: Record<string, string>, count: number) {
  const { logger, lines } = capturingLogger();
  const connector: Connector = await startConnector(loadConfig(env), {
    logger,
    metricsRegistry: new Registry(),
  });
  try {
    const sent = Array.from({ length: count }, (_, i) => ({
      store_id: `ST_${i % 7}`,
      features: features(i),
    }));
    const producer = w.kafka.producer();
    await producer.connect();
    await producer.send({
      topic: `${w.id}-in`,
      messages: sent.map((row) => ({ key: row.store_id, value: JSON.stringify(row) })),
    });
    await producer.disconnect();

    const registry = new SchemaRegistry({ host: inject("stack").registryUrl });
    const predictions: Array<Record<string, unknown>> = [];
    const consumer = w.kafka.consumer({ groupId: uniqueName("secure-reader") });
    await consumer.connect();
    await consumer.subscribe({ topic: `${w.id}-out`, fromBeginning: true });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${predictions.length} of ${count} predictions after 30 s`)),
          30_000,
        );
        void consumer.run({
          eachMessage: async ({ message }) => {
            predictions.push((await registry.decode(message.value as Buffer)) as Record<string, unknown>);
            if (predictions.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
    return { sent, predictions, lines };
  } finally {
    await connector.stop();
  }
}

function expectPredictionsFor(
  sent: ReadonlyArray<{ store_id: string; features: number[] }>,
  predictions: ReadonlyArray<Record<string, unknown>>,
) {
  expect(predictions).toHaveLength(sent.length);
  const expected = sent.map((row) => `${row.store_id}|${expectedPrediction(row.features)}`).sort();
  expect(predictions.map((p) => `${p.store_id}|${p.prediction}`).sort()).toEqual(expected);
  expect(new Set(predictions.map((p) => `${p.source_partition}/${p.source_offset}`)).size).toBe(sent.length);
}

/** Starts the connector expecting start-up to fail; returns the error and the log lines. */
async function failedStart(env: Record<string, string>) {
  const { logger, lines } = capturingLogger();
  const error = await startConnector(loadConfig(env), { logger, metricsRegistry: new Registry() }).then(
    async (connector) => {
      await connector.stop();
      return undefined;
    },
    (e: unknown) => e,
  );
  return { error, lines };
}

describe("the connector through a SASL_SSL listener", () => {
  it("SCRAM-SHA-512 over TLS (trusting the broker's CA by FC_KAFKA_SSL_CA_FILE): events in, predictions out", async () => {
    const w = await world("scram-tls");
    try {
      const { sent, predictions, lines } = await runFlow(w, w.env(), 40);
      expectPredictionsFor(sent, predictions);
      expect(w.emulator.jobs().every((job) => job.status === "Completed")).toBe(true);
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.join("\n")).not.toContain(PASSWORD);
    } finally {
      await w.close();
    }
  });

  it("SASL PLAIN over TLS, with a client certificate whose key is encrypted (mutual TLS)", async () => {
    const w = await world("plain-mtls");
    try {
      const client = issueClientCertificate(secure, join(dir, "clients"), "connector", KEY_PASSPHRASE);
      const env = w.env({
        FC_KAFKA_SASL_MECHANISM: "plain",
        FC_KAFKA_SSL_CERT_FILE: client.certFile,
        FC_KAFKA_SSL_KEY_FILE: client.keyFile,
        FC_KAFKA_SSL_KEY_PASSWORD: KEY_PASSPHRASE,
      });
      const { sent, predictions, lines } = await runFlow(w, env, 10);
      expectPredictionsFor(sent, predictions);
      const logged = lines.join("\n");
      expect(logged).not.toContain(PASSWORD);
      expect(logged).not.toContain(KEY_PASSPHRASE);
    } finally {
      await w.close();
    }
  });

  it("a wrong password stops start-up naming the user and SASL, never the password", async () => {
    const wrong = `wrong-${randomBytes(12).toString("hex")}`;
    for (const mechanism of ["scram-sha-512", "plain"]) {
      const started = Date.now();
      const { error, lines } = await failedStart(
        secureEnv(uniqueName("bad-pw"), "http://127.0.0.1:9/jobs", {
          FC_KAFKA_SASL_MECHANISM: mechanism,
          FC_KAFKA_SASL_PASSWORD: wrong,
        }),
      );
      expect(error, mechanism).toBeInstanceOf(StartupError);
      const message = (error as StartupError).message;
      expect(message).toContain(
        `authentication failed for user "${USER}" (SASL ${mechanism.toUpperCase()}): check FC_KAFKA_SASL_USERNAME and FC_KAFKA_SASL_PASSWORD`,
      );
      expect(message).toMatch(/SASL (SCRAM SHA512|PLAIN) authentication failed/);
      for (const secret of [wrong, PASSWORD]) {
        expect(message).not.toContain(secret);
        expect(lines.join("\n")).not.toContain(secret);
      }
      // Not retried: a wrong password does not become right.
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });

  it("a CA that did not sign the broker's certificate stops start-up with a TLS message", async () => {
    const other = createUnrelatedCa(join(dir, "other-ca"));
    const { error, lines } = await failedStart(
      secureEnv(uniqueName("bad-ca"), "http://127.0.0.1:9/jobs", { FC_KAFKA_SSL_CA_FILE: other.caFile }),
    );
    expect(error).toBeInstanceOf(StartupError);
    const message = (error as StartupError).message;
    expect(message).toContain(
      `TLS with ${secure.bootstrap} failed: self-signed certificate in certificate chain (the broker's certificate is not signed by a CA in FC_KAFKA_SSL_CA_FILE (${other.caFile}))`,
    );
    expect(message).not.toContain(PASSWORD);
    expect(lines.join("\n")).not.toContain(PASSWORD);
  });

  it("a client certificate the broker's CA did not sign is refused at the handshake, saying so", async () => {
    const other = createUnrelatedCa(join(dir, "rogue-ca"));
    const rogue = issueClientCertificate(other, join(dir, "rogue"), "rogue");
    const { error } = await failedStart(
      secureEnv(uniqueName("bad-cert"), "http://127.0.0.1:9/jobs", {
        FC_KAFKA_SSL_CERT_FILE: rogue.certFile,
        FC_KAFKA_SSL_KEY_FILE: rogue.keyFile,
      }),
    );
    expect(error).toBeInstanceOf(StartupError);
    expect((error as StartupError).message).toContain(
      `TLS with ${secure.bootstrap} failed: ssl/tls alert certificate unknown (the broker refused the handshake: is FC_KAFKA_SSL_CERT_FILE signed by a CA the broker trusts?)`,
    );
  });
});

describe("the TLS files, checked when the Kafka client is created (before connecting)", () => {
  it("names a wrong or missing key passphrase, a key of another certificate and a CA file without a certificate", async () => {
    const files = join(dir, "checks");
    const client = issueClientCertificate(secure, files, "checked", KEY_PASSPHRASE);
    const other = issueClientCertificate(secure, files, "other");
    const notPem = join(files, "not-a-ca.pem");
    writeFileSync(notPem, "no certificate here\n");
    const problemOf = async (overrides: Record<string, string>) => {
      const env = secureEnv(uniqueName("checks"), "http://127.0.0.1:9/jobs", overrides);
      const error = await startConnector(loadConfig(env), {
        logger: pino({ level: "silent" }),
        metricsRegistry: new Registry(),
      }).then(
        (c) => c.stop(),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).problems;
    };
    const tls = { FC_KAFKA_SSL_CERT_FILE: client.certFile, FC_KAFKA_SSL_KEY_FILE: client.keyFile };
    const wrong = `wrong-${randomBytes(8).toString("hex")}`;
    const problems = await problemOf({ ...tls, FC_KAFKA_SSL_KEY_PASSWORD: wrong });
    expect(problems).toEqual([
      `FC_KAFKA_SSL_KEY_FILE (${client.keyFile}) cannot be decrypted with FC_KAFKA_SSL_KEY_PASSWORD: wrong passphrase`,
    ]);
    expect(problems.join("\n")).not.toContain(wrong);
    expect(await problemOf(tls)).toEqual([
      `FC_KAFKA_SSL_KEY_FILE (${client.keyFile}) is encrypted: set its passphrase in FC_KAFKA_SSL_KEY_PASSWORD`,
    ]);
    expect(
      await problemOf({ FC_KAFKA_SSL_CERT_FILE: client.certFile, FC_KAFKA_SSL_KEY_FILE: other.keyFile }),
    ).toEqual([
      `FC_KAFKA_SSL_KEY_FILE (${other.keyFile}) is not the private key of FC_KAFKA_SSL_CERT_FILE (${client.certFile})`,
    ]);
    expect(await problemOf({ FC_KAFKA_SSL_CA_FILE: notPem })).toEqual([
      `FC_KAFKA_SSL_CA_FILE: ${notPem} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    ]);
  });
});
