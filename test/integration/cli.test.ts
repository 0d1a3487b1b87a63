import { BlobServiceClient } from "@azure/storage-blob";
import { describe, expect, inject, it } from "vitest";
import { createEmulator } from "../../emulator/index.ts";
import { freePort } from "../../stack/src/processes.ts";
import { runCli } from "../helpers/cli.ts";
import { uniqueName } from "../helpers/kafka.ts";

async function baseEnv(id: string, scoringUri: string) {
  const stack = inject("stack");
  const blobs = BlobServiceClient.fromConnectionString(stack.blobConnectionString);
  await blobs.getContainerClient(`${id}-in`).createIfNotExists();
  await blobs.getContainerClient(`${id}-out`).createIfNotExists();
  return {
    FC_KAFKA_BROKERS: stack.kafkaBrokers.join(","),
    FC_KAFKA_GROUP_ID: `${id}-group`,
    FC_INPUT_TOPIC: `${id}-in`,
    FC_RESULTS_TOPIC: `${id}-out`,
    FC_DEAD_LETTER_TOPIC: `${id}-dlq`,
    // A ledger of its own: the default name is shared by every test on this broker, whatever its partitions.
    FC_LEDGER_TOPIC: `${id}-ledger`,
    FC_SCHEMA_REGISTRY_URL: stack.registryUrl,
    FC_INPUT_STORAGE_CONNECTION_STRING: stack.blobConnectionString,
    FC_INPUT_CONTAINER: `${id}-in`,
    FC_OUTPUT_CONTAINER: `${id}-out`,
    FC_ENDPOINT_SCORING_URI: scoringUri,
    FC_AZURE_CREDENTIAL: "local-dev",
    FC_HTTP_PORT: String(await freePort()),
    FC_SHUTDOWN_TIMEOUT_MS: "3000",
  };
}

describe("forecast-connector run", () => {
  it("refuses to start, naming each missing topic and container, with exit code 2", async () => {
    const id = uniqueName("cli-missing");
    const env = await baseEnv(id, "http://127.0.0.1:9/jobs");
    const run = runCli({ ...env, FC_OUTPUT_CONTAINER: `${id}-nowhere` });
    expect(await run.exitCode).toBe(2);
    const output = run.output();
    expect(output).toContain(`Kafka topic \\"${id}-in\\" does not exist`);
    expect(output).toContain(`${id}-out`);
    expect(output).toContain(`${id}-dlq`);
    expect(output).toContain(`output container \\"${id}-nowhere\\" does not exist`);
  });

  it("starts, reports ready, and on SIGTERM stops within the shutdown bound with exit code 0", async () => {
    const id = uniqueName("cli-run");
    const emulator = await createEmulator({ blobConnectionString: inject("stack").blobConnectionString });
    try {
      const env = { ...(await baseEnv(id, emulator.scoringUri)), FC_CREATE_TOPICS: "true" };
      const run = runCli(env);
      const deadline = Date.now() + 60_000;
      let ready = false;
      while (!ready && Date.now() < deadline) {
        ready = await fetch(`http://127.0.0.1:${env.FC_HTTP_PORT}/readyz`).then(
          (r) => r.ok,
          () => false,
        );
        if (!ready) await new Promise((r) => setTimeout(r, 200));
      }
      expect(ready, run.output()).toBe(true);
      const metrics = await (await fetch(`http://127.0.0.1:${env.FC_HTTP_PORT}/metrics`)).text();
      expect(metrics).toContain("forecast_connector_events_consumed_total 0");
      expect((await fetch(`http://127.0.0.1:${env.FC_HTTP_PORT}/healthz`)).status).toBe(200);

      const stopAsked = Date.now();
      run.child.kill("SIGTERM");
      expect(await run.exitCode, run.output()).toBe(0);
      // FC_SHUTDOWN_TIMEOUT_MS (3 s) for work in flight plus the consumer leaving its group.
      expect(Date.now() - stopAsked).toBeLessThan(15_000);
      expect(run.output()).toContain('"msg":"stopped"');
      // Logs are JSON lines: nothing else on the process's output.
      for (const line of run.output().trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
    } finally {
      await emulator.close();
    }
  });
});
