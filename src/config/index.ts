export { crossFieldRulesMarkdown, REDACTED, redactedConfig, settingsMarkdownTable } from "./describe.ts";
export { ConfigError } from "./errors.ts";
export { loadConfig } from "./load.ts";
export { RULES, type Rule } from "./rules.ts";
export { isForeignVariable, SETTING_NAMES, SETTINGS, type Setting, type SettingName } from "./schema.ts";
export type * from "./types.ts";
