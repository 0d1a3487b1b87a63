/** Settings of the health/metrics server (healthServer.ts) and the logger (logger.ts). */
import { integer, oneOf } from "../config/parsers.ts";
import { defineSettings, type OptionsOf } from "../config/spec.ts";

export const OBSERVABILITY_SETTINGS = defineSettings({
  port: {
    env: "FC_HTTP_PORT",
    default: "9464",
    description: "Port of /metrics, /healthz and /readyz (0: any free port)",
    parser: integer(0, 65535),
  },
  progressTimeoutMs: {
    env: "FC_PROGRESS_TIMEOUT_MS",
    default: "900000",
    description:
      "/readyz fails when work is pending and nothing has progressed (no upload, job status read, publish or commit) for this long",
    parser: integer(1000, 86400000),
  },
  logLevel: {
    env: "FC_LOG_LEVEL",
    default: "info",
    description: "Log level",
    parser: oneOf(["fatal", "error", "warn", "info", "debug", "trace"]),
  },
});
export type ObservabilitySettings = OptionsOf<typeof OBSERVABILITY_SETTINGS>;
export type LogLevel = ObservabilitySettings["logLevel"];
