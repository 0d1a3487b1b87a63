#!/usr/bin/env node
/**
 * forecast-connector run            start the connector (configuration from FC_* environment variables)
 * forecast-connector check-config   validate the configuration without connecting to anything
 *
 * Exit codes: 0 done, 1 runtime failure, 2 bad configuration or start-up check failed.
 */
import { ConfigError, loadConfig, redactedConfig } from "./config/index.ts";
import { type Connector, StartupError, startConnector } from "./connector.ts";
import { createLogger } from "./observability/logger.ts";

const USAGE = "usage: forecast-connector run | check-config";

async function main(command: string | undefined): Promise<number> {
  if (command !== "run" && command !== "check-config") {
    console.error(USAGE);
    return 2;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
  if (command === "check-config") {
    console.log(JSON.stringify(redactedConfig(config), null, 2));
    console.log("configuration is valid");
    return 0;
  }

  const logger = createLogger(config.observability.logLevel);
  routeProcessWarnings(logger);
  logger.info({ config: redactedConfig(config) }, "configuration loaded");
  let connector: Connector;
  try {
    connector = await startConnector(config, { logger });
  } catch (error) {
    if (error instanceof StartupError) {
      logger.fatal({ problems: error.problems }, error.message);
      return 2;
    }
    throw error;
  }
  await new Promise<void>((resolve) => {
    const shutdown = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "shutdown requested");
      // A second signal, or the bound passing, ends the process regardless.
      const hardStop = setTimeout(() => process.exit(1), config.lifecycle.shutdownTimeoutMs + 15_000);
      hardStop.unref();
      process.once(signal, () => process.exit(1));
      connector.stop().then(resolve, (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        resolve();
      });
    };
    process.once("SIGTERM", shutdown);
    process.once("SIGINT", shutdown);
  });
  return 0;
}

/**
 * Process warnings go to the structured log instead of bare stderr lines. kafkajs 2.2.4 arms a timer with a
 * negative delay when it is not throttled (throttledUntil = -1); Node clamps it to 1 ms and warns: harmless noise.
 */
function routeProcessWarnings(logger: ReturnType<typeof createLogger>): void {
  process.removeAllListeners("warning");
  process.on("warning", (warning) => {
    if (warning.name === "TimeoutNegativeWarning") return;
    logger.warn({ warning: { name: warning.name, message: warning.message } }, "process warning");
  });
}

main(process.argv[2]).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
