/**
 * Views of the settings table for people: the README's settings table, the cross-field rules as a list, and the
 * configuration as logged at start (secrets replaced by "***").
 */
import { RULES } from "./rules.ts";
import { type Config, type PlacedSetting, SETTING_NAMES, SETTINGS } from "./schema.ts";

export const REDACTED = "***";

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function defaultCell(setting: PlacedSetting): string {
  if (setting.required === true) return "**required**";
  if (setting.default === undefined) return "unset";
  return `\`${cell(setting.default)}\``;
}

/** Markdown table of every setting: | variable | default | meaning |, secrets marked, accepted values included. */
export function settingsMarkdownTable(): string {
  const rows = SETTING_NAMES.map((name) => {
    const setting = SETTINGS[name];
    const variable = `\`${name}\`${setting.secret === true ? " (secret)" : ""}`;
    const meaning = `${setting.description}. Must be ${setting.parser.expected}.`;
    return `| ${variable} | ${defaultCell(setting)} | ${cell(meaning)} |`;
  });
  return ["| Variable | Default | Meaning |", "| --- | --- | --- |", ...rows].join("\n");
}

/** Markdown list of the rules that involve more than one setting. */
export function crossFieldRulesMarkdown(): string {
  return RULES.map((rule) => `- ${rule.description}`).join("\n");
}

/** A copy of the configuration safe to log: the value of every secret setting replaced by "***". */
export function redactedConfig(config: Config): Record<string, Record<string, unknown>> {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const name of SETTING_NAMES) {
    const { secret, section, option } = SETTINGS[name];
    const values = copy[section];
    if (secret === true && values !== undefined && values[option] !== undefined) values[option] = REDACTED;
  }
  return copy;
}
