/**
 * Reads the configuration from environment variables once, at start: every setting of the tables in schema.ts
 * is parsed, every problem is collected (unknown FC_* variables included), cross-field rules are checked, and
 * either a ConfigError listing all problems is thrown or a deeply frozen Config is returned.
 */
import { ConfigError } from "./errors.ts";
import { RULES } from "./rules.ts";
import {
  CONFIG_SPEC,
  type Config,
  isForeignVariable,
  type PlacedSetting,
  SETTING_NAMES,
  SETTINGS,
  type SettingName,
  type SettingValues,
} from "./schema.ts";

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = unknownVariables(env);
  const values: Partial<Record<SettingName, unknown>> = {};
  const present = new Set<SettingName>();

  for (const name of SETTING_NAMES) {
    const setting: PlacedSetting = SETTINGS[name];
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
  // No problem means every required or defaulted setting parsed, which is what Config promises.
  return deepFreeze(buildConfig(values));
}

/** Empty means unset. Values are trimmed, except secrets, which are taken verbatim. */
function rawValue(value: string | undefined, secret: boolean): string | undefined {
  if (value === undefined) return undefined;
  const raw = secret ? value : value.trim();
  return raw === "" ? undefined : raw;
}

function invalidValueProblem(
  name: string,
  setting: PlacedSetting,
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

/** Each parsed value at its place, `config[section][option]`; unset optional settings are left out. */
function buildConfig(values: Partial<Record<SettingName, unknown>>): Config {
  const config: Record<string, Record<string, unknown>> = {};
  for (const section of Object.keys(CONFIG_SPEC)) config[section] = {};
  for (const name of SETTING_NAMES) {
    const { section, option } = SETTINGS[name];
    if (values[name] !== undefined) (config[section] as Record<string, unknown>)[option] = values[name];
  }
  return config as unknown as Config;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
