/**
 * The one error configuration loading throws: every problem found, not just the first, each naming the
 * variable and what is wrong. Secret values never appear in it.
 */
export class ConfigError extends Error {
  readonly code = "FC_CONFIG_INVALID";
  readonly problems: string[];

  constructor(problems: readonly string[]) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    super(`Invalid configuration (${count}):\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = [...problems];
  }
}
