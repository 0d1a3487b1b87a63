import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { ensureKafkaJars } from "./artifacts.ts";
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
}

export interface KafkaService {
  readonly process: ServiceProcess;
  readonly bootstrap: string;
}

/** A KRaft cluster id: 16 random bytes, base64url without padding; one starting with '-' reads as a CLI flag. */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

function serverProperties(options: KafkaServiceOptions, dataDir: string): string {
  const lines = [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${options.controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${options.port},CONTROLLER://127.0.0.1:${options.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${options.port}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
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

/** True once the broker answers metadata requests and the group coordinator can be found. */
async function brokerReady(bootstrap: string): Promise<boolean> {
  const kafka = new Kafka({
    clientId: "stack-readiness",
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1000,
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
  const propertiesFile = join(options.dir, "server.properties");
  writeFileSync(propertiesFile, serverProperties(options, dataDir));
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
  await waitUntilReady(service, () => brokerReady(bootstrap), options.readyTimeoutMs ?? 90_000);
  return { process: service, bootstrap };
}
