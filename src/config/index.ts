export { crossFieldRulesMarkdown, REDACTED, redactedConfig, settingsMarkdownTable } from "./describe.ts";
export { ConfigError } from "./errors.ts";
export { loadConfig } from "./load.ts";
export { RULES, type Rule } from "./rules.ts";
export {
  CONFIG_SPEC,
  type Config,
  isForeignVariable,
  type PlacedSetting,
  SETTING_NAMES,
  SETTINGS,
  type SectionName,
  type SettingName,
} from "./schema.ts";
export { defineSettings, type OptionsOf, type SettingSpec } from "./spec.ts";
