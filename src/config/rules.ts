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

/** Whether every broker of FC_KAFKA_BROKERS is on a loopback host; undefined when the list did not parse. */
function loopbackBrokers(brokers: readonly string[] | undefined): boolean | undefined {
  return brokers?.every((broker) => isLoopbackHost(broker.slice(0, broker.lastIndexOf(":"))));
}

/** Settings that only mean something over TLS (FC_KAFKA_SSL_REJECT_UNAUTHORIZED has its own rule). */
const TLS_ONLY_SETTINGS = [
  "FC_KAFKA_SSL_CA_FILE",
  "FC_KAFKA_SSL_CERT_FILE",
  "FC_KAFKA_SSL_KEY_FILE",
  "FC_KAFKA_SSL_KEY_PASSWORD",
] as const;

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
    description: `The TLS settings (${TLS_ONLY_SETTINGS.join(", ")}) only with FC_KAFKA_SSL=true`,
    check({ values, isSet }) {
      if (values.FC_KAFKA_SSL === true || (isSet("FC_KAFKA_SSL") && values.FC_KAFKA_SSL === undefined))
        return [];
      const set = TLS_ONLY_SETTINGS.filter((name) => isSet(name));
      return set.length === 0
        ? []
        : [
            `${set.join(", ")} set without FC_KAFKA_SSL=true: they are used only over TLS (set FC_KAFKA_SSL=true)`,
          ];
    },
  },
  {
    description:
      "Mutual TLS: FC_KAFKA_SSL_CERT_FILE and FC_KAFKA_SSL_KEY_FILE together or not at all; FC_KAFKA_SSL_KEY_PASSWORD only with FC_KAFKA_SSL_KEY_FILE",
    check(context) {
      const pair = allOrNone(
        ["FC_KAFKA_SSL_CERT_FILE", "FC_KAFKA_SSL_KEY_FILE"],
        "a client certificate",
      )(context);
      const orphanPassword =
        context.isSet("FC_KAFKA_SSL_KEY_PASSWORD") && !context.isSet("FC_KAFKA_SSL_KEY_FILE")
          ? ["FC_KAFKA_SSL_KEY_PASSWORD set without FC_KAFKA_SSL_KEY_FILE: it is the passphrase of that key"]
          : [];
      return [...pair, ...orphanPassword];
    },
  },
  {
    description: `FC_KAFKA_SSL_REJECT_UNAUTHORIZED=false only when every FC_KAFKA_BROKERS host is loopback (${LOOPBACK_HOSTS.join(", ")}): an unchecked certificate lets anyone in between read the traffic`,
    check({ values }) {
      return values.FC_KAFKA_SSL_REJECT_UNAUTHORIZED === false &&
        loopbackBrokers(values.FC_KAFKA_BROKERS) === false
        ? [
            `FC_KAFKA_SSL_REJECT_UNAUTHORIZED=false is refused for brokers that are not on a loopback host (${LOOPBACK_HOSTS.join(", ")}): without checking the brokers' certificates, anyone in between can read and change the traffic and take the SASL password; trust the brokers' CA with FC_KAFKA_SSL_CA_FILE instead`,
          ]
        : [];
    },
  },
  {
    description:
      "FC_KAFKA_SASL_MECHANISM=plain needs FC_KAFKA_SSL=true unless every FC_KAFKA_BROKERS host is loopback: the password must not travel in clear",
    check({ values }) {
      return values.FC_KAFKA_SASL_MECHANISM === "plain" &&
        values.FC_KAFKA_SSL === false &&
        loopbackBrokers(values.FC_KAFKA_BROKERS) === false
        ? [
            "FC_KAFKA_SASL_MECHANISM=plain without FC_KAFKA_SSL=true is refused for brokers that are not on a loopback host: SASL PLAIN sends the password in clear; set FC_KAFKA_SSL=true (or use scram-sha-256 or scram-sha-512, over TLS too if you can)",
          ]
        : [];
    },
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
