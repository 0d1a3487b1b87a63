import "../../src/kafka/abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { ensureKafkaJars } from "./artifacts.ts";
import {
  type BrokerCertificates,
  type ClientCertificate,
  ensureBrokerCertificates,
  issueClientCertificate,
} from "./certificates.ts";
import { type ServiceProcess, spawnService, waitUntilReady } from "./processes.ts";

export interface KafkaServiceOptions {
  /** Apache Kafka release, 4.x.y (default line) or 3.9.y. */
  readonly version: string;
  readonly port: number;
  readonly controllerPort: number;
  /** Folder for the broker's data, config and log. */
  readonly dir: string;
  /** Maximum broker heap; the broker is one of several services on a small machine. Default "512m". */
  readonly heap?: string;
  /** Start on the storage already in `dir` (a broker restart) instead of formatting it afresh. */
  readonly keepData?: boolean;
  readonly readyTimeoutMs?: number;
  /**
   * Also listen with SASL_SSL on this port (127.0.0.1), beside PLAINTEXT: TLS with a certificate from a CA
   * made for the broker (in `dir`/tls/), and SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for these users.
   */
  readonly secureListener?: SecureListenerOptions;
}

export interface SecureListenerOptions {
  readonly port: number;
  /** User name -> password; each user can log in with every mechanism. Names and passwords: [A-Za-z0-9._-]. */
  readonly users: Readonly<Record<string, string>>;
  /**
   * Client certificates (mutual TLS): "none" (default), "requested" (a client may present one; if it does, it
   * must be signed by the broker's CA) or "required".
   */
  readonly clientAuth?: "none" | "requested" | "required";
}

export interface SecureListener {
  /** host:port of the SASL_SSL listener (127.0.0.1, a name its certificate carries). */
  readonly bootstrap: string;
  /** The CA that signed the broker's certificate, PEM: what a client trusts (FC_KAFKA_SSL_CA_FILE). */
  readonly caFile: string;
  /** That CA's key: issueClientCertificate signs client certificates the broker trusts with it. */
  readonly caKeyFile: string;
  readonly mechanisms: readonly SaslMechanism[];
}

export type SaslMechanism = "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";

const SASL_MECHANISMS: readonly SaslMechanism[] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

export interface KafkaService {
  readonly process: ServiceProcess;
  readonly bootstrap: string;
  /** The SASL_SSL listener, when asked for. */
  readonly secure?: SecureListener;
}

/** A KRaft cluster id: 16 random bytes, base64url without padding; one starting with '-' reads as a CLI flag. */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/**
 * Users end up inside a JAAS quoted string, a Java properties value and StorageTool's `[name=...,password=...]`:
 * a plain character set keeps every one of them unambiguous.
 */
const SAFE_CREDENTIAL = /^[A-Za-z0-9._-]{1,128}$/;

function checkUsers(users: Readonly<Record<string, string>>): void {
  const entries = Object.entries(users);
  if (entries.length === 0) throw new RangeError("secureListener.users: at least one user is needed");
  for (const [name, password] of entries) {
    if (!SAFE_CREDENTIAL.test(name) || !SAFE_CREDENTIAL.test(password)) {
      throw new RangeError(
        `secureListener.users: user ${JSON.stringify(name)}: names and passwords must be 1 to 128 of A-Z a-z 0-9 . _ -`,
      );
    }
  }
}

/** The SASL_SSL listener's lines: TLS from the PKCS12 keystore, PLAIN users in JAAS, SCRAM users in metadata. */
function secureListenerProperties(secure: SecureListenerOptions, certificates: BrokerCertificates): string[] {
  const plainUsers = Object.entries(secure.users)
    .map(([name, password]) => `user_${name}="${password}"`)
    .join(" ");
  const prefix = "listener.name.sasl_ssl";
  return [
    `${prefix}.ssl.keystore.type=PKCS12`,
    `${prefix}.ssl.keystore.location=${certificates.keystoreFile}`,
    `${prefix}.ssl.keystore.password=${certificates.keystorePassword}`,
    `${prefix}.ssl.key.password=${certificates.keystorePassword}`,
    `${prefix}.ssl.client.auth=${secure.clientAuth ?? "none"}`,
    // Client certificates are checked against the same CA.
    `${prefix}.ssl.truststore.type=PEM`,
    `${prefix}.ssl.truststore.location=${certificates.caFile}`,
    `sasl.enabled.mechanisms=${SASL_MECHANISMS.join(",")}`,
    `${prefix}.sasl.enabled.mechanisms=${SASL_MECHANISMS.join(",")}`,
    `${prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
    // SCRAM credentials live in the cluster metadata (StorageTool format --add-scram); the module needs no options.
    `${prefix}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    `${prefix}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
  ];
}

function serverProperties(
  options: KafkaServiceOptions,
  dataDir: string,
  certificates: BrokerCertificates | undefined,
): string {
  const secure = options.secureListener;
  const secureListener = secure === undefined ? "" : `,SASL_SSL://127.0.0.1:${secure.port}`;
  const lines = [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${options.controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${options.port},CONTROLLER://127.0.0.1:${options.controllerPort}${secureListener}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${options.port}${secureListener}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    `listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${secure === undefined ? "" : ",SASL_SSL:SASL_SSL"}`,
    `log.dirs=${dataDir}`,
    "num.partitions=1",
    // A single node: every internal topic must make do with one replica, or the group and
    // transaction coordinators never become available.
    "offsets.topic.replication.factor=1",
    "offsets.topic.num.partitions=3",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "transaction.state.log.num.partitions=3",
    "group.initial.rebalance.delay.ms=0",
    "auto.create.topics.enable=false",
  ];
  if (options.version.startsWith("4.")) {
    lines.push(
      "share.coordinator.state.topic.replication.factor=1",
      "share.coordinator.state.topic.min.isr=1",
    );
  }
  if (secure !== undefined && certificates !== undefined) {
    lines.push(...secureListenerProperties(secure, certificates));
  }
  return `${lines.join("\n")}\n`;
}

/** Kafka 4 logs through log4j2, 3.9 through reload4j: each gets a console config (stdout goes to the log file). */
function writeLogConfig(options: KafkaServiceOptions): string {
  if (options.version.startsWith("4.")) {
    const file = join(options.dir, "log4j2.xml");
    writeFileSync(
      file,
      `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
`,
    );
    return `-Dlog4j2.configurationFile=${file}`;
  }
  const file = join(options.dir, "log4j.properties");
  writeFileSync(
    file,
    [
      "log4j.rootLogger=WARN, stdout",
      "log4j.logger.kafka=INFO",
      "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
      "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
      "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
      "",
    ].join("\n"),
  );
  return `-Dlog4j.configuration=file:${file}`;
}

/**
 * True once the broker answers metadata requests and the group coordinator can be found; through the secure
 * listener with `login` (TLS trusting `caFile`, SCRAM-SHA-512: SCRAM users come from the metadata log).
 */
async function brokerReady(
  bootstrap: string,
  login?: { caFile: string; username: string; password: string; client?: ClientCertificate },
): Promise<boolean> {
  const kafka = new Kafka({
    clientId: "stack-readiness",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1000,
    ...(login === undefined
      ? {}
      : {
          ssl: {
            ca: readFileSync(login.caFile, "utf8"),
            ...(login.client === undefined
              ? {}
              : { cert: readFileSync(login.client.certFile), key: readFileSync(login.client.keyFile) }),
          },
          sasl: { mechanism: "scram-sha-512", username: login.username, password: login.password },
        }),
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Formats fresh KRaft storage in options.dir and starts a single-node broker+controller. */
export async function startKafka(options: KafkaServiceOptions): Promise<KafkaService> {
  const jars = ensureKafkaJars(options.version);
  const dataDir = join(options.dir, "data");
  mkdirSync(dataDir, { recursive: true });
  const secure = options.secureListener;
  if (secure !== undefined) checkUsers(secure.users);
  const certificates = secure === undefined ? undefined : ensureBrokerCertificates(join(options.dir, "tls"));
  const propertiesFile = join(options.dir, "server.properties");
  writeFileSync(propertiesFile, serverProperties(options, dataDir, certificates));
  const logConfig = writeLogConfig(options);
  const classpath = `${jars}/*`;
  const jvm = [`-Xmx${options.heap ?? "512m"}`, `-Xms${options.heap ?? "512m"}`, "-XX:+UseG1GC", logConfig];

  const formatted = options.keepData === true && existsSync(join(dataDir, "meta.properties"));
  const format = formatted
    ? { status: 0, stdout: "", stderr: "" }
    : spawnSync(
        "java",
        [
          ...jvm,
          "-cp",
          classpath,
          "kafka.tools.StorageTool",
          "format",
          "-t",
          newClusterId(),
          "-c",
          propertiesFile,
          ...scramUsers(secure),
        ],
        { encoding: "utf8" },
      );
  if (format.status !== 0) {
    throw new Error(`Kafka storage format failed:\n${format.stdout}\n${format.stderr}`);
  }

  const service = spawnService({
    name: `kafka ${options.version}`,
    command: "java",
    args: [...jvm, "-cp", classpath, "kafka.Kafka", propertiesFile],
    logFile: join(options.dir, "kafka.log"),
  });
  const bootstrap = `127.0.0.1:${options.port}`;
  const timeoutMs = options.readyTimeoutMs ?? 90_000;
  await waitUntilReady(service, () => brokerReady(bootstrap), timeoutMs);
  if (secure === undefined || certificates === undefined) return { process: service, bootstrap };

  const secureBootstrap = `127.0.0.1:${secure.port}`;
  const [username, password] = Object.entries(secure.users)[0] as [string, string];
  // A listener that requires client certificates admits the readiness probe only with one.
  const client =
    secure.clientAuth === "required"
      ? issueClientCertificate(certificates, join(options.dir, "tls", "readiness"), "stack-readiness")
      : undefined;
  await waitUntilReady(
    service,
    () =>
      brokerReady(secureBootstrap, {
        caFile: certificates.caFile,
        username,
        password,
        ...(client ? { client } : {}),
      }),
    timeoutMs,
  );
  return {
    process: service,
    bootstrap,
    secure: {
      bootstrap: secureBootstrap,
      caFile: certificates.caFile,
      caKeyFile: certificates.caKeyFile,
      mechanisms: SASL_MECHANISMS,
    },
  };
}

/** StorageTool's --add-scram arguments: every user with both SCRAM mechanisms, written into the metadata log. */
function scramUsers(secure: SecureListenerOptions | undefined): string[] {
  if (secure === undefined) return [];
  return Object.entries(secure.users).flatMap(([name, password]) =>
    ["SCRAM-SHA-256", "SCRAM-SHA-512"].flatMap((mechanism) => [
      "--add-scram",
      `${mechanism}=[name=${name},password=${password}]`,
    ]),
  );
}
