/**
 * Views of the settings table for people: the README's settings table, the cross-field rules as a list, and the
 * configuration as logged at start (secrets replaced by "***").
 */
import { RULES } from "./rules.ts";
import { SETTING_NAMES, SETTINGS, type Setting } from "./schema.ts";
import type { Config } from "./types.ts";

export const REDACTED = "***";

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function defaultCell(setting: Setting): string {
  if (setting.required === true) return "**required**";
  if (setting.default === undefined) return "unset";
  return `\`${cell(setting.default)}\``;
}

/** Markdown table of every setting: | variable | default | meaning |, secrets marked, accepted values included. */
export function settingsMarkdownTable(): string {
  const rows = SETTING_NAMES.map((name) => {
    const setting: Setting = SETTINGS[name];
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
export function redactedConfig(config: Config): Record<string, unknown> {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const name of SETTING_NAMES) {
    const setting: Setting = SETTINGS[name];
    if (setting.secret === true) redactPath(copy, setting.configPath.split("."));
  }
  return copy;
}

function redactPath(object: Record<string, unknown>, path: readonly string[]): void {
  const [head, ...rest] = path;
  if (head === undefined || !Object.hasOwn(object, head)) return;
  const value = object[head];
  if (rest.length === 0) {
    if (value !== undefined) object[head] = REDACTED;
  } else if (typeof value === "object" && value !== null) {
    redactPath(value as Record<string, unknown>, rest);
  }
}
