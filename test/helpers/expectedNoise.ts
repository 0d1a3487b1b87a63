/**
 * Expected noise, removed so that a green run reads green. A vitest setup file (every test worker), also imported
 * by globalSetup.ts (vitest's own process, which starts the services).
 *
 * - kafkajs 2.2.4 arms a timer with a negative delay when it is not throttled (throttledUntil = -1); Node 24
 *   clamps it to 1 ms and emits a TimeoutNegativeWarning once per process: harmless, and src/cli.ts drops it
 *   the same way. Only that warning is dropped; every other warning is emitted as before.
 * - The tests' own kafkajs clients (test/helpers/kafka.ts) log through kafkajs's console logger at WARN: the
 *   retriable protocol errors of a freshly started broker and transaction retries. Those JSON lines are dropped
 *   when their level is below FC_TEST_LOG_LEVEL, the level the harness gives the connector's logger (default
 *   DEFAULT_TEST_LOG_LEVEL, set for the workers by vitest.config.ts): FC_TEST_LOG_LEVEL=warn shows them all.
 *   Any other console output is untouched.
 */
const marker = Symbol.for("forecast-connector.expectedNoise");
const holder = process as unknown as Record<symbol, boolean>;

function warningType(warning: string | Error, options: unknown): string | undefined {
  if (typeof options === "string") return options;
  if (options !== null && typeof options === "object" && "type" in options) return String(options.type);
  return typeof warning === "string" ? undefined : warning.name;
}

/** The test log level when FC_TEST_LOG_LEVEL is unset: deliberate faults log errors, a green run shows none. */
export const DEFAULT_TEST_LOG_LEVEL = "fatal";

const RANK: Record<string, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: 100,
};

/** The pino-style rank of a kafkajs console-logger line ({"level":"WARN","timestamp":...,"logger":"kafkajs",...}), or undefined for any other text. */
export function kafkajsConsoleLevel(line: string): number | undefined {
  const level = /^\{"level":"(ERROR|WARN|INFO|DEBUG)","timestamp":"[^"]*","logger":"kafkajs",/.exec(
    line,
  )?.[1];
  return level === undefined ? undefined : RANK[level.toLowerCase()];
}

if (!holder[marker]) {
  holder[marker] = true;

  const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, options?: unknown, ...rest: unknown[]) => {
    if (warningType(warning, options) === "TimeoutNegativeWarning") return;
    emitWarning(warning, options, ...rest);
  }) as typeof process.emitWarning;

  const threshold: number = RANK[process.env.FC_TEST_LOG_LEVEL || DEFAULT_TEST_LOG_LEVEL] ?? 60; // unknown level: as fatal
  for (const method of ["log", "info", "warn", "error"] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      const level =
        args.length === 1 && typeof args[0] === "string" ? kafkajsConsoleLevel(args[0]) : undefined;
      if (level !== undefined && level < threshold) return;
      original(...args);
    };
  }
}
