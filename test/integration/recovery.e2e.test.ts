import { type ChildProcess, spawn } from "node:child_process";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import { describe, expect, inject, it } from "vitest";
import { createEmulator } from "../../emulator/index.ts";
import { createRunContainers } from "../helpers/blobs.ts";
import { CLI, cliEnv } from "../helpers/cli.ts";
import { expectedPrediction, features } from "../helpers/connectorHarness.ts";
import { createTopics, testKafka, uniqueName } from "../helpers/kafka.ts";

function startCli(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [CLI, "run"], {
    env: cliEnv(env),
    stdio: "ignore",
  });
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("a crash at any moment loses nothing and doubles nothing", () => {
  it("after SIGKILL with jobs running, a restarted connector resumes them: every event predicted once, one job per batch", async () => {
    const stack = inject("stack");
    const id = uniqueName("crash");
    const kafka = testKafka();
    const topics = { input: `${id}-in`, results: `${id}-out`, dlq: `${id}-dlq` };
    await createTopics(kafka, [topics.input], 3);
    await createTopics(kafka, [topics.results, topics.dlq]);
    await createRunContainers(id);
    const emulator = await createEmulator({
      blobConnectionString: stack.blobConnectionString,
      outputContainer: `${id}-out`,
      coldStartMs: 1500,
      runMs: 1500,
    });
    const env = {
      FC_KAFKA_BROKERS: stack.kafkaBrokers.join(","),
      FC_KAFKA_GROUP_ID: `${id}-group`,
      FC_KAFKA_SESSION_TIMEOUT_MS: "6000",
      FC_INPUT_TOPIC: topics.input,
      FC_RESULTS_TOPIC: topics.results,
      FC_DEAD_LETTER_TOPIC: topics.dlq,
      FC_LEDGER_TOPIC: `${id}-ledger`,
      FC_CREATE_TOPICS: "true",
      FC_SCHEMA_REGISTRY_URL: stack.registryUrl,
      FC_INPUT_STORAGE_CONNECTION_STRING: stack.blobConnectionString,
      FC_INPUT_CONTAINER: `${id}-in`,
      FC_OUTPUT_CONTAINER: `${id}-out`,
      FC_ENDPOINT_SCORING_URI: emulator.scoringUri,
      FC_AZURE_CREDENTIAL: "local-dev",
      FC_BATCH_MAX_RECORDS: "20",
      FC_BATCH_MAX_WAIT_MS: "300",
      FC_JOB_POLL_INTERVAL_MS: "200",
      FC_HTTP_PORT: "0",
      FC_LOG_LEVEL: "warn",
    };
    const sent = Array.from({ length: 100 }, (_, i) => ({
      store_id: `CR_${i % 9}`,
      features: features(i + 7),
    }));
    let second: ChildProcess | undefined;
    try {
      const first = startCli(env);
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic: topics.input,
        messages: sent.map((row) => ({ key: row.store_id, value: JSON.stringify(row) })),
      });
      await producer.disconnect();

      // Kill it while its jobs are running: nothing of theirs is published or committed yet.
      await waitFor("jobs to be submitted", () => emulator.jobs().length >= 3);
      first.kill("SIGKILL");
      await new Promise((resolve) => first.once("exit", resolve));
      const jobsBeforeCrash = emulator.jobs().length;

      second = startCli(env);
      const registry = new SchemaRegistry({ host: stack.registryUrl });
      const seen = new Map<string, number>();
      const values: Array<Record<string, unknown>> = [];
      const reader = kafka.consumer({ groupId: uniqueName("reader") });
      await reader.connect();
      await reader.subscribe({ topic: topics.results, fromBeginning: true });
      await reader.run({
        eachMessage: async ({ message }) => {
          const value = (await registry.decode(message.value as Buffer)) as Record<string, unknown>;
          const key = `${value.source_partition}/${value.source_offset}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
          values.push(value);
        },
      });
      await waitFor("a prediction for every event", () => seen.size === sent.length, 90_000);

      // Committed offsets reach the end of every partition: every event has an acknowledged outcome.
      const admin = kafka.admin();
      await admin.connect();
      await waitFor("commits at the end of the input", async () => {
        const ends = await admin.fetchTopicOffsets(topics.input);
        const committed = (
          await admin.fetchOffsets({ groupId: env.FC_KAFKA_GROUP_ID, topics: [topics.input] })
        )[0];
        return ends.every(
          (e) => committed?.partitions.find((p) => p.partition === e.partition)?.offset === e.high,
        );
      });
      await admin.disconnect();
      await reader.disconnect();

      // Each prediction is the formula's value for its event, published once (exactly once, the default):
      // the restarted connector resumed the jobs in flight from the ledger instead of submitting them again.
      const expected = new Set(sent.map((row) => `${row.store_id}|${expectedPrediction(row.features)}`));
      for (const value of values) expect(expected.has(`${value.store_id}|${value.prediction}`)).toBe(true);
      const duplicates = [...seen.values()].reduce((sum, n) => sum + (n - 1), 0);
      expect(duplicates).toBe(0);
      expect(values).toHaveLength(sent.length);
      const jobsPerBatch = new Map<string, number>();
      for (const job of emulator.jobs())
        jobsPerBatch.set(job.inputUri, (jobsPerBatch.get(job.inputUri) ?? 0) + 1);
      expect([...jobsPerBatch.values()].every((n) => n === 1)).toBe(true);
      expect(emulator.jobs().length).toBeGreaterThanOrEqual(jobsBeforeCrash);
    } finally {
      second?.kill("SIGTERM");
      if (second && second.exitCode === null) await new Promise((resolve) => second?.once("exit", resolve));
      await emulator.close();
    }
  });
});
