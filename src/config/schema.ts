/**
 * Every setting of the connector, in one table: environment variable, default (or required), meaning,
 * whether it is secret, its parser, and where it lands in `Config`. This table is the single source of truth:
 * load.ts parses from it, describe.ts generates the README's settings table and the redacted log view from it.
 * Rules that involve more than one setting are in rules.ts.
 *
 * An empty variable counts as unset. Values are trimmed, except secrets, which are taken verbatim.
 */
import {
  blobPath,
  blobPathProblem,
  boolean,
  brokerList,
  containerName,
  datastoreName,
  headerSafeName,
  httpUrl,
  integer,
  kafkaTopic,
  oneOf,
  type Parser,
  storageConnectionString,
  template,
  text,
  tokenScope,
  tokenUrl,
} from "./parsers.ts";

export interface Setting<T = unknown> {
  /** One line: what the setting means (README "meaning" column). */
  readonly description: string;
  readonly parser: Parser<T>;
  /** Where the value lands in `Config`, as a dot path; the redacted view and tests use it. */
  readonly configPath: string;
  /** The raw default, parsed like a set value. Absent: the setting is required or optional (unset allowed). */
  readonly default?: string;
  readonly required?: boolean;
  /** Never logged, never shown in an error message. */
  readonly secret?: boolean;
}

/** Placeholders of FC_OUTPUT_PATH_TEMPLATE and FC_ENDPOINT_STATUS_URL_TEMPLATE. */
export const OUTPUT_PATH_PLACEHOLDERS = ["jobId", "batchId"] as const;
export const STATUS_URL_PLACEHOLDERS = ["scoringUri", "jobId"] as const;

export const SETTINGS = {
  // Kafka
  FC_KAFKA_BROKERS: {
    required: true,
    description: "Kafka bootstrap brokers, comma-separated host:port",
    parser: brokerList,
    configPath: "kafka.brokers",
  },
  FC_KAFKA_CLIENT_ID: {
    default: "forecast-connector",
    description: "Kafka client id (appears in broker logs and quotas)",
    parser: text(255),
    configPath: "kafka.clientId",
  },
  FC_KAFKA_GROUP_ID: {
    default: "forecast-connector",
    description: "Consumer group; instances with the same id share the input partitions",
    parser: text(255),
    configPath: "kafka.groupId",
  },
  FC_KAFKA_SSL: {
    default: "false",
    description: "Connect to the brokers over TLS",
    parser: boolean,
    configPath: "kafka.ssl",
  },
  FC_KAFKA_SASL_MECHANISM: {
    description:
      "SASL mechanism; unset means no SASL. Needs FC_KAFKA_SASL_USERNAME and FC_KAFKA_SASL_PASSWORD",
    parser: oneOf(["plain", "scram-sha-256", "scram-sha-512"]),
    configPath: "kafka.sasl.mechanism",
  },
  FC_KAFKA_SASL_USERNAME: {
    description: "SASL user name",
    parser: text(1024),
    configPath: "kafka.sasl.username",
  },
  FC_KAFKA_SASL_PASSWORD: {
    secret: true,
    description: "SASL password",
    parser: text(4096),
    configPath: "kafka.sasl.password",
  },
  FC_INPUT_TOPIC: {
    required: true,
    description: "Topic of the store feature events consumed",
    parser: kafkaTopic,
    configPath: "kafka.inputTopic",
  },
  FC_RESULTS_TOPIC: {
    required: true,
    description: "Topic the predictions are published to (Avro)",
    parser: kafkaTopic,
    configPath: "kafka.resultsTopic",
  },
  FC_DEAD_LETTER_TOPIC: {
    required: true,
    description: "Topic for events that cannot be scored (invalid, or their job failed every attempt)",
    parser: kafkaTopic,
    configPath: "kafka.deadLetterTopic",
  },
  FC_CREATE_TOPICS: {
    default: "false",
    description: "Create missing topics at start (otherwise a missing topic stops start-up)",
    parser: boolean,
    configPath: "kafka.createTopics",
  },
  FC_TOPIC_PARTITIONS: {
    default: "6",
    description: "Partitions of topics the connector creates (used only with FC_CREATE_TOPICS)",
    parser: integer(1, 10000),
    configPath: "kafka.topicPartitions",
  },
  FC_KAFKA_SESSION_TIMEOUT_MS: {
    default: "30000",
    description: "Consumer group session timeout (the broker bounds it too)",
    parser: integer(1000, 1800000),
    configPath: "kafka.sessionTimeoutMs",
  },

  // Schema registry
  FC_SCHEMA_REGISTRY_URL: {
    required: true,
    description: "Schema registry URL (Confluent API) for the Avro results",
    parser: httpUrl,
    configPath: "schemaRegistry.url",
  },
  FC_SCHEMA_REGISTRY_USERNAME: {
    description: "Schema registry basic-auth user name (with FC_SCHEMA_REGISTRY_PASSWORD)",
    parser: text(1024),
    configPath: "schemaRegistry.username",
  },
  FC_SCHEMA_REGISTRY_PASSWORD: {
    secret: true,
    description: "Schema registry basic-auth password",
    parser: text(4096),
    configPath: "schemaRegistry.password",
  },

  // Validation of input events
  FC_FEATURE_COUNT: {
    default: "13",
    description: "Number of features each event must carry (the model's input size)",
    parser: integer(1, 10000),
    configPath: "validation.featureCount",
  },
  FC_MAX_STORE_ID_LENGTH: {
    default: "64",
    description: "Longest store_id accepted",
    parser: integer(1, 1024),
    configPath: "validation.maxStoreIdLength",
  },
  FC_MAX_MESSAGE_BYTES: {
    default: "65536",
    description:
      "Largest input message accepted; larger ones are dead-lettered (must be < FC_BATCH_MAX_BYTES)",
    parser: integer(1, 104857600),
    configPath: "validation.maxMessageBytes",
  },

  // Micro-batching
  FC_BATCH_MAX_RECORDS: {
    default: "1000",
    description: "A batch is sealed when it holds this many events",
    parser: integer(1, 1000000),
    configPath: "batch.maxRecords",
  },
  FC_BATCH_MAX_BYTES: {
    default: "4194304",
    description: "A batch is sealed before its file would exceed this size",
    parser: integer(1024, 268435456),
    configPath: "batch.maxBytes",
  },
  FC_BATCH_MAX_WAIT_MS: {
    default: "30000",
    description: "A batch is sealed this long after its first event at the latest",
    parser: integer(10, 3600000),
    configPath: "batch.maxWaitMs",
  },

  // Blob Storage
  FC_INPUT_STORAGE_CONNECTION_STRING: {
    secret: true,
    description:
      "Connection string of the storage account batch files are uploaded to (or FC_INPUT_STORAGE_ACCOUNT_URL)",
    parser: storageConnectionString,
    configPath: "storage.input.connectionString",
  },
  FC_INPUT_STORAGE_ACCOUNT_URL: {
    description: "Blob service URL of that account, used with the Entra credential (or a connection string)",
    parser: tokenUrl,
    configPath: "storage.input.accountUrl",
  },
  FC_INPUT_CONTAINER: {
    required: true,
    description: "Container batch files are uploaded to; the workspace must be able to read it",
    parser: containerName,
    configPath: "storage.input.container",
  },
  FC_INPUT_PREFIX: {
    default: "forecast-connector/batches",
    description: "Blob path prefix of uploaded batch files",
    parser: blobPath,
    configPath: "storage.input.prefix",
  },
  FC_OUTPUT_STORAGE_CONNECTION_STRING: {
    secret: true,
    description:
      "Connection string of the account jobs write predictions to; when no output storage is set, the input's is used",
    parser: storageConnectionString,
    configPath: "storage.output.connectionString",
  },
  FC_OUTPUT_STORAGE_ACCOUNT_URL: {
    description: "Blob service URL of that account, used with the Entra credential (or a connection string)",
    parser: tokenUrl,
    configPath: "storage.output.accountUrl",
  },
  FC_OUTPUT_CONTAINER: {
    default: "azureml-blobstore",
    description: "The workspace's default datastore container, where jobs write predictions.csv",
    parser: containerName,
    configPath: "storage.output.container",
  },
  FC_OUTPUT_PATH_TEMPLATE: {
    default: "artifacts/output/{jobId}/predictions.csv",
    description:
      "Blob path of a job's predictions.csv; {jobId} and {batchId} are replaced (every job needs its own path)",
    parser: template({
      what: "a relative blob path template",
      allowed: OUTPUT_PATH_PLACEHOLDERS,
      requireOneOf: OUTPUT_PATH_PLACEHOLDERS,
      checkFilled: blobPathProblem,
    }),
    configPath: "storage.output.pathTemplate",
  },

  // Batch endpoint
  FC_ENDPOINT_SCORING_URI: {
    required: true,
    description: "URL of the batch endpoint's /jobs, where jobs are submitted",
    parser: tokenUrl,
    configPath: "endpoint.scoringUri",
  },
  FC_ENDPOINT_API_FLAVOR: {
    default: "guide",
    description: "guide (the endpoint owners' contract) or v2 (Azure ML v2 REST)",
    parser: oneOf(["guide", "v2"]),
    configPath: "endpoint.apiFlavor",
  },
  FC_ENDPOINT_STATUS_URL_TEMPLATE: {
    default: "{scoringUri}/{jobId}",
    description: "URL a job's status is polled at; {scoringUri} and {jobId} are replaced",
    parser: template({ what: "a URL template", allowed: STATUS_URL_PLACEHOLDERS, requireOneOf: ["jobId"] }),
    configPath: "endpoint.statusUrlTemplate",
  },
  FC_ENDPOINT_DEPLOYMENT: {
    description:
      "Sent as azureml-model-deployment to target a non-default deployment; unset: the default one",
    parser: headerSafeName,
    configPath: "endpoint.deployment",
  },
  FC_ENDPOINT_TOKEN_SCOPE: {
    default: "https://ml.azure.com/.default",
    description: "Entra token scope for submitting and polling jobs",
    parser: tokenScope,
    configPath: "endpoint.tokenScope",
  },
  FC_AZURE_CREDENTIAL: {
    default: "default",
    description:
      "default (DefaultAzureCredential: workload identity, managed identity, environment, Azure CLI ...) or local-dev (unsigned development token, accepted only by the local emulator on loopback)",
    parser: oneOf(["default", "local-dev"]),
    configPath: "endpoint.credential",
  },
  FC_ENDPOINT_OUTPUT_DATASTORE: {
    default: "workspaceblobstore",
    description: "(v2 flavor) datastore name in the job's OutputData URI",
    parser: datastoreName,
    configPath: "endpoint.outputDatastore",
  },
  FC_HTTP_MAX_RETRIES: {
    default: "6",
    description: "Retries of a failed endpoint request (throttling, 5xx, network)",
    parser: integer(0, 100),
    configPath: "endpoint.httpMaxRetries",
  },
  FC_HTTP_RETRY_DELAY_MS: {
    default: "1000",
    description: "First retry delay; it grows exponentially with jitter",
    parser: integer(1, 600000),
    configPath: "endpoint.httpRetryDelayMs",
  },
  FC_HTTP_MAX_RETRY_DELAY_MS: {
    default: "60000",
    description: "Longest retry delay (must be >= FC_HTTP_RETRY_DELAY_MS)",
    parser: integer(1, 3600000),
    configPath: "endpoint.httpMaxRetryDelayMs",
  },
  FC_HTTP_REQUEST_TIMEOUT_MS: {
    default: "30000",
    description: "Timeout of one endpoint request",
    parser: integer(100, 600000),
    configPath: "endpoint.requestTimeoutMs",
  },

  // Jobs
  FC_JOB_POLL_INTERVAL_MS: {
    default: "30000",
    description: "How often a running job's status is polled",
    parser: integer(10, 3600000),
    configPath: "jobs.pollIntervalMs",
  },
  FC_JOB_TIMEOUT_MS: {
    default: "3600000",
    description:
      "A job not finished after this long counts as failed (tolerates cold starts of several minutes)",
    parser: integer(100, 604800000),
    configPath: "jobs.timeoutMs",
  },
  FC_JOB_MAX_ATTEMPTS: {
    default: "3",
    description:
      "Attempts in all for a batch's job (a failed or timed-out job is resubmitted), then its events are dead-lettered",
    parser: integer(1, 100),
    configPath: "jobs.maxAttempts",
  },
  FC_MAX_JOBS_IN_FLIGHT: {
    default: "8",
    description: "Jobs submitted and not yet finished at most",
    parser: integer(1, 1000),
    configPath: "jobs.maxInFlight",
  },

  // Flow control
  FC_MAX_EVENTS_IN_FLIGHT: {
    default: "50000",
    description:
      "Consumed but not yet finished events; the consumer pauses at this bound (must be >= FC_BATCH_MAX_RECORDS)",
    parser: integer(1, 10000000),
    configPath: "flow.maxEventsInFlight",
  },

  // Observability and lifecycle
  FC_HTTP_PORT: {
    default: "9464",
    description: "Port of /metrics, /healthz and /readyz (0: any free port)",
    parser: integer(0, 65535),
    configPath: "observability.port",
  },
  FC_LOG_LEVEL: {
    default: "info",
    description: "Log level",
    parser: oneOf(["fatal", "error", "warn", "info", "debug", "trace"]),
    configPath: "observability.logLevel",
  },
  FC_SHUTDOWN_TIMEOUT_MS: {
    default: "30000",
    description: "On SIGTERM, time allowed to finish in-flight work before exiting",
    parser: integer(100, 600000),
    configPath: "shutdownTimeoutMs",
  },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

/** The parsed value of one setting: always present when required or defaulted, else possibly undefined. */
type ValueOf<S> = S extends { readonly parser: Parser<infer T> }
  ? S extends { readonly required: true } | { readonly default: string }
    ? T
    : T | undefined
  : never;

/** Every setting's parsed value, by variable name. */
export type SettingValues = { readonly [K in SettingName]: ValueOf<(typeof SETTINGS)[K]> };

/**
 * FC_* variables owned by other parts of the project (test harness, local stack): not settings of the
 * connector, so not reported as unknown.
 */
export const FOREIGN_PREFIXES: readonly string[] = ["FC_TEST_", "FC_STACK_"];
export const FOREIGN_NAMES: readonly string[] = ["FC_KAFKA_VERSION"];

export function isForeignVariable(name: string): boolean {
  return FOREIGN_NAMES.includes(name) || FOREIGN_PREFIXES.some((prefix) => name.startsWith(prefix));
}
