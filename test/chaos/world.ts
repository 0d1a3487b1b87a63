/**
 * A world for the chaos suite: its own topics, containers, group and emulator on the real local stack, the
 * connector run as real processes (`node src/cli.ts run`) that a scenario kills, stops, pauses and restarts,
 * and the accounting every scenario asserts: events in = unique predictions + dead letters, duplicates seen
 * by a read_committed consumer, jobs the endpoint created per batch (its own record).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import type { Kafka } from "kafkajs";
import { inject } from "vitest";
import { createEmulator, type Emulator, type EmulatorFaults } from "../../emulator/index.ts";
import { localConnectorEnv } from "../../stack/src/connectorEnv.ts";
import { createRunContainers } from "../helpers/blobs.ts";
import { CLI, cliEnv } from "../helpers/cli.ts";
import { expectedPrediction, features } from "../helpers/connectorHarness.ts";
import { createTopics, testKafka, uniqueName } from "../helpers/kafka.ts";

export type Mode = "exactly-once" | "at-least-once";

export interface LogLine {
  readonly msg?: string;
  readonly [field: string]: unknown;
}

export interface ConnectorProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** Resolves with the first log line (from now or already seen) that matches. */
  waitForLog(match: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  signal(signal: NodeJS.Signals): void;
  readonly exited: Promise<number | null>;
}

export interface Accounting {
  readonly events: number;
  readonly valid: number;
  readonly uniquePredictions: number;
  readonly predictions: number;
  readonly duplicates: number;
  readonly deadLetters: number;
  readonly uniqueDeadLetters: number;
  readonly wrongValues: number;
  readonly batches: number;
  readonly jobs: number;
  readonly maxJobsPerBatch: number;
  readonly committedAtEnd: boolean;
  /** Which records were seen more than once (for the report). */
  readonly duplicated?: readonly string[];
}

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A TCP pass-through that can be cut (every connection dropped, new ones refused) and restored. */
export async function switchableProxy(targetHost: string, targetPort: number) {
  const sockets = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    cut() {
      down = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface WorldOptions {
  readonly mode: Mode;
  readonly partitions?: number;
  /** Emulator job timing: long enough that kills land while jobs run. */
  readonly coldStartMs?: number;
  readonly runMs?: number;
  /** Route the connector's blob traffic through a switchable proxy (for storage outages). */
  readonly blobProxy?: boolean;
  readonly env?: Record<string, string>;
}

export async function createWorld(options: WorldOptions) {
  const stack = inject("stack");
  const kafka: Kafka = testKafka();
  const id = uniqueName("chaos");
  const partitions = options.partitions ?? 4;
  const topics = { input: `${id}-in`, results: `${id}-out`, deadLetter: `${id}-dlq`, ledger: `${id}-ledger` };
  await createTopics(kafka, [topics.input], partitions);
  await createTopics(kafka, [topics.results, topics.deadLetter], 2);
  const { inputContainer, outputContainer } = await createRunContainers(id);

  const emulatorOptions = {
    blobConnectionString: stack.blobConnectionString,
    outputContainer,
    coldStartMs: options.coldStartMs ?? 500,
    runMs: options.runMs ?? 2500,
  };
  let emulator: Emulator = await createEmulator(emulatorOptions);
  const emulatorPort = Number(new URL(emulator.baseUrl).port);
  /** Every job any incarnation of the emulator created (a restart forgets its jobs). */
  const jobsOfEarlierEmulators: ReturnType<Emulator["jobs"]> = [];

  let blobProxy: Awaited<ReturnType<typeof switchableProxy>> | undefined;
  let blobConnectionString = stack.blobConnectionString;
  if (options.blobProxy) {
    const endpoint = new URL(stack.blobEndpoint);
    blobProxy = await switchableProxy(endpoint.hostname, Number(endpoint.port));
    blobConnectionString = stack.blobConnectionString.replace(
      /BlobEndpoint=[^;]+/,
      // A TCP proxy: TLS (Azurite serves HTTPS on the local stack) passes through it.
      `BlobEndpoint=${endpoint.protocol}//127.0.0.1:${blobProxy.port}${endpoint.pathname}`,
    );
  }

  const env: Record<string, string> = {
    ...localConnectorEnv({
      endpoints: { ...stack, blobConnectionString },
      groupId: `${id}-group`,
      topics,
      inputContainer,
      outputContainer,
      scoringUri: emulator.scoringUri,
    }),
    FC_DELIVERY_GUARANTEE: options.mode,
    FC_CREATE_TOPICS: "true",
    FC_KAFKA_SESSION_TIMEOUT_MS: "6000",
    FC_BATCH_MAX_RECORDS: "40",
    FC_BATCH_MAX_WAIT_MS: "500",
    FC_MAX_JOBS_IN_FLIGHT: "4",
    FC_JOB_POLL_INTERVAL_MS: "200",
    FC_JOB_TIMEOUT_MS: "60000",
    FC_HTTP_RETRY_DELAY_MS: "50",
    FC_HTTP_MAX_RETRY_DELAY_MS: "500",
    FC_HTTP_MAX_RETRIES: "3",
    FC_RETRY_INITIAL_DELAY_MS: "50",
    FC_RETRY_MAX_DELAY_MS: "1000",
    FC_HTTP_PORT: "0",
    FC_LOG_LEVEL: "debug",
    FC_SHUTDOWN_TIMEOUT_MS: "5000",
    ...options.env,
  };

  const processes: ConnectorProcess[] = [];
  const sent: Array<{ partition: number; valid: boolean; storeId: string; features: number[] }> = [];

  const start = (name: string): ConnectorProcess => {
    const child = spawn(process.execPath, [CLI, "run"], {
      env: cliEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const logs: LogLine[] = [];
    const listeners = new Set<() => void>();
    let buffered = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        try {
          logs.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
        newline = buffered.indexOf("\n");
      }
      for (const listener of listeners) listener();
    });
    child.stderr?.resume();
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const proc: ConnectorProcess = {
      name,
      child,
      logs,
      exited,
      signal: (signal) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
      waitForLog(match, what, timeoutMs = 60_000) {
        const found = logs.find(match);
        if (found) return Promise.resolve(found);
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            listeners.delete(check);
            reject(new Error(`${name}: timed out waiting for ${what}`));
          }, timeoutMs);
          const check = () => {
            const line = logs.find(match);
            if (line) {
              clearTimeout(timer);
              listeners.delete(check);
              resolve(line);
            }
          };
          listeners.add(check);
        });
      },
    };
    processes.push(proc);
    return proc;
  };

  /** Sends `count` events round-robin over the partitions; every 25th is invalid (no features). */
  const produce = async (count: number) => {
    const producer = kafka.producer();
    await producer.connect();
    const messages = [];
    for (let i = 0; i < count; i++) {
      const index = sent.length;
      const partition = index % partitions;
      const valid = index % 25 !== 7;
      const storeId = `CH_${index % 13}`;
      const row = { storeId, features: features(index + 3), partition, valid };
      sent.push(row);
      messages.push({
        partition,
        key: storeId,
        value: valid
          ? JSON.stringify({ store_id: storeId, features: row.features })
          : JSON.stringify({ store_id: storeId }),
      });
    }
    await producer.send({ topic: topics.input, messages });
    await producer.disconnect();
  };

  const allJobs = () => [...jobsOfEarlierEmulators, ...emulator.jobs()];

  /** Reads a topic to its end as it is now, read_committed, past transaction markers. */
  const readToEnd = async (topic: string) => {
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const remaining = new Map(
      ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high)]),
    );
    const records: Array<{ value: Buffer | null; headers: Record<string, string> }> = [];
    if (remaining.size === 0) return records;
    const consumer = kafka.consumer({ groupId: uniqueName("chaos-reader") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${topic}: not read to its end in 60 s`)), 60_000);
        consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
          // A fetch that held nothing at or past its offset says nothing about how far the reading got.
          if (payload.firstOffset === null || payload.firstOffset === undefined) return;
          const end = remaining.get(payload.partition);
          if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end)
            remaining.delete(payload.partition);
          if (remaining.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            const end = remaining.get(partition);
            if (end !== undefined && BigInt(message.offset) >= end) return;
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(message.headers ?? {}))
              headers[k] = String(Array.isArray(v) ? v[0] : v);
            records.push({ value: message.value, headers });
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
    return records;
  };

  const registry = new SchemaRegistry({ host: stack.registryUrl });

  /** The accounting of everything published so far. */
  const account = async (): Promise<Accounting> => {
    const predictionRecords = await readToEnd(topics.results);
    const letterRecords = await readToEnd(topics.deadLetter);
    const seen = new Map<string, number>();
    let wrongValues = 0;
    const offsetsByPartition = new Map<number, number>();
    const sentAt = new Map<string, (typeof sent)[number]>();
    for (const row of sent) {
      const offset = offsetsByPartition.get(row.partition) ?? 0;
      offsetsByPartition.set(row.partition, offset + 1);
      sentAt.set(`${row.partition}/${offset}`, row);
    }
    for (const record of predictionRecords) {
      const value = (await registry.decode(record.value as Buffer)) as Record<string, unknown>;
      const key = `${value.source_partition}/${value.source_offset}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      const row = sentAt.get(key);
      if (!row || value.store_id !== row.storeId || value.prediction !== expectedPrediction(row.features))
        wrongValues++;
    }
    const letterKeys = letterRecords.map(
      (r) => `${r.headers["dlq.source.partition"]}/${r.headers["dlq.source.offset"]}`,
    );
    const letters = new Set(letterKeys);
    const duplicated = [
      ...[...seen].filter(([, n]) => n > 1).map(([key]) => `prediction ${key}`),
      ...letterKeys.filter((key, i) => letterKeys.indexOf(key) !== i).map((key) => `dead letter ${key}`),
    ];
    const jobs = allJobs();
    const perBatch = new Map<string, number>();
    for (const job of jobs) perBatch.set(job.inputUri, (perBatch.get(job.inputUri) ?? 0) + 1);

    const admin = kafka.admin();
    await admin.connect();
    const [ends, committed] = await Promise.all([
      admin.fetchTopicOffsets(topics.input),
      admin.fetchOffsets({ groupId: env.FC_KAFKA_GROUP_ID as string, topics: [topics.input] }),
    ]).finally(() => admin.disconnect());
    const committedAtEnd = ends.every(
      (e) => committed[0]?.partitions.find((p) => p.partition === e.partition)?.offset === e.high,
    );
    return {
      events: sent.length,
      valid: sent.filter((s) => s.valid).length,
      uniquePredictions: seen.size,
      predictions: predictionRecords.length,
      duplicates: predictionRecords.length - seen.size + (letterRecords.length - letters.size),
      deadLetters: letterRecords.length,
      uniqueDeadLetters: letters.size,
      wrongValues,
      batches: perBatch.size,
      jobs: jobs.length,
      maxJobsPerBatch: Math.max(0, ...perBatch.values()),
      committedAtEnd,
      ...(duplicated.length > 0 ? { duplicated } : {}),
    };
  };

  /** Waits until every event has a prediction or a dead letter (unique ones), and the offsets are committed. */
  const settled = async (timeoutMs = 120_000) => {
    let last: Accounting | undefined;
    await waitFor(
      "every event accounted for and committed",
      async () => {
        // The test's own reads may fail while the broker restarts: try again.
        const now = await account().catch(() => undefined);
        if (!now) return false;
        last = now;
        return last.uniquePredictions + last.uniqueDeadLetters >= last.events && last.committedAtEnd;
      },
      timeoutMs,
    ).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(last)}`);
    });
    return last as Accounting;
  };

  return {
    id,
    kafka,
    topics,
    env,
    get emulator() {
      return emulator;
    },
    blobProxy,
    start,
    processes,
    produce,
    account,
    settled,
    sent,
    setFaults: (faults: EmulatorFaults) => emulator.setFaults(faults),
    /** Stops the emulator and starts a new one on the same port: every job it knew is gone. */
    async restartEmulator() {
      jobsOfEarlierEmulators.push(...emulator.jobs());
      await emulator.close();
      emulator = await createEmulator({ ...emulatorOptions, port: emulatorPort });
    },
    async stopAll() {
      for (const proc of processes) proc.signal("SIGCONT");
      for (const proc of processes) proc.signal("SIGTERM");
      await Promise.race([
        Promise.all(processes.map((p) => p.exited)),
        new Promise((resolve) => setTimeout(resolve, 20_000)),
      ]);
      for (const proc of processes) proc.signal("SIGKILL");
      await Promise.all(processes.map((p) => p.exited));
    },
    async close() {
      await this.stopAll();
      await emulator.close();
      await blobProxy?.close();
    },
  };
}

export type World = Awaited<ReturnType<typeof createWorld>>;
