/**
 * How a stage declares the settings it reads. Each stage folder has a `settings.ts` with one `defineSettings`
 * table: option name -> environment variable, parser, default, meaning. The option names are the names of
 * the stage factory's own options, so the wiring hands a stage its slice of the configuration as it is
 * (`createBatchPolicy(config.batch)`), and the option types are derived from the table, never written again.
 *
 * schema.ts composes the tables into the whole configuration; load.ts parses it; describe.ts documents it.
 */
import type { Parser } from "./parsers.ts";

/** One setting: where it is read from, how it is parsed, its default and what it means. */
export interface SettingSpec<T = unknown> {
  /** The environment variable. */
  readonly env: `FC_${string}`;
  /** One line: what the setting means (README "meaning" column). */
  readonly description: string;
  readonly parser: Parser<T>;
  /** The raw default, parsed like a set value. Absent: the setting is required, or optional (unset allowed). */
  readonly default?: string;
  readonly required?: boolean;
  /** Never logged, never shown in an error message. */
  readonly secret?: boolean;
}

/** A stage's settings, by the name of the option each one fills. */
export type SettingsSpec = { readonly [option: string]: SettingSpec };

/** Declares a stage's settings table; the identity at run time, it keeps the literal types for OptionsOf. */
export function defineSettings<const S extends SettingsSpec>(spec: S): S {
  return spec;
}

/** A setting always has a value when it is required or has a default; otherwise it may be unset. */
type AlwaysSet<S> = S extends { readonly required: true } | { readonly default: string } ? true : false;

/** The parsed value type of one setting. */
export type ValueOf<S> = S extends { readonly parser: Parser<infer T> } ? T : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The options a settings table yields: always-set settings as required keys, the others as optional ones. */
export type OptionsOf<S extends SettingsSpec> = Simplify<
  { readonly [K in keyof S as AlwaysSet<S[K]> extends true ? K : never]: ValueOf<S[K]> } & {
    readonly [K in keyof S as AlwaysSet<S[K]> extends true ? never : K]?: ValueOf<S[K]>;
  }
>;
