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

/** The three names that place the workspace on ARM; the other FC_ARM_* settings only refine them. */
const ARM_WORKSPACE = ["FC_ARM_SUBSCRIPTION_ID", "FC_ARM_RESOURCE_GROUP", "FC_ARM_WORKSPACE"] as const;
const ARM_REFINEMENTS = [
  "FC_ARM_BASE_URL",
  "FC_ARM_API_VERSION",
  "FC_ARM_TOKEN_SCOPE",
  "FC_ARM_CANCEL_JOBS",
  "FC_ARM_CANCEL_TIMEOUT_MS",
] as const;
/** Settings that shape only the v2 body: with the guide flavor they would be ignored. */
const V2_INPUT_SETTINGS = ["FC_ENDPOINT_INPUT_URI_FORM", "FC_ENDPOINT_INPUT_TYPE"] as const;

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
    description: `ARM workspace: ${ARM_WORKSPACE.join(", ")} together or not at all; ${ARM_REFINEMENTS.join(", ")} only with them`,
    check(context) {
      const problems = [...allOrNone(ARM_WORKSPACE, "the ARM jobs API")(context)];
      if (ARM_WORKSPACE.some((name) => context.isSet(name))) return problems;
      const orphans = ARM_REFINEMENTS.filter((name) => context.isSet(name));
      if (orphans.length > 0) {
        problems.push(
          `${orphans.join(", ")} set without ${ARM_WORKSPACE.join(", ")}: they only apply to the ARM jobs API of that workspace`,
        );
      }
      return problems;
    },
  },
  {
    description:
      "FC_ENDPOINT_STATUS_API=arm needs FC_ARM_SUBSCRIPTION_ID, FC_ARM_RESOURCE_GROUP and FC_ARM_WORKSPACE",
    check({ values, isSet }) {
      if (values.FC_ENDPOINT_STATUS_API !== "arm") return [];
      const missing = ARM_WORKSPACE.filter((name) => !isSet(name));
      return missing.length === 0
        ? []
        : [
            `FC_ENDPOINT_STATUS_API=arm reads job statuses from the workspace's ARM jobs API: set ${missing.join(", ")}`,
          ];
    },
  },
  {
    description:
      "The ARM jobs API (FC_ENDPOINT_STATUS_API=arm, FC_ARM_*) and the v2 input settings (FC_ENDPOINT_INPUT_URI_FORM, FC_ENDPOINT_INPUT_TYPE, FC_ENDPOINT_INPUT_DATASTORE) need FC_ENDPOINT_API_FLAVOR=v2",
    check({ values, isSet }) {
      if (values.FC_ENDPOINT_API_FLAVOR !== "guide") return [];
      const used = [
        ...(values.FC_ENDPOINT_STATUS_API === "arm" ? ["FC_ENDPOINT_STATUS_API=arm"] : []),
        ...ARM_WORKSPACE.filter((name) => isSet(name)),
        ...V2_INPUT_SETTINGS.filter((name) => isSet(name)),
        ...(isSet("FC_ENDPOINT_INPUT_DATASTORE") ? ["FC_ENDPOINT_INPUT_DATASTORE"] : []),
      ];
      return used.length === 0
        ? []
        : [
            `${used.join(", ")} set with FC_ENDPOINT_API_FLAVOR=guide: they apply to Azure ML v2 jobs only (set FC_ENDPOINT_API_FLAVOR=v2, or unset them)`,
          ];
    },
  },
  {
    description:
      "FC_ENDPOINT_INPUT_URI_FORM=azureml needs FC_ENDPOINT_INPUT_DATASTORE, which is used only then",
    check({ values, isSet }) {
      const form = values.FC_ENDPOINT_INPUT_URI_FORM;
      if (form === "azureml" && !isSet("FC_ENDPOINT_INPUT_DATASTORE")) {
        return [
          "FC_ENDPOINT_INPUT_URI_FORM=azureml needs FC_ENDPOINT_INPUT_DATASTORE: the datastore registered in the workspace for FC_INPUT_CONTAINER",
        ];
      }
      if (form === "https" && isSet("FC_ENDPOINT_INPUT_DATASTORE")) {
        return [
          "FC_ENDPOINT_INPUT_DATASTORE is set but FC_ENDPOINT_INPUT_URI_FORM is not azureml: the datastore would be ignored (set FC_ENDPOINT_INPUT_URI_FORM=azureml, or unset it)",
        ];
      }
      return [];
    },
  },
  {
    description: `With FC_AZURE_CREDENTIAL=local-dev and the ARM jobs API, FC_ARM_BASE_URL is on a loopback host (${LOOPBACK_HOSTS.join(", ")}): the emulator`,
    check({ values, isSet }) {
      if (values.FC_AZURE_CREDENTIAL !== "local-dev" || !ARM_WORKSPACE.every((name) => isSet(name)))
        return [];
      const base = values.FC_ARM_BASE_URL;
      return loopbackHost(base) === false
        ? [
            `FC_AZURE_CREDENTIAL=local-dev is a development-only credential for the local emulator: FC_ARM_BASE_URL must then be on a loopback host (${LOOPBACK_HOSTS.join(", ")}), got ${base}`,
          ]
        : [];
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
