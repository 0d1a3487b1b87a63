/**
 * Reads the configuration from environment variables once, at start: every setting of the table in schema.ts
 * is parsed, every problem is collected (unknown FC_* variables included), cross-field rules are checked, and
 * either a ConfigError listing all problems is thrown or a deeply frozen Config is returned.
 */
import { ConfigError } from "./errors.ts";
import { RULES } from "./rules.ts";
import {
  isForeignVariable,
  SETTING_NAMES,
  SETTINGS,
  type Setting,
  type SettingName,
  type SettingValues,
} from "./schema.ts";
import type { Config } from "./types.ts";

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = unknownVariables(env);
  const values: Partial<Record<SettingName, unknown>> = {};
  const present = new Set<SettingName>();

  for (const name of SETTING_NAMES) {
    const setting: Setting = SETTINGS[name];
    const raw = rawValue(env[name], setting.secret === true);
    if (raw !== undefined) present.add(name);
    const input = raw ?? setting.default;
    if (input === undefined) {
      if (setting.required === true) problems.push(`${name} is required but not set: ${setting.description}`);
      continue;
    }
    const result = setting.parser.parse(input);
    if (result.ok) values[name] = result.value;
    else problems.push(invalidValueProblem(name, setting, input, result.detail));
  }

  const partial = values as Partial<SettingValues>;
  for (const rule of RULES) {
    problems.push(...rule.check({ values: partial, isSet: (name) => present.has(name) }));
  }

  if (problems.length > 0) throw new ConfigError(problems);
  // No problem means every required or defaulted setting parsed, which is what SettingValues promises.
  return deepFreeze(buildConfig(values as SettingValues));
}

/** Empty means unset. Values are trimmed, except secrets, which are taken verbatim. */
function rawValue(value: string | undefined, secret: boolean): string | undefined {
  if (value === undefined) return undefined;
  const raw = secret ? value : value.trim();
  return raw === "" ? undefined : raw;
}

function invalidValueProblem(
  name: string,
  setting: Setting,
  input: string,
  detail: string | undefined,
): string {
  const why = detail === undefined ? "" : ` (${detail})`;
  if (setting.secret === true)
    return `${name} must be ${setting.parser.expected}${why}; the value is secret and not shown`;
  return `${name} must be ${setting.parser.expected}, got ${showValue(input)}${why}`;
}

const MAX_SHOWN = 200;

/**
 * A non-secret value as shown in a message: quoted, shortened, and with anything that looks like a credential
 * masked (a connection string pasted into a URL variable must not end up in a log).
 */
export function showValue(raw: string): string {
  const masked = raw
    .replace(/((?:AccountKey|SharedAccessSignature|sig|password|pwd|secret|token)=)[^;&\s]*/gi, "$1***")
    .replace(/\/\/([^/@:\s]*):[^/@\s]*@/g, "//$1:***@");
  const shown = masked.length > MAX_SHOWN ? `${masked.slice(0, MAX_SHOWN)}...` : masked;
  return JSON.stringify(shown);
}

/** FC_* variables that are neither settings nor owned by another part: most likely typos. Values are never shown. */
function unknownVariables(env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (
      value === undefined ||
      !name.startsWith("FC_") ||
      Object.hasOwn(SETTINGS, name) ||
      isForeignVariable(name)
    ) {
      continue;
    }
    const suggestion = closestSetting(name);
    problems.push(
      `${name} is not a known setting${suggestion === undefined ? "" : `; did you mean ${suggestion}?`} (settings other parts own: FC_TEST_*, FC_STACK_*, FC_KAFKA_VERSION)`,
    );
  }
  return problems;
}

function closestSetting(name: string): SettingName | undefined {
  let best: SettingName | undefined;
  let bestDistance = 4;
  for (const candidate of SETTING_NAMES) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function buildConfig(v: SettingValues): Config {
  const sasl =
    v.FC_KAFKA_SASL_MECHANISM !== undefined &&
    v.FC_KAFKA_SASL_USERNAME !== undefined &&
    v.FC_KAFKA_SASL_PASSWORD !== undefined
      ? {
          mechanism: v.FC_KAFKA_SASL_MECHANISM,
          username: v.FC_KAFKA_SASL_USERNAME,
          password: v.FC_KAFKA_SASL_PASSWORD,
        }
      : undefined;

  // Without output storage of its own, jobs write to the input's storage account.
  const outputHasOwnStorage =
    v.FC_OUTPUT_STORAGE_CONNECTION_STRING !== undefined || v.FC_OUTPUT_STORAGE_ACCOUNT_URL !== undefined;
  const outputConnectionString = outputHasOwnStorage
    ? v.FC_OUTPUT_STORAGE_CONNECTION_STRING
    : v.FC_INPUT_STORAGE_CONNECTION_STRING;
  const outputAccountUrl = outputHasOwnStorage
    ? v.FC_OUTPUT_STORAGE_ACCOUNT_URL
    : v.FC_INPUT_STORAGE_ACCOUNT_URL;

  return withoutUndefined({
    kafka: {
      brokers: v.FC_KAFKA_BROKERS,
      clientId: v.FC_KAFKA_CLIENT_ID,
      groupId: v.FC_KAFKA_GROUP_ID,
      ssl: v.FC_KAFKA_SSL,
      sasl,
      inputTopic: v.FC_INPUT_TOPIC,
      resultsTopic: v.FC_RESULTS_TOPIC,
      deadLetterTopic: v.FC_DEAD_LETTER_TOPIC,
      createTopics: v.FC_CREATE_TOPICS,
      topicPartitions: v.FC_TOPIC_PARTITIONS,
      sessionTimeoutMs: v.FC_KAFKA_SESSION_TIMEOUT_MS,
    },
    schemaRegistry: {
      url: v.FC_SCHEMA_REGISTRY_URL,
      username: v.FC_SCHEMA_REGISTRY_USERNAME,
      password: v.FC_SCHEMA_REGISTRY_PASSWORD,
    },
    validation: {
      featureCount: v.FC_FEATURE_COUNT,
      maxStoreIdLength: v.FC_MAX_STORE_ID_LENGTH,
      maxMessageBytes: v.FC_MAX_MESSAGE_BYTES,
    },
    batch: {
      maxRecords: v.FC_BATCH_MAX_RECORDS,
      maxBytes: v.FC_BATCH_MAX_BYTES,
      maxWaitMs: v.FC_BATCH_MAX_WAIT_MS,
    },
    storage: {
      input: {
        connectionString: v.FC_INPUT_STORAGE_CONNECTION_STRING,
        accountUrl: v.FC_INPUT_STORAGE_ACCOUNT_URL,
        container: v.FC_INPUT_CONTAINER,
        prefix: v.FC_INPUT_PREFIX,
      },
      output: {
        connectionString: outputConnectionString,
        accountUrl: outputAccountUrl,
        container: v.FC_OUTPUT_CONTAINER,
        pathTemplate: v.FC_OUTPUT_PATH_TEMPLATE,
      },
    },
    endpoint: {
      scoringUri: v.FC_ENDPOINT_SCORING_URI,
      apiFlavor: v.FC_ENDPOINT_API_FLAVOR,
      statusUrlTemplate: v.FC_ENDPOINT_STATUS_URL_TEMPLATE,
      deployment: v.FC_ENDPOINT_DEPLOYMENT,
      tokenScope: v.FC_ENDPOINT_TOKEN_SCOPE,
      credential: v.FC_AZURE_CREDENTIAL,
      outputDatastore: v.FC_ENDPOINT_OUTPUT_DATASTORE,
      httpMaxRetries: v.FC_HTTP_MAX_RETRIES,
      httpRetryDelayMs: v.FC_HTTP_RETRY_DELAY_MS,
      httpMaxRetryDelayMs: v.FC_HTTP_MAX_RETRY_DELAY_MS,
      requestTimeoutMs: v.FC_HTTP_REQUEST_TIMEOUT_MS,
    },
    jobs: {
      pollIntervalMs: v.FC_JOB_POLL_INTERVAL_MS,
      timeoutMs: v.FC_JOB_TIMEOUT_MS,
      maxAttempts: v.FC_JOB_MAX_ATTEMPTS,
      maxInFlight: v.FC_MAX_JOBS_IN_FLIGHT,
    },
    flow: {
      maxEventsInFlight: v.FC_MAX_EVENTS_IN_FLIGHT,
    },
    observability: {
      port: v.FC_HTTP_PORT,
      logLevel: v.FC_LOG_LEVEL,
    },
    shutdownTimeoutMs: v.FC_SHUTDOWN_TIMEOUT_MS,
  });
}

/** Drops keys whose value is undefined (unset optional settings), so that `"x" in config` means it is set. */
function withoutUndefined<T extends object>(object: T): T {
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) Reflect.deleteProperty(object, key);
    else if (typeof value === "object" && value !== null && !Array.isArray(value)) withoutUndefined(value);
  }
  return object;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
