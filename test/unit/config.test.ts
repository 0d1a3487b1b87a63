import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  ConfigError,
  crossFieldRulesMarkdown,
  loadConfig,
  type PlacedSetting,
  RULES,
  redactedConfig,
  SETTING_NAMES,
  SETTINGS,
  settingsMarkdownTable,
} from "../../src/config/index.ts";

const MINIMAL: NodeJS.ProcessEnv = {
  FC_KAFKA_BROKERS: "localhost:9092",
  FC_INPUT_TOPIC: "store-features",
  FC_RESULTS_TOPIC: "store-forecasts",
  FC_DEAD_LETTER_TOPIC: "store-features.dlq",
  FC_SCHEMA_REGISTRY_URL: "http://localhost:8081",
  FC_INPUT_STORAGE_ACCOUNT_URL: "https://forecastinput.blob.core.windows.net",
  FC_INPUT_CONTAINER: "forecast-input",
  FC_ENDPOINT_SCORING_URI:
    "https://sales-forecast-endpoint-v2.germanywestcentral.inference.ml.azure.com/jobs",
};

/** The TLS file settings are checked to name files that exist: these do (their content is not read at load). */
const TLS_DIR = mkdtempSync(join(tmpdir(), "fc-config-test-"));
const CA_FILE = join(TLS_DIR, "ca.pem");
const CERT_FILE = join(TLS_DIR, "client.pem");
const KEY_FILE = join(TLS_DIR, "client.key");
for (const file of [CA_FILE, CERT_FILE, KEY_FILE])
  writeFileSync(file, "not read when the configuration loads\n");
mkdirSync(join(TLS_DIR, "a-folder"));
afterAll(() => rmSync(TLS_DIR, { recursive: true, force: true }));

const AZURITE =
  "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

/**
 * Every setting set to a valid, non-default value (connection strings rather than account URLs), except
 * FC_KAFKA_SSL_REJECT_UNAUTHORIZED=false, which needs loopback brokers (the second environment below).
 */
const FULL: NodeJS.ProcessEnv = {
  FC_KAFKA_BROKERS: "kafka-1:9092, kafka-2.example.com:9093,10.0.0.3:9094",
  FC_KAFKA_CLIENT_ID: "fc-client",
  FC_KAFKA_GROUP_ID: "fc-group",
  FC_KAFKA_SSL: "yes",
  FC_KAFKA_SSL_CA_FILE: CA_FILE,
  FC_KAFKA_SSL_CERT_FILE: CERT_FILE,
  FC_KAFKA_SSL_KEY_FILE: KEY_FILE,
  FC_KAFKA_SSL_KEY_PASSWORD: "kafka-key-secret-pw",
  FC_KAFKA_SASL_MECHANISM: "scram-sha-512",
  FC_KAFKA_SASL_USERNAME: "connector",
  FC_KAFKA_SASL_PASSWORD: "kafka-secret-pw",
  FC_INPUT_TOPIC: "in",
  FC_RESULTS_TOPIC: "out",
  FC_DEAD_LETTER_TOPIC: "dlq",
  FC_DELIVERY_GUARANTEE: "at-least-once",
  FC_LEDGER_TOPIC: "fc-ledger",
  FC_CREATE_TOPICS: "1",
  FC_TOPIC_PARTITIONS: "12",
  FC_KAFKA_SESSION_TIMEOUT_MS: "45000",
  FC_SCHEMA_REGISTRY_URL: "https://registry.example.com/apis/ccompat/v7",
  FC_SCHEMA_REGISTRY_USERNAME: "registry-user",
  FC_SCHEMA_REGISTRY_PASSWORD: "registry-secret-pw",
  FC_FEATURE_COUNT: "20",
  FC_MAX_STORE_ID_LENGTH: "32",
  FC_MAX_MESSAGE_BYTES: "1000",
  FC_BATCH_MAX_RECORDS: "500",
  FC_BATCH_MAX_BYTES: "100000",
  FC_BATCH_MAX_WAIT_MS: "5000",
  FC_INPUT_STORAGE_CONNECTION_STRING: AZURITE,
  FC_INPUT_CONTAINER: "in-container",
  FC_INPUT_PREFIX: "fc/in",
  FC_OUTPUT_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true",
  FC_OUTPUT_CONTAINER: "out-container",
  FC_OUTPUT_PATH_TEMPLATE: "results/{batchId}/{jobId}.csv",
  FC_ENDPOINT_SCORING_URI: "http://127.0.0.1:8080/jobs",
  FC_ENDPOINT_API_FLAVOR: "v2",
  FC_ENDPOINT_STATUS_URL_TEMPLATE: "http://localhost:8080/jobs/{jobId}/status",
  FC_ENDPOINT_DEPLOYMENT: "blue",
  FC_ENDPOINT_TOKEN_SCOPE: "api://forecast/.default",
  FC_AZURE_CREDENTIAL: "local-dev",
  FC_AZURE_DISABLE_INSTANCE_DISCOVERY: "true",
  FC_ENDPOINT_OUTPUT_DATASTORE: "my_datastore",
  FC_ENDPOINT_STATUS_API: "arm",
  FC_ENDPOINT_INPUT_URI_FORM: "azureml",
  FC_ENDPOINT_INPUT_DATASTORE: "fc_input",
  FC_ENDPOINT_INPUT_TYPE: "auto",
  FC_ARM_SUBSCRIPTION_ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
  FC_ARM_RESOURCE_GROUP: "rg-forecasting.prod(1)",
  FC_ARM_WORKSPACE: "mlw-forecasting",
  FC_ARM_BASE_URL: "http://127.0.0.1:8080",
  FC_ARM_API_VERSION: "2024-10-01-preview",
  FC_ARM_TOKEN_SCOPE: "https://management.core.windows.net/.default",
  FC_ARM_CANCEL_JOBS: "false",
  FC_ARM_CANCEL_TIMEOUT_MS: "5000",
  FC_HTTP_MAX_RETRIES: "2",
  FC_HTTP_RETRY_DELAY_MS: "10",
  FC_HTTP_MAX_RETRY_DELAY_MS: "100",
  FC_HTTP_REQUEST_TIMEOUT_MS: "2000",
  FC_RETRY_INITIAL_DELAY_MS: "15",
  FC_RETRY_MAX_DELAY_MS: "150",
  FC_JOB_POLL_INTERVAL_MS: "50",
  FC_JOB_TIMEOUT_MS: "10000",
  FC_JOB_MAX_ATTEMPTS: "5",
  FC_MAX_JOBS_IN_FLIGHT: "2",
  FC_MAX_EVENTS_IN_FLIGHT: "5000",
  FC_HTTP_PORT: "0",
  FC_PROGRESS_TIMEOUT_MS: "60000",
  FC_LOG_LEVEL: "debug",
  FC_SHUTDOWN_TIMEOUT_MS: "1000",
};

/** The variables the design documents; the table must describe exactly these. */
const DOCUMENTED = [
  "FC_KAFKA_BROKERS",
  "FC_KAFKA_CLIENT_ID",
  "FC_KAFKA_GROUP_ID",
  "FC_KAFKA_SSL",
  "FC_KAFKA_SSL_CA_FILE",
  "FC_KAFKA_SSL_CERT_FILE",
  "FC_KAFKA_SSL_KEY_FILE",
  "FC_KAFKA_SSL_KEY_PASSWORD",
  "FC_KAFKA_SSL_REJECT_UNAUTHORIZED",
  "FC_KAFKA_SASL_MECHANISM",
  "FC_KAFKA_SASL_USERNAME",
  "FC_KAFKA_SASL_PASSWORD",
  "FC_INPUT_TOPIC",
  "FC_RESULTS_TOPIC",
  "FC_DEAD_LETTER_TOPIC",
  "FC_DELIVERY_GUARANTEE",
  "FC_LEDGER_TOPIC",
  "FC_CREATE_TOPICS",
  "FC_TOPIC_PARTITIONS",
  "FC_KAFKA_SESSION_TIMEOUT_MS",
  "FC_SCHEMA_REGISTRY_URL",
  "FC_SCHEMA_REGISTRY_USERNAME",
  "FC_SCHEMA_REGISTRY_PASSWORD",
  "FC_FEATURE_COUNT",
  "FC_MAX_STORE_ID_LENGTH",
  "FC_MAX_MESSAGE_BYTES",
  "FC_BATCH_MAX_RECORDS",
  "FC_BATCH_MAX_BYTES",
  "FC_BATCH_MAX_WAIT_MS",
  "FC_INPUT_STORAGE_CONNECTION_STRING",
  "FC_INPUT_STORAGE_ACCOUNT_URL",
  "FC_INPUT_CONTAINER",
  "FC_INPUT_PREFIX",
  "FC_OUTPUT_STORAGE_CONNECTION_STRING",
  "FC_OUTPUT_STORAGE_ACCOUNT_URL",
  "FC_OUTPUT_CONTAINER",
  "FC_OUTPUT_PATH_TEMPLATE",
  "FC_ENDPOINT_SCORING_URI",
  "FC_ENDPOINT_API_FLAVOR",
  "FC_ENDPOINT_STATUS_URL_TEMPLATE",
  "FC_ENDPOINT_DEPLOYMENT",
  "FC_ENDPOINT_TOKEN_SCOPE",
  "FC_AZURE_CREDENTIAL",
  "FC_AZURE_DISABLE_INSTANCE_DISCOVERY",
  "FC_ENDPOINT_OUTPUT_DATASTORE",
  "FC_ENDPOINT_STATUS_API",
  "FC_ENDPOINT_INPUT_URI_FORM",
  "FC_ENDPOINT_INPUT_DATASTORE",
  "FC_ENDPOINT_INPUT_TYPE",
  "FC_ARM_SUBSCRIPTION_ID",
  "FC_ARM_RESOURCE_GROUP",
  "FC_ARM_WORKSPACE",
  "FC_ARM_BASE_URL",
  "FC_ARM_API_VERSION",
  "FC_ARM_TOKEN_SCOPE",
  "FC_ARM_CANCEL_JOBS",
  "FC_ARM_CANCEL_TIMEOUT_MS",
  "FC_HTTP_MAX_RETRIES",
  "FC_HTTP_RETRY_DELAY_MS",
  "FC_HTTP_MAX_RETRY_DELAY_MS",
  "FC_HTTP_REQUEST_TIMEOUT_MS",
  "FC_RETRY_INITIAL_DELAY_MS",
  "FC_RETRY_MAX_DELAY_MS",
  "FC_JOB_POLL_INTERVAL_MS",
  "FC_JOB_TIMEOUT_MS",
  "FC_JOB_MAX_ATTEMPTS",
  "FC_MAX_JOBS_IN_FLIGHT",
  "FC_MAX_EVENTS_IN_FLIGHT",
  "FC_HTTP_PORT",
  "FC_PROGRESS_TIMEOUT_MS",
  "FC_LOG_LEVEL",
  "FC_SHUTDOWN_TIMEOUT_MS",
];

const SECRETS = [
  "kafka-secret-pw",
  "kafka-key-secret-pw",
  "registry-secret-pw",
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu",
];

function withEnv(
  overrides: Record<string, string | undefined>,
  base: NodeJS.ProcessEnv = MINIMAL,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

function loadError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected loadConfig to throw a ConfigError");
}

function problemsOf(overrides: Record<string, string | undefined>, base?: NodeJS.ProcessEnv): string[] {
  return loadError(withEnv(overrides, base)).problems;
}

function at(object: unknown, path: string): unknown {
  return path
    .split(".")
    .reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], object);
}

describe("loadConfig: defaults", () => {
  it("gives the documented defaults for a minimal valid environment", () => {
    const config = loadConfig(MINIMAL);
    expect(config.kafka).toEqual({
      brokers: ["localhost:9092"],
      clientId: "forecast-connector",
      ssl: false,
      sslRejectUnauthorized: true,
    });
    expect("saslMechanism" in config.kafka).toBe(false);
    expect(config.consumer).toEqual({
      groupId: "forecast-connector",
      topic: "store-features",
      sessionTimeoutMs: 30000,
    });
    expect(config.producer).toEqual({
      resultsTopic: "store-forecasts",
      deadLetterTopic: "store-features.dlq",
    });
    expect(config.delivery).toEqual({ guarantee: "exactly-once", ledgerTopic: "forecast-connector.ledger" });
    expect(config.topics).toEqual({ createTopics: false, topicPartitions: 6 });
    expect(config.validation).toEqual({ featureCount: 13, maxStoreIdLength: 64, maxMessageBytes: 65536 });
    expect(config.batch).toEqual({ maxRecords: 1000, maxBytes: 4194304, maxWaitMs: 30000 });
    expect(config.inputStorage).toEqual({
      accountUrl: "https://forecastinput.blob.core.windows.net",
      container: "forecast-input",
      prefix: "forecast-connector/batches",
    });
    // No output account of its own: the blob store uses the input's (test/integration/blobStore.test.ts).
    expect(config.outputStorage).toEqual({
      container: "azureml-blobstore",
      pathTemplate: "artifacts/output/{jobId}/predictions.csv",
    });
    expect(config.endpoint).toEqual({
      scoringUri: "https://sales-forecast-endpoint-v2.germanywestcentral.inference.ml.azure.com/jobs",
      apiFlavor: "guide",
      statusUrlTemplate: "{scoringUri}/{jobId}",
      statusApi: "data-plane",
      inputUriForm: "https",
      inputType: "UriFolder",
      tokenScope: "https://ml.azure.com/.default",
      maxRetries: 6,
      retryDelayInMs: 1000,
      maxRetryDelayInMs: 60000,
      requestTimeoutInMs: 30000,
    });
    // No workspace named: no ARM status reads, no cancel.
    expect(config.arm).toEqual({
      baseUrl: "https://management.azure.com",
      apiVersion: "2024-04-01",
      tokenScope: "https://management.azure.com/.default",
      cancelJobs: true,
      cancelTimeoutMs: 30000,
    });
    expect(config.credential).toEqual({ kind: "default", disableInstanceDiscovery: false });

    expect(config.poller).toEqual({ pollIntervalMs: 30000 });
    expect(config.jobs).toEqual({
      jobTimeoutMs: 3600000,
      maxAttempts: 3,
      outputDatastore: "workspaceblobstore",
    });
    expect(config.flow).toEqual({ maxJobsInFlight: 8, maxEventsInFlight: 50000 });
    expect(config.retry).toEqual({ initialDelayMs: 1000, maxDelayMs: 60000 });
    expect(config.observability).toEqual({ port: 9464, progressTimeoutMs: 900000, logLevel: "info" });
    expect(config.lifecycle).toEqual({ shutdownTimeoutMs: 30000 });
  });

  it("treats an empty variable as unset and trims values", () => {
    const config = loadConfig(
      withEnv({ FC_BATCH_MAX_RECORDS: "", FC_FEATURE_COUNT: "  7 ", FC_KAFKA_SSL: "TRUE" }),
    );
    expect(config.batch.maxRecords).toBe(1000);
    expect(config.validation.featureCount).toBe(7);
    expect(config.kafka.ssl).toBe(true);
  });

  it("reads process.env when no environment is given", () => {
    const saved = { ...process.env };
    try {
      for (const name of Object.keys(process.env)) if (name.startsWith("FC_")) delete process.env[name];
      Object.assign(process.env, MINIMAL, { FC_BATCH_MAX_RECORDS: "77" });
      expect(loadConfig().batch.maxRecords).toBe(77);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });

  it("puts every setting at its place, config[section][option]", () => {
    const onLoopback = withEnv(
      {
        FC_INPUT_STORAGE_CONNECTION_STRING: undefined,
        FC_OUTPUT_STORAGE_CONNECTION_STRING: undefined,
        FC_INPUT_STORAGE_ACCOUNT_URL: "http://127.0.0.1:10000/devstoreaccount1",
        FC_OUTPUT_STORAGE_ACCOUNT_URL: "http://localhost:10000/devstoreaccount1",
        FC_KAFKA_BROKERS: "127.0.0.1:9093,localhost:9094",
        FC_KAFKA_SSL_REJECT_UNAUTHORIZED: "false",
      },
      FULL,
    );
    const covered = new Set<string>();
    for (const env of [FULL, onLoopback]) {
      const config = loadConfig(env);
      for (const name of SETTING_NAMES) {
        const raw = env[name];
        if (raw === undefined) continue;
        const setting: PlacedSetting = SETTINGS[name];
        const parsed = setting.parser.parse(setting.secret === true ? raw : raw.trim());
        expect(parsed.ok, name).toBe(true);
        if (parsed.ok) expect(config[setting.section][setting.option as never], name).toEqual(parsed.value);
        covered.add(name);
      }
    }
    expect([...covered].sort()).toEqual([...SETTING_NAMES].sort());
  });
});

describe("loadConfig: the settings table", () => {
  it("describes exactly the documented variables", () => {
    expect([...SETTING_NAMES].sort()).toEqual([...DOCUMENTED].sort());
  });

  it("has defaults that parse, and no default for a required or secret setting", () => {
    for (const name of SETTING_NAMES) {
      const setting: PlacedSetting = SETTINGS[name];
      expect(setting.description.length, name).toBeGreaterThan(0);
      if (setting.default !== undefined) {
        expect(setting.parser.parse(setting.default).ok, name).toBe(true);
        expect(setting.required, name).not.toBe(true);
        expect(setting.secret, name).not.toBe(true);
      }
    }
  });
});

describe("loadConfig: invalid values", () => {
  const cases: [string, string][] = [
    ["FC_BATCH_MAX_RECORDS", "abc"],
    ["FC_BATCH_MAX_RECORDS", "1.5"],
    ["FC_BATCH_MAX_RECORDS", "0"],
    ["FC_BATCH_MAX_RECORDS", "1000001"],
    ["FC_HTTP_PORT", "70000"],
    ["FC_KAFKA_SSL", "maybe"],
    ["FC_KAFKA_SSL_REJECT_UNAUTHORIZED", "never"],
    ["FC_LOG_LEVEL", "verbose"],
    ["FC_ENDPOINT_API_FLAVOR", "v1"],
    ["FC_AZURE_CREDENTIAL", "managed-identity"],
    ["FC_KAFKA_BROKERS", "localhost"],
    ["FC_KAFKA_BROKERS", "localhost:0"],
    ["FC_KAFKA_BROKERS", "a:1,,b:2"],
    ["FC_KAFKA_BROKERS", "[::1]:9092"],
    ["FC_KAFKA_CLIENT_ID", "bad\u0001id"],
    ["FC_INPUT_TOPIC", "bad topic"],
    ["FC_INPUT_TOPIC", "t".repeat(250)],
    ["FC_INPUT_TOPIC", ".."],
    ["FC_SCHEMA_REGISTRY_URL", "ftp://registry"],
    ["FC_SCHEMA_REGISTRY_URL", "not a url"],
    ["FC_SCHEMA_REGISTRY_URL", "http://registry:8081/?x=1"],
    ["FC_ENDPOINT_SCORING_URI", "http://sales-forecast.example.com/jobs"],
    ["FC_ENDPOINT_SCORING_URI", "https://sales-forecast.example.com/jobs#x"],
    ["FC_INPUT_STORAGE_ACCOUNT_URL", "http://forecastinput.blob.core.windows.net"],
    ["FC_INPUT_CONTAINER", "Bad_Container"],
    ["FC_INPUT_CONTAINER", "ab"],
    ["FC_INPUT_CONTAINER", "a--b"],
    ["FC_INPUT_PREFIX", "/absolute"],
    ["FC_INPUT_PREFIX", "a//b"],
    ["FC_INPUT_PREFIX", "a/../b"],
    ["FC_OUTPUT_CONTAINER", "-output"],
    ["FC_OUTPUT_PATH_TEMPLATE", "artifacts/output/predictions.csv"],
    ["FC_OUTPUT_PATH_TEMPLATE", "artifacts/{jobID}/predictions.csv"],
    ["FC_OUTPUT_PATH_TEMPLATE", "/artifacts/{jobId}/predictions.csv"],
    ["FC_ENDPOINT_STATUS_URL_TEMPLATE", "{scoringUri}/status"],
    ["FC_ENDPOINT_TOKEN_SCOPE", "https://ml.azure.com"],
    ["FC_ENDPOINT_DEPLOYMENT", "blue deployment"],
    ["FC_ENDPOINT_OUTPUT_DATASTORE", "my-store"],
    ["FC_JOB_MAX_ATTEMPTS", "0"],
    ["FC_TOPIC_PARTITIONS", "-1"],
  ];

  it.each(cases)("%s=%j yields one problem naming the variable", (name, value) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name} must be `));
  });

  it("judges an invalid value on its own and with the rules it takes part in", () => {
    expect(
      problemsOf({
        FC_KAFKA_SASL_MECHANISM: "gssapi",
        FC_KAFKA_SASL_USERNAME: "u",
        FC_KAFKA_SASL_PASSWORD: "p",
      }),
    ).toEqual(['FC_KAFKA_SASL_MECHANISM must be one of plain, scram-sha-256, scram-sha-512, got "gssapi"']);
    expect(problemsOf({ FC_KAFKA_SASL_MECHANISM: "gssapi" })).toHaveLength(2);
  });

  it("a TLS file must exist and be a readable file when the configuration loads", () => {
    const missing = join(TLS_DIR, "missing.pem");
    expect(problemsOf({ FC_KAFKA_SSL: "true", FC_KAFKA_SSL_CA_FILE: missing })).toEqual([
      `FC_KAFKA_SSL_CA_FILE must be the path of an existing file this process can read (checked when the configuration is loaded), got ${JSON.stringify(missing)} (no such file)`,
    ]);
    expect(
      problemsOf({
        FC_KAFKA_SSL: "true",
        FC_KAFKA_SSL_CERT_FILE: join(TLS_DIR, "a-folder"),
        FC_KAFKA_SSL_KEY_FILE: join(CA_FILE, "below-a-file"),
      }),
    ).toEqual([
      expect.stringMatching(
        /^FC_KAFKA_SSL_CERT_FILE must be the path of an existing file .*\(not a regular file\)$/,
      ),
      expect.stringMatching(
        /^FC_KAFKA_SSL_KEY_FILE must be the path of an existing file .*\(no such file\)$/,
      ),
    ]);
    const config = loadConfig(withEnv({ FC_KAFKA_SSL: "true", FC_KAFKA_SSL_CA_FILE: ` ${CA_FILE} ` }));
    expect(config.kafka).toMatchObject({ ssl: true, sslCaFile: CA_FILE, sslRejectUnauthorized: true });
  });

  it("says what is expected and what it got", () => {
    expect(problemsOf({ FC_BATCH_MAX_RECORDS: "abc" })).toEqual([
      'FC_BATCH_MAX_RECORDS must be an integer between 1 and 1000000, got "abc"',
    ]);
    expect(problemsOf({ FC_KAFKA_BROKERS: "k1:9092,k2" })[0]).toContain('not host:port: "k2"');
    expect(problemsOf({ FC_ENDPOINT_SCORING_URI: "http://ml.example.com/jobs" })[0]).toContain(
      "bearer token would travel in clear",
    );
    expect(problemsOf({ FC_OUTPUT_PATH_TEMPLATE: "out/{jobID}.csv" })[0]).toContain(
      "unknown placeholder {jobID}",
    );
  });

  it("reports a missing required variable", () => {
    expect(problemsOf({ FC_INPUT_TOPIC: undefined })).toEqual([
      expect.stringMatching(/^FC_INPUT_TOPIC is required but not set/),
    ]);
    expect(problemsOf({ FC_KAFKA_BROKERS: "   " })).toEqual([
      expect.stringMatching(/^FC_KAFKA_BROKERS is required but not set/),
    ]);
  });

  it("reports unknown FC_* variables, suggesting the closest setting, but not those other parts own", () => {
    expect(problemsOf({ FC_BATCH_MAX_RECORD: "10" })).toEqual([
      expect.stringMatching(
        /^FC_BATCH_MAX_RECORD is not a known setting; did you mean FC_BATCH_MAX_RECORDS\?/,
      ),
    ]);
    expect(problemsOf({ FC_SOMETHING_ELSE_ENTIRELY: "x" })[0]).not.toContain("did you mean");
    const config = loadConfig(
      withEnv({
        FC_TEST_KAFKA_BROKERS: "localhost:1",
        FC_STACK_HOME: "/tmp/stack",
        FC_KAFKA_VERSION: "3.9.1",
        OTHER_VARIABLE: "x",
      }),
    );
    expect(config.kafka.brokers).toEqual(["localhost:9092"]);
  });

  it("reports every problem at once", () => {
    const error = loadError(
      withEnv({
        FC_BATCH_MAX_RECORDS: "abc",
        FC_KAFKA_SSL: "maybe",
        FC_LOG_LEVEL: "loud",
        FC_INPUT_TOPIC: undefined,
        FC_HTTP_PORT: "-5",
        FC_JOBS_TIMEOUT_MS: "5",
        FC_JOB_TIMEOUT_MS: "1000",
        FC_JOB_POLL_INTERVAL_MS: "1000",
      }),
    );
    const names = [
      "FC_BATCH_MAX_RECORDS",
      "FC_KAFKA_SSL",
      "FC_LOG_LEVEL",
      "FC_INPUT_TOPIC",
      "FC_HTTP_PORT",
      "FC_JOBS_TIMEOUT_MS",
      "FC_JOB_TIMEOUT_MS",
    ];
    expect(error.problems).toHaveLength(names.length);
    for (const name of names) {
      expect(error.problems.some((p) => p.startsWith(name))).toBe(true);
      expect(error.message).toContain(name);
    }
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("ConfigError");
    expect(error.message).toMatch(/^Invalid configuration \(7 problems\):\n {2}- /);
  });
});

describe("secrets", () => {
  it("never appear in error messages", () => {
    const error = loadError(
      withEnv({
        FC_KAFKA_SASL_MECHANISM: "plain",
        FC_KAFKA_SASL_USERNAME: "user",
        FC_KAFKA_SASL_PASSWORD: "kafka-secret-pw\u0001",
        FC_KAFKA_SSL: "true",
        FC_KAFKA_SSL_CERT_FILE: CERT_FILE,
        FC_KAFKA_SSL_KEY_FILE: KEY_FILE,
        FC_KAFKA_SSL_KEY_PASSWORD: "kafka-key-secret-pw\u0003",
        FC_SCHEMA_REGISTRY_USERNAME: "registry-user",
        FC_SCHEMA_REGISTRY_PASSWORD: "registry-secret-pw\u0002",
        FC_INPUT_STORAGE_ACCOUNT_URL: undefined,
        FC_INPUT_STORAGE_CONNECTION_STRING: "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu",
        // A connection string pasted into a URL variable, credentials in a URL, a misspelt secret variable:
        FC_OUTPUT_STORAGE_ACCOUNT_URL: AZURITE,
        FC_SCHEMA_REGISTRY_URL: "https://registry-user:registry-secret-pw@registry.example.com",
        FC_KAFKA_SASL_PASSWROD: "kafka-secret-pw",
      }),
    );
    expect(error.problems.length).toBeGreaterThanOrEqual(6);
    for (const secret of SECRETS) expect(error.message).not.toContain(secret);
    expect(error.message).toContain("FC_KAFKA_SASL_PASSWORD must be");
    expect(error.message).toContain("FC_KAFKA_SSL_KEY_PASSWORD must be");
    expect(error.message).toContain("FC_INPUT_STORAGE_CONNECTION_STRING must be");
    expect(error.message).toContain("AccountKey=***");
  });

  it("are replaced by *** in redactedConfig, which leaves the config itself alone", () => {
    const config = loadConfig(FULL);
    const redacted = redactedConfig(config);
    const logged = JSON.stringify(redacted);
    for (const secret of SECRETS) expect(logged).not.toContain(secret);
    expect(at(redacted, "kafka.saslPassword")).toBe("***");
    expect(at(redacted, "kafka.saslUsername")).toBe("connector");
    expect(at(redacted, "kafka.sslKeyPassword")).toBe("***");
    expect(at(redacted, "kafka.sslKeyFile")).toBe(KEY_FILE);
    expect(at(redacted, "schemaRegistry.password")).toBe("***");
    expect(at(redacted, "inputStorage.connectionString")).toBe("***");
    expect(at(redacted, "outputStorage.connectionString")).toBe("***");
    expect(at(redacted, "batch.maxRecords")).toBe(500);
    expect(config.kafka.saslPassword).toBe("kafka-secret-pw");
  });

  it("never show the input connection string where the output falls back to it", () => {
    const config = loadConfig(withEnv({ FC_OUTPUT_STORAGE_CONNECTION_STRING: undefined }, FULL));
    // The fallback is the blob store's (test/integration/blobStore.test.ts): the config keeps it unset.
    expect(config.outputStorage.connectionString).toBeUndefined();
    const redacted = redactedConfig(config);
    expect(at(redacted, "inputStorage.connectionString")).toBe("***");
    expect(JSON.stringify(redacted)).not.toContain("AccountKey");
  });

  it("leave unset secrets absent in redactedConfig", () => {
    const redacted = redactedConfig(loadConfig(MINIMAL));
    expect(at(redacted, "schemaRegistry")).toEqual({ url: "http://localhost:8081" });
  });
});

describe("cross-field rules", () => {
  it("FC_MAX_MESSAGE_BYTES must be below FC_BATCH_MAX_BYTES", () => {
    expect(problemsOf({ FC_MAX_MESSAGE_BYTES: "4194304" })).toEqual([
      "FC_MAX_MESSAGE_BYTES (4194304) must be less than FC_BATCH_MAX_BYTES (4194304)",
    ]);
    expect(loadConfig(withEnv({ FC_MAX_MESSAGE_BYTES: "4194303" })).validation.maxMessageBytes).toBe(4194303);
  });

  it("input storage needs exactly one of connection string and account URL", () => {
    expect(problemsOf({ FC_INPUT_STORAGE_CONNECTION_STRING: AZURITE })).toEqual([
      expect.stringMatching(
        /^FC_INPUT_STORAGE_CONNECTION_STRING and FC_INPUT_STORAGE_ACCOUNT_URL are both set/,
      ),
    ]);
    expect(problemsOf({ FC_INPUT_STORAGE_ACCOUNT_URL: undefined })).toEqual([
      expect.stringMatching(
        /^neither FC_INPUT_STORAGE_CONNECTION_STRING nor FC_INPUT_STORAGE_ACCOUNT_URL is set/,
      ),
    ]);
  });

  it("an invalid storage variable is reported once, not also as missing", () => {
    expect(problemsOf({ FC_INPUT_STORAGE_ACCOUNT_URL: "nope" })).toHaveLength(1);
  });

  it("output storage: at most one, else the input's", () => {
    expect(
      problemsOf({
        FC_OUTPUT_STORAGE_CONNECTION_STRING: AZURITE,
        FC_OUTPUT_STORAGE_ACCOUNT_URL: "https://o.example.com",
      }),
    ).toEqual([
      expect.stringMatching(/^FC_OUTPUT_STORAGE_CONNECTION_STRING and FC_OUTPUT_STORAGE_ACCOUNT_URL/),
    ]);

    const own = loadConfig(withEnv({ FC_OUTPUT_STORAGE_CONNECTION_STRING: AZURITE }));
    expect(own.outputStorage.connectionString).toBe(AZURITE);
    expect(own.outputStorage.accountUrl).toBeUndefined();

    const fallback = loadConfig(
      withEnv({ FC_INPUT_STORAGE_ACCOUNT_URL: undefined, FC_INPUT_STORAGE_CONNECTION_STRING: AZURITE }),
    );
    // Neither set: the blob store falls back to the input's account (test/integration/blobStore.test.ts).
    expect(fallback.outputStorage.connectionString).toBeUndefined();
    expect(fallback.outputStorage.accountUrl).toBeUndefined();
    expect(fallback.inputStorage.connectionString).toBe(AZURITE);
  });

  it("SASL needs mechanism, username and password together", () => {
    expect(problemsOf({ FC_KAFKA_SASL_MECHANISM: "plain" })).toEqual([
      "FC_KAFKA_SASL_MECHANISM set without FC_KAFKA_SASL_USERNAME, FC_KAFKA_SASL_PASSWORD: SASL needs all of FC_KAFKA_SASL_MECHANISM, FC_KAFKA_SASL_USERNAME, FC_KAFKA_SASL_PASSWORD",
    ]);
    expect(problemsOf({ FC_KAFKA_SASL_USERNAME: "u", FC_KAFKA_SASL_PASSWORD: "p" })).toHaveLength(1);
    const config = loadConfig(
      withEnv({
        FC_KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
        FC_KAFKA_SASL_USERNAME: "u",
        FC_KAFKA_SASL_PASSWORD: " p ",
      }),
    );
    expect(config.kafka).toMatchObject({
      saslMechanism: "scram-sha-256",
      saslUsername: "u",
      saslPassword: " p ",
    });
  });

  it("TLS files and the key passphrase need FC_KAFKA_SSL=true", () => {
    expect(problemsOf({ FC_KAFKA_SSL_CA_FILE: CA_FILE })).toEqual([
      "FC_KAFKA_SSL_CA_FILE set without FC_KAFKA_SSL=true: they are used only over TLS (set FC_KAFKA_SSL=true)",
    ]);
    expect(
      problemsOf({
        FC_KAFKA_SSL: "false",
        FC_KAFKA_SSL_CERT_FILE: CERT_FILE,
        FC_KAFKA_SSL_KEY_FILE: KEY_FILE,
        FC_KAFKA_SSL_KEY_PASSWORD: "pw",
      }),
    ).toEqual([
      "FC_KAFKA_SSL_CERT_FILE, FC_KAFKA_SSL_KEY_FILE, FC_KAFKA_SSL_KEY_PASSWORD set without FC_KAFKA_SSL=true: they are used only over TLS (set FC_KAFKA_SSL=true)",
    ]);
    // An invalid FC_KAFKA_SSL is reported on its own, not again as TLS being off.
    expect(problemsOf({ FC_KAFKA_SSL: "maybe", FC_KAFKA_SSL_CA_FILE: CA_FILE })).toHaveLength(1);
    // Without TLS, the default (and an explicit true) of FC_KAFKA_SSL_REJECT_UNAUTHORIZED is no problem.
    expect(loadConfig(withEnv({ FC_KAFKA_SSL_REJECT_UNAUTHORIZED: "true" })).kafka.ssl).toBe(false);
  });

  it("a client certificate and its key go together; a key passphrase needs the key", () => {
    expect(problemsOf({ FC_KAFKA_SSL: "true", FC_KAFKA_SSL_CERT_FILE: CERT_FILE })).toEqual([
      "FC_KAFKA_SSL_CERT_FILE set without FC_KAFKA_SSL_KEY_FILE: a client certificate needs all of FC_KAFKA_SSL_CERT_FILE, FC_KAFKA_SSL_KEY_FILE",
    ]);
    expect(problemsOf({ FC_KAFKA_SSL: "true", FC_KAFKA_SSL_KEY_FILE: KEY_FILE })).toEqual([
      "FC_KAFKA_SSL_KEY_FILE set without FC_KAFKA_SSL_CERT_FILE: a client certificate needs all of FC_KAFKA_SSL_CERT_FILE, FC_KAFKA_SSL_KEY_FILE",
    ]);
    expect(problemsOf({ FC_KAFKA_SSL: "true", FC_KAFKA_SSL_KEY_PASSWORD: "kafka-key-secret-pw" })).toEqual([
      "FC_KAFKA_SSL_KEY_PASSWORD set without FC_KAFKA_SSL_KEY_FILE: it is the passphrase of that key",
    ]);
    const config = loadConfig(
      withEnv({
        FC_KAFKA_SSL: "true",
        FC_KAFKA_SSL_CERT_FILE: CERT_FILE,
        FC_KAFKA_SSL_KEY_FILE: KEY_FILE,
        FC_KAFKA_SSL_KEY_PASSWORD: " pass phrase ",
      }),
    );
    expect(config.kafka).toMatchObject({
      sslCertFile: CERT_FILE,
      sslKeyFile: KEY_FILE,
      sslKeyPassword: " pass phrase ",
    });
  });

  it("certificate checks may be turned off only for loopback brokers", () => {
    const off = { FC_KAFKA_SSL: "true", FC_KAFKA_SSL_REJECT_UNAUTHORIZED: "false" };
    for (const brokers of ["kafka-1:9093", "127.0.0.1:9093,kafka-2.example.com:9093", "10.0.0.3:9093"]) {
      expect(problemsOf({ ...off, FC_KAFKA_BROKERS: brokers }), brokers).toEqual([
        expect.stringMatching(
          /^FC_KAFKA_SSL_REJECT_UNAUTHORIZED=false is refused for brokers that are not on a loopback host .*FC_KAFKA_SSL_CA_FILE/,
        ),
      ]);
    }
    for (const brokers of ["localhost:9093", "127.0.0.1:9093,LOCALHOST:9094"]) {
      expect(loadConfig(withEnv({ ...off, FC_KAFKA_BROKERS: brokers })).kafka.sslRejectUnauthorized).toBe(
        false,
      );
    }
    // An invalid broker list is reported on its own.
    expect(problemsOf({ ...off, FC_KAFKA_BROKERS: "kafka-1" })).toHaveLength(1);
  });

  it("SASL PLAIN without TLS is refused unless every broker is on loopback", () => {
    const plain = {
      FC_KAFKA_SASL_MECHANISM: "plain",
      FC_KAFKA_SASL_USERNAME: "u",
      FC_KAFKA_SASL_PASSWORD: "kafka-secret-pw",
    };
    const problems = problemsOf({ ...plain, FC_KAFKA_BROKERS: "kafka-1:9092,localhost:9092" });
    expect(problems).toEqual([
      expect.stringMatching(
        /^FC_KAFKA_SASL_MECHANISM=plain without FC_KAFKA_SSL=true is refused for brokers that are not on a loopback host: SASL PLAIN sends the password in clear/,
      ),
    ]);
    expect(problems.join("\n")).not.toContain("kafka-secret-pw");
    expect(
      loadConfig(withEnv({ ...plain, FC_KAFKA_BROKERS: "kafka-1:9092", FC_KAFKA_SSL: "true" })).kafka,
    ).toMatchObject({ ssl: true, saslMechanism: "plain" });
    expect(loadConfig(withEnv(plain)).kafka).toMatchObject({ ssl: false, saslMechanism: "plain" });
    // SCRAM never sends the password itself: allowed without TLS (TLS is still the advice).
    expect(
      loadConfig(
        withEnv({ ...plain, FC_KAFKA_SASL_MECHANISM: "scram-sha-256", FC_KAFKA_BROKERS: "kafka-1:9092" }),
      ).kafka.saslMechanism,
    ).toBe("scram-sha-256");
  });

  it("schema registry user name and password go together", () => {
    expect(problemsOf({ FC_SCHEMA_REGISTRY_USERNAME: "u" })).toEqual([
      expect.stringMatching(/^FC_SCHEMA_REGISTRY_USERNAME set without FC_SCHEMA_REGISTRY_PASSWORD/),
    ]);
  });

  it("the local-dev credential is only allowed with a loopback scoring URI", () => {
    expect(problemsOf({ FC_AZURE_CREDENTIAL: "local-dev" })).toEqual([
      expect.stringMatching(
        /^FC_AZURE_CREDENTIAL=local-dev is a development-only credential.*FC_ENDPOINT_SCORING_URI/,
      ),
      expect.stringMatching(/FC_INPUT_STORAGE_ACCOUNT_URL must then be on a loopback host/),
    ]);
    for (const uri of [
      "http://127.0.0.1:8080/jobs",
      "http://localhost:8080/jobs",
      "http://[::1]:8080/jobs",
    ]) {
      const config = loadConfig(
        withEnv({
          FC_AZURE_CREDENTIAL: "local-dev",
          FC_ENDPOINT_SCORING_URI: uri,
          FC_INPUT_STORAGE_ACCOUNT_URL: undefined,
          FC_INPUT_STORAGE_CONNECTION_STRING: AZURITE,
        }),
      );
      expect(config.credential.kind).toBe("local-dev");
      expect(config.endpoint.scoringUri).toBe(uri);
    }
    expect(
      problemsOf({ FC_AZURE_CREDENTIAL: "local-dev", FC_ENDPOINT_SCORING_URI: "http://localhost:8080/jobs" }),
    ).toEqual([expect.stringMatching(/FC_INPUT_STORAGE_ACCOUNT_URL must then be on a loopback host/)]);
  });

  it("plain http is refused for the scoring URI and status URL unless the host is loopback", () => {
    expect(problemsOf({ FC_ENDPOINT_SCORING_URI: "http://10.0.0.5/jobs" })).toHaveLength(1);
    expect(
      loadConfig(withEnv({ FC_ENDPOINT_SCORING_URI: "http://localhost:8080/jobs/" })).endpoint.scoringUri,
    ).toBe("http://localhost:8080/jobs");
    expect(problemsOf({ FC_ENDPOINT_STATUS_URL_TEMPLATE: "http://status.example.com/jobs/{jobId}" })).toEqual(
      [expect.stringMatching(/^FC_ENDPOINT_STATUS_URL_TEMPLATE must give an https URL/)],
    );
    expect(
      loadConfig(withEnv({ FC_ENDPOINT_STATUS_URL_TEMPLATE: "https://status.example.com/jobs/{jobId}" }))
        .endpoint.statusUrlTemplate,
    ).toBe("https://status.example.com/jobs/{jobId}");
  });

  describe("the ARM jobs API and the v2 input settings", () => {
    const V2 = { FC_ENDPOINT_API_FLAVOR: "v2" };
    const WORKSPACE = {
      ...V2,
      FC_ARM_SUBSCRIPTION_ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
      FC_ARM_RESOURCE_GROUP: "rg-forecasting",
      FC_ARM_WORKSPACE: "mlw-forecasting",
    };

    it("takes ARM polling with the three workspace names, the defaults filling the rest", () => {
      const config = loadConfig(withEnv({ ...WORKSPACE, FC_ENDPOINT_STATUS_API: "arm" }));
      expect(config.endpoint.statusApi).toBe("arm");
      expect(config.arm).toEqual({
        subscriptionId: "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        resourceGroup: "rg-forecasting",
        workspace: "mlw-forecasting",
        baseUrl: "https://management.azure.com",
        apiVersion: "2024-04-01",
        tokenScope: "https://management.azure.com/.default",
        cancelJobs: true,
        cancelTimeoutMs: 30000,
      });
    });

    it("refuses ARM polling without the workspace, naming what is missing", () => {
      expect(problemsOf({ ...V2, FC_ENDPOINT_STATUS_API: "arm" })).toEqual([
        "FC_ENDPOINT_STATUS_API=arm reads job statuses from the workspace's ARM jobs API: set FC_ARM_SUBSCRIPTION_ID, FC_ARM_RESOURCE_GROUP, FC_ARM_WORKSPACE",
      ]);
      expect(
        problemsOf({
          ...V2,
          FC_ENDPOINT_STATUS_API: "arm",
          FC_ARM_SUBSCRIPTION_ID: WORKSPACE.FC_ARM_SUBSCRIPTION_ID,
        }),
      ).toEqual([
        "FC_ARM_SUBSCRIPTION_ID set without FC_ARM_RESOURCE_GROUP, FC_ARM_WORKSPACE: the ARM jobs API needs all of FC_ARM_SUBSCRIPTION_ID, FC_ARM_RESOURCE_GROUP, FC_ARM_WORKSPACE",
        "FC_ENDPOINT_STATUS_API=arm reads job statuses from the workspace's ARM jobs API: set FC_ARM_RESOURCE_GROUP, FC_ARM_WORKSPACE",
      ]);
    });

    it("refuses ARM refinements without the workspace: they would be ignored", () => {
      expect(problemsOf({ FC_ARM_API_VERSION: "2024-04-01", FC_ARM_CANCEL_JOBS: "false" })).toEqual([
        "FC_ARM_API_VERSION, FC_ARM_CANCEL_JOBS set without FC_ARM_SUBSCRIPTION_ID, FC_ARM_RESOURCE_GROUP, FC_ARM_WORKSPACE: they only apply to the ARM jobs API of that workspace",
      ]);
    });

    it("refuses the ARM and v2 input settings with the guide flavor", () => {
      const { FC_ENDPOINT_API_FLAVOR: _, ...workspace } = WORKSPACE;
      expect(
        problemsOf({ ...workspace, FC_ENDPOINT_STATUS_API: "arm", FC_ENDPOINT_INPUT_TYPE: "auto" }),
      ).toEqual([
        "FC_ENDPOINT_STATUS_API=arm, FC_ARM_SUBSCRIPTION_ID, FC_ARM_RESOURCE_GROUP, FC_ARM_WORKSPACE, FC_ENDPOINT_INPUT_TYPE set with FC_ENDPOINT_API_FLAVOR=guide: they apply to Azure ML v2 jobs only (set FC_ENDPOINT_API_FLAVOR=v2, or unset them)",
      ]);
    });

    it("an azureml:// input needs its datastore, and the datastore needs the azureml form", () => {
      expect(problemsOf({ ...V2, FC_ENDPOINT_INPUT_URI_FORM: "azureml" })).toEqual([
        expect.stringMatching(/^FC_ENDPOINT_INPUT_URI_FORM=azureml needs FC_ENDPOINT_INPUT_DATASTORE/),
      ]);
      expect(problemsOf({ ...V2, FC_ENDPOINT_INPUT_DATASTORE: "fc_input" })).toEqual([
        expect.stringMatching(
          /^FC_ENDPOINT_INPUT_DATASTORE is set but FC_ENDPOINT_INPUT_URI_FORM is not azureml/,
        ),
      ]);
      const config = loadConfig(
        withEnv({ ...V2, FC_ENDPOINT_INPUT_URI_FORM: "azureml", FC_ENDPOINT_INPUT_DATASTORE: "fc_input" }),
      );
      expect(config.endpoint).toMatchObject({ inputUriForm: "azureml", inputDatastore: "fc_input" });
    });

    it("refuses malformed ARM names and plain http to an ARM host off loopback", () => {
      const problems = problemsOf({
        ...WORKSPACE,
        FC_ARM_SUBSCRIPTION_ID: "not-a-guid",
        FC_ARM_RESOURCE_GROUP: "ends.with.dot.",
        FC_ARM_WORKSPACE: "x",
        FC_ARM_API_VERSION: "v2",
        FC_ARM_BASE_URL: "http://management.example.com",
      });
      for (const name of [
        "FC_ARM_SUBSCRIPTION_ID",
        "FC_ARM_RESOURCE_GROUP",
        "FC_ARM_WORKSPACE",
        "FC_ARM_API_VERSION",
        "FC_ARM_BASE_URL",
      ])
        expect(
          problems.some((p) => p.startsWith(name)),
          name,
        ).toBe(true);
    });

    it("with the local-dev credential, ARM must be the loopback emulator", () => {
      const local = {
        ...WORKSPACE,
        FC_AZURE_CREDENTIAL: "local-dev",
        FC_ENDPOINT_SCORING_URI: "http://127.0.0.1:8080/jobs",
        FC_INPUT_STORAGE_ACCOUNT_URL: undefined,
        FC_INPUT_STORAGE_CONNECTION_STRING: AZURITE,
      };
      expect(problemsOf(local)).toEqual([
        "FC_AZURE_CREDENTIAL=local-dev is a development-only credential for the local emulator: FC_ARM_BASE_URL must then be on a loopback host (localhost, 127.0.0.1, ::1), got https://management.azure.com",
      ]);
      expect(loadConfig(withEnv({ ...local, FC_ARM_BASE_URL: "http://127.0.0.1:8080" })).arm.baseUrl).toBe(
        "http://127.0.0.1:8080",
      );
    });
  });

  it("FC_JOB_TIMEOUT_MS must exceed FC_JOB_POLL_INTERVAL_MS", () => {
    expect(problemsOf({ FC_JOB_TIMEOUT_MS: "30000" })).toEqual([
      "FC_JOB_TIMEOUT_MS (30000) must be greater than FC_JOB_POLL_INTERVAL_MS (30000)",
    ]);
  });

  it("the three topics must differ", () => {
    expect(problemsOf({ FC_RESULTS_TOPIC: "store-features" })).toEqual([
      'FC_INPUT_TOPIC and FC_RESULTS_TOPIC must name different topics, both are "store-features"',
    ]);
    expect(problemsOf({ FC_RESULTS_TOPIC: "store-features_dlq" })).toEqual([
      expect.stringMatching(/^FC_RESULTS_TOPIC .* and FC_DEAD_LETTER_TOPIC .* collide/),
    ]);
  });

  it("FC_MAX_EVENTS_IN_FLIGHT must hold a full batch; retry delays must be ordered", () => {
    expect(problemsOf({ FC_MAX_EVENTS_IN_FLIGHT: "999" })).toEqual([
      "FC_MAX_EVENTS_IN_FLIGHT (999) must be at least FC_BATCH_MAX_RECORDS (1000)",
    ]);
    expect(problemsOf({ FC_HTTP_RETRY_DELAY_MS: "70000" })).toEqual([
      "FC_HTTP_RETRY_DELAY_MS (70000) must not exceed FC_HTTP_MAX_RETRY_DELAY_MS (60000)",
    ]);
  });
});

describe("the result", () => {
  it("is deeply frozen", () => {
    const config = loadConfig(FULL);
    const objects: unknown[] = [config, config.kafka, config.kafka.brokers, ...Object.values(config)];
    expect(objects).toHaveLength(3 + 19);
    for (const object of objects) expect(Object.isFrozen(object)).toBe(true);
    expect(() => {
      (config.kafka as { clientId: string }).clientId = "changed";
    }).toThrow(TypeError);
    expect(() => (config.kafka.brokers as string[]).push("x:1")).toThrow(TypeError);
  });
});

describe("describe", () => {
  it("settingsMarkdownTable lists every variable once, secrets marked", () => {
    const table = settingsMarkdownTable();
    const lines = table.split("\n");
    expect(lines[0]).toBe("| Variable | Default | Meaning |");
    expect(lines).toHaveLength(SETTING_NAMES.length + 2);
    for (const name of SETTING_NAMES) {
      const setting: PlacedSetting = SETTINGS[name];
      const row = lines.find((line) => line.startsWith(`| \`${name}\``));
      expect(row, name).toBeDefined();
      expect(row?.includes("(secret)"), name).toBe(setting.secret === true);
    }
    expect(table).toContain("| `FC_BATCH_MAX_RECORDS` | `1000` |");
    expect(table).toContain("| `FC_INPUT_TOPIC` | **required** |");
    expect(table).toContain("| `FC_KAFKA_SASL_PASSWORD` (secret) | unset |");
  });

  it("crossFieldRulesMarkdown lists every rule", () => {
    expect(crossFieldRulesMarkdown().split("\n")).toHaveLength(RULES.length);
  });

  it("refuses schema-registry basic auth over plain http to a host that is not loopback", () => {
    const error = problemsOf({
      FC_SCHEMA_REGISTRY_URL: "http://registry.example.com:8081",
      FC_SCHEMA_REGISTRY_USERNAME: "svc",
      FC_SCHEMA_REGISTRY_PASSWORD: "s3cret-pw",
    });
    expect(error.join("\n")).toMatch(
      /FC_SCHEMA_REGISTRY_URL must be https when FC_SCHEMA_REGISTRY_USERNAME is set/,
    );
    expect(error.join("\n")).not.toContain("s3cret-pw");
    const onLoopback = loadConfig(
      withEnv({
        FC_SCHEMA_REGISTRY_URL: "http://127.0.0.1:8081",
        FC_SCHEMA_REGISTRY_USERNAME: "svc",
        FC_SCHEMA_REGISTRY_PASSWORD: "s3cret-pw",
      }),
    );
    expect(onLoopback.schemaRegistry.username).toBe("svc");
  });
});
