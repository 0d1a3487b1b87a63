import { pino } from "pino";
import type { LogLevel } from "./settings.ts";

/**
 * Structured JSON logs on stdout, one line per event. Authorization headers, tokens, passwords and connection
 * strings are redacted wherever they appear in a logged object, as a second line of defence: the code
 * never logs them knowingly.
 */
export function createLogger(level: LogLevel = "info", destination?: NodeJS.WritableStream) {
  return pino(
    {
      name: "forecast-connector",
      level,
      base: { service: "forecast-connector" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          "token",
          "*.token",
          "authorization",
          "*.authorization",
          "headers.authorization",
          "*.headers.authorization",
          "password",
          "*.password",
          "connectionString",
          "*.connectionString",
        ],
        censor: "***",
      },
    },
    destination as pino.DestinationStream | undefined,
  );
}

export type Logger = ReturnType<typeof createLogger>;
