import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

const VALID_ENV = {
  FC_KAFKA_BROKERS: "127.0.0.1:9092",
  FC_INPUT_TOPIC: "features",
  FC_RESULTS_TOPIC: "forecasts",
  FC_DEAD_LETTER_TOPIC: "features-dlq",
  FC_SCHEMA_REGISTRY_URL: "http://127.0.0.1:8081",
  FC_INPUT_STORAGE_CONNECTION_STRING:
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleS1mb3ItdGVzdHM=;EndpointSuffix=core.windows.net",
  FC_INPUT_CONTAINER: "batches",
  FC_ENDPOINT_SCORING_URI:
    "https://sales-forecast-endpoint-v2.germanywestcentral.inference.ml.azure.com/jobs",
};

function cli(args: string[], env: Record<string, string>) {
  // Only PATH from the parent: a stray FC_* variable of the developer's shell must not leak in.
  return spawnSync(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
}

describe("forecast-connector check-config", () => {
  it("accepts a valid configuration, prints it without secrets, and exits 0", () => {
    const result = cli(["check-config"], VALID_ENV);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("configuration is valid");
    expect(result.stdout).toContain('"topic": "features"');
    expect(result.stdout).not.toContain("c2VjcmV0LWtleS1mb3ItdGVzdHM=");
  });

  it("exits 2 naming every bad variable and what is wrong", () => {
    const result = cli(["check-config"], {
      ...VALID_ENV,
      FC_BATCH_MAX_RECORDS: "lots",
      FC_ENDPOINT_API_FLAVOR: "v3",
      FC_INPUT_TOPIC: "",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/FC_BATCH_MAX_RECORDS[^\n]*"lots"/);
    expect(result.stderr).toMatch(/FC_ENDPOINT_API_FLAVOR[^\n]*v3/);
    expect(result.stderr).toContain("FC_INPUT_TOPIC");
    expect(result.stdout).toBe("");
  });

  it("refuses a plain-http scoring URI that is not on loopback (a token must not travel in clear)", () => {
    const result = cli(["check-config"], {
      ...VALID_ENV,
      FC_ENDPOINT_SCORING_URI: "http://example.com/jobs",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("FC_ENDPOINT_SCORING_URI");
  });

  it("rejects an unknown command with usage and exit 2", () => {
    const result = cli(["frobnicate"], VALID_ENV);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("usage: forecast-connector run | check-config");
  });
});
