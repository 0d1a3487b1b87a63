/**
 * The whole configuration: each stage's settings table (the `settings.ts` of its folder), composed into
 * sections. A setting is defined once, in its stage's table; everything else is derived from this:
 * - `Config`, the type of the loaded configuration, section by section (`config.batch` is the batch
 *   policy's options);
 * - `SETTINGS`, the same settings by environment variable, which load.ts parses, rules.ts checks across,
 *   and describe.ts turns into the README's settings table and the redacted view for logs.
 *
 * An empty variable counts as unset. Values are trimmed, except secrets, which are taken verbatim.
 */
import {
  ARM_SETTINGS,
  CREDENTIAL_SETTINGS,
  ENDPOINT_SETTINGS,
  INPUT_STORAGE_SETTINGS,
  OUTPUT_STORAGE_SETTINGS,
  POLLER_SETTINGS,
} from "../azure/settings.ts";
import { BATCH_SETTINGS } from "../batcher/settings.ts";
import { CONSUMER_SETTINGS, VALIDATION_SETTINGS } from "../consumer/settings.ts";
import { KAFKA_SETTINGS, SCHEMA_REGISTRY_SETTINGS, TOPIC_SETTINGS } from "../kafka/settings.ts";
import { OBSERVABILITY_SETTINGS } from "../observability/settings.ts";
import { DELIVERY_SETTINGS, FLOW_SETTINGS, JOB_SETTINGS, RETRY_SETTINGS } from "../pipeline/settings.ts";
import { PRODUCER_SETTINGS } from "../producer/settings.ts";
import { integer } from "./parsers.ts";
import { defineSettings, type OptionsOf, type SettingSpec, type ValueOf } from "./spec.ts";

/** The connector's own lifecycle (connector.ts, cli.ts). */
export const LIFECYCLE_SETTINGS = defineSettings({
  shutdownTimeoutMs: {
    env: "FC_SHUTDOWN_TIMEOUT_MS",
    default: "30000",
    description: "On SIGTERM, time allowed to finish in-flight work before exiting",
    parser: integer(100, 600000),
  },
});

/** Section name -> the table of the stage that reads it. The order is the README's. */
export const CONFIG_SPEC = {
  kafka: KAFKA_SETTINGS,
  consumer: CONSUMER_SETTINGS,
  producer: PRODUCER_SETTINGS,
  delivery: DELIVERY_SETTINGS,
  topics: TOPIC_SETTINGS,
  schemaRegistry: SCHEMA_REGISTRY_SETTINGS,
  validation: VALIDATION_SETTINGS,
  batch: BATCH_SETTINGS,
  inputStorage: INPUT_STORAGE_SETTINGS,
  outputStorage: OUTPUT_STORAGE_SETTINGS,
  endpoint: ENDPOINT_SETTINGS,
  arm: ARM_SETTINGS,
  credential: CREDENTIAL_SETTINGS,
  poller: POLLER_SETTINGS,
  jobs: JOB_SETTINGS,
  flow: FLOW_SETTINGS,
  retry: RETRY_SETTINGS,
  observability: OBSERVABILITY_SETTINGS,
  lifecycle: LIFECYCLE_SETTINGS,
} as const;

type Spec = typeof CONFIG_SPEC;
export type SectionName = keyof Spec;

/** The connector's configuration as loaded: frozen; unset optional settings are absent keys. */
export type Config = { readonly [S in SectionName]: OptionsOf<Spec[S]> };

/** Every setting of every section, as one union. */
type AnySetting = { [S in SectionName]: Spec[S][keyof Spec[S]] }[SectionName];

export type SettingName = AnySetting["env"];

/** Every setting's parsed value, by variable name (what the cross-setting rules read). */
export type SettingValues = { readonly [N in SettingName]: ValueOf<Extract<AnySetting, { env: N }>> };

/** A setting with where it lands in Config: `config[section][option]`. */
export interface PlacedSetting extends SettingSpec {
  readonly env: SettingName;
  readonly section: SectionName;
  readonly option: string;
}

function placeSettings(): Readonly<Record<SettingName, PlacedSetting>> {
  const placed: Record<string, PlacedSetting> = {};
  for (const [section, table] of Object.entries(CONFIG_SPEC)) {
    for (const [option, setting] of Object.entries(table as Record<string, SettingSpec>)) {
      if (Object.hasOwn(placed, setting.env)) throw new Error(`${setting.env} is defined twice`);
      placed[setting.env] = { ...setting, section: section as SectionName, option } as PlacedSetting;
    }
  }
  return Object.freeze(placed) as Record<SettingName, PlacedSetting>;
}

/** Every setting by its environment variable, in README order. */
export const SETTINGS = placeSettings();

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

/**
 * FC_* variables owned by other parts of the project (test harness, local stack): not settings of the
 * connector, so not reported as unknown.
 */
export const FOREIGN_PREFIXES: readonly string[] = ["FC_TEST_", "FC_STACK_"];
export const FOREIGN_NAMES: readonly string[] = ["FC_KAFKA_VERSION"];

export function isForeignVariable(name: string): boolean {
  return FOREIGN_NAMES.includes(name) || FOREIGN_PREFIXES.some((prefix) => name.startsWith(prefix));
}
