/**
 * Rules that involve more than one setting. Each rule only judges settings that parsed; a setting that is set
 * but invalid has already been reported on its own, so `values` holds undefined for it and `isSet` tells it
 * apart from an unset one.
 */
import { fillTemplate, isLoopbackHost, LOOPBACK_HOSTS, parseUrl, tokenUrl } from "./parsers.ts";
import type { SettingName, SettingValues } from "./schema.ts";

export interface RuleContext {
  readonly values: Partial<SettingValues>;
  /** The variable has a (non-empty) value, valid or not. */
  readonly isSet: (name: SettingName) => boolean;
}

export interface Rule {
  /** One line for the README. */
  readonly description: string;
  /** Problems found, each naming the variables involved. */
  readonly check: (context: RuleContext) => readonly string[];
}

function exactlyOne(a: SettingName, b: SettingName, what: string): Rule["check"] {
  return ({ isSet }) => {
    if (isSet(a) && isSet(b)) return [`${a} and ${b} are both set: set exactly one (${what})`];
    if (!isSet(a) && !isSet(b)) return [`neither ${a} nor ${b} is set: set exactly one (${what})`];
    return [];
  };
}

function allOrNone(names: readonly SettingName[], what: string): Rule["check"] {
  return ({ isSet }) => {
    const missing = names.filter((n) => !isSet(n));
    if (missing.length === 0 || missing.length === names.length) return [];
    const present = names.filter((n) => isSet(n));
    return [
      `${present.join(", ")} set without ${missing.join(", ")}: ${what} needs all of ${names.join(", ")}`,
    ];
  };
}

function loopbackHost(url: string | undefined): boolean | undefined {
  const parsed = url === undefined ? undefined : parseUrl(url);
  return parsed === undefined ? undefined : isLoopbackHost(parsed.hostname);
}

const TOPICS = ["FC_INPUT_TOPIC", "FC_RESULTS_TOPIC", "FC_DEAD_LETTER_TOPIC", "FC_LEDGER_TOPIC"] as const;

export const RULES: readonly Rule[] = [
  {
    description:
      "FC_INPUT_TOPIC, FC_RESULTS_TOPIC, FC_DEAD_LETTER_TOPIC and FC_LEDGER_TOPIC name four different topics",
    check({ values }) {
      const problems: string[] = [];
      TOPICS.forEach((a, i) => {
        for (const b of TOPICS.slice(i + 1)) {
          const ta = values[a];
          const tb = values[b];
          if (ta === undefined || tb === undefined) continue;
          if (ta === tb) problems.push(`${a} and ${b} must name different topics, both are "${ta}"`);
          else if (ta.replaceAll(".", "_") === tb.replaceAll(".", "_")) {
            problems.push(
              `${a} ("${ta}") and ${b} ("${tb}") collide: Kafka treats "." and "_" in topic names alike`,
            );
          }
        }
      });
      return problems;
    },
  },
  {
    description: "FC_MAX_MESSAGE_BYTES < FC_BATCH_MAX_BYTES (any accepted message fits in a batch)",
    check({ values: { FC_MAX_MESSAGE_BYTES: message, FC_BATCH_MAX_BYTES: batch } }) {
      return message !== undefined && batch !== undefined && message >= batch
        ? [`FC_MAX_MESSAGE_BYTES (${message}) must be less than FC_BATCH_MAX_BYTES (${batch})`]
        : [];
    },
  },
  {
    description:
      "Input storage: exactly one of FC_INPUT_STORAGE_CONNECTION_STRING and FC_INPUT_STORAGE_ACCOUNT_URL",
    check: exactlyOne(
      "FC_INPUT_STORAGE_CONNECTION_STRING",
      "FC_INPUT_STORAGE_ACCOUNT_URL",
      "a connection string, or an account URL used with the Entra credential",
    ),
  },
  {
    description:
      "Output storage: at most one of FC_OUTPUT_STORAGE_CONNECTION_STRING and FC_OUTPUT_STORAGE_ACCOUNT_URL; with neither, the input's storage account is used",
    check({ isSet }) {
      return isSet("FC_OUTPUT_STORAGE_CONNECTION_STRING") && isSet("FC_OUTPUT_STORAGE_ACCOUNT_URL")
        ? [
            "FC_OUTPUT_STORAGE_CONNECTION_STRING and FC_OUTPUT_STORAGE_ACCOUNT_URL are both set: set at most one (neither: the input's storage account is used)",
          ]
        : [];
    },
  },
  {
    description:
      "SASL: FC_KAFKA_SASL_MECHANISM, FC_KAFKA_SASL_USERNAME and FC_KAFKA_SASL_PASSWORD together or not at all",
    check: allOrNone(["FC_KAFKA_SASL_MECHANISM", "FC_KAFKA_SASL_USERNAME", "FC_KAFKA_SASL_PASSWORD"], "SASL"),
  },
  {
    description: "FC_SCHEMA_REGISTRY_USERNAME and FC_SCHEMA_REGISTRY_PASSWORD together or not at all",
    check: allOrNone(
      ["FC_SCHEMA_REGISTRY_USERNAME", "FC_SCHEMA_REGISTRY_PASSWORD"],
      "schema registry basic auth",
    ),
  },
  {
    description:
      "With FC_SCHEMA_REGISTRY_USERNAME, FC_SCHEMA_REGISTRY_URL is https (http only on loopback): the password must not travel in clear",
    check({ values, isSet }) {
      const url = values.FC_SCHEMA_REGISTRY_URL;
      if (!isSet("FC_SCHEMA_REGISTRY_USERNAME") || url === undefined) return [];
      const parsed = parseUrl(url);
      if (parsed === undefined || parsed.protocol === "https:" || isLoopbackHost(parsed.hostname)) return [];
      return [
        `FC_SCHEMA_REGISTRY_URL must be https when FC_SCHEMA_REGISTRY_USERNAME is set (basic auth over plain http sends the password in clear), got ${parsed.origin}`,
      ];
    },
  },
  {
    description: `FC_AZURE_CREDENTIAL=local-dev only with a loopback FC_ENDPOINT_SCORING_URI host (${LOOPBACK_HOSTS.join(", ")}); storage account URLs then on loopback too`,
    check({ values }) {
      if (values.FC_AZURE_CREDENTIAL !== "local-dev") return [];
      const problems: string[] = [];
      if (loopbackHost(values.FC_ENDPOINT_SCORING_URI) === false) {
        problems.push(
          `FC_AZURE_CREDENTIAL=local-dev is a development-only credential for the local emulator: FC_ENDPOINT_SCORING_URI must then be on a loopback host (${LOOPBACK_HOSTS.join(", ")})`,
        );
      }
      for (const name of ["FC_INPUT_STORAGE_ACCOUNT_URL", "FC_OUTPUT_STORAGE_ACCOUNT_URL"] as const) {
        if (loopbackHost(values[name]) === false) {
          problems.push(
            `FC_AZURE_CREDENTIAL=local-dev is a development-only credential: ${name} must then be on a loopback host or replaced by a connection string`,
          );
        }
      }
      return problems;
    },
  },
  {
    description:
      "FC_ENDPOINT_STATUS_URL_TEMPLATE, once filled, is an https URL (http only on loopback): the bearer token is sent to it",
    check({ values: { FC_ENDPOINT_STATUS_URL_TEMPLATE: template, FC_ENDPOINT_SCORING_URI: scoringUri } }) {
      if (template === undefined || scoringUri === undefined) return [];
      const filled = fillTemplate(template, { scoringUri, jobId: "job-id" });
      const result = tokenUrl.parse(filled);
      return result.ok
        ? []
        : [
            `FC_ENDPOINT_STATUS_URL_TEMPLATE must give ${tokenUrl.expected} once filled, got "${filled}" for job "job-id"${result.detail === undefined ? "" : ` (${result.detail})`}`,
          ];
    },
  },
  {
    description: "FC_JOB_TIMEOUT_MS > FC_JOB_POLL_INTERVAL_MS",
    check({ values: { FC_JOB_TIMEOUT_MS: timeout, FC_JOB_POLL_INTERVAL_MS: poll } }) {
      return timeout !== undefined && poll !== undefined && timeout <= poll
        ? [`FC_JOB_TIMEOUT_MS (${timeout}) must be greater than FC_JOB_POLL_INTERVAL_MS (${poll})`]
        : [];
    },
  },
  {
    description: "FC_MAX_EVENTS_IN_FLIGHT >= FC_BATCH_MAX_RECORDS (a full batch must fit)",
    check({ values: { FC_MAX_EVENTS_IN_FLIGHT: events, FC_BATCH_MAX_RECORDS: records } }) {
      return events !== undefined && records !== undefined && events < records
        ? [`FC_MAX_EVENTS_IN_FLIGHT (${events}) must be at least FC_BATCH_MAX_RECORDS (${records})`]
        : [];
    },
  },
  {
    description: "FC_RETRY_INITIAL_DELAY_MS <= FC_RETRY_MAX_DELAY_MS",
    check({ values: { FC_RETRY_INITIAL_DELAY_MS: first, FC_RETRY_MAX_DELAY_MS: max } }) {
      return first !== undefined && max !== undefined && first > max
        ? [`FC_RETRY_INITIAL_DELAY_MS (${first}) must not exceed FC_RETRY_MAX_DELAY_MS (${max})`]
        : [];
    },
  },
  {
    description: "FC_HTTP_RETRY_DELAY_MS <= FC_HTTP_MAX_RETRY_DELAY_MS",
    check({ values: { FC_HTTP_RETRY_DELAY_MS: first, FC_HTTP_MAX_RETRY_DELAY_MS: max } }) {
      return first !== undefined && max !== undefined && first > max
        ? [`FC_HTTP_RETRY_DELAY_MS (${first}) must not exceed FC_HTTP_MAX_RETRY_DELAY_MS (${max})`]
        : [];
    },
  },
];
