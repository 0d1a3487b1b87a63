import { Kafka, type LogEntry, logLevel } from "kafkajs";
import type { Logger } from "../observability/logger.ts";
import type { KafkaSettings } from "./settings.ts";

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/** The one kafkajs client of the process; its logs go through the connector's structured logger. */
export function createKafkaClient(settings: KafkaSettings, logger: Logger): Kafka {
  const kafkaLogger = logger.child({ component: "kafkajs" });
  const { saslMechanism, saslUsername, saslPassword } = settings;
  return new Kafka({
    clientId: settings.clientId,
    brokers: [...settings.brokers],
    ssl: settings.ssl,
    // Configuration allows the three SASL settings only together.
    ...(saslMechanism && saslUsername !== undefined && saslPassword !== undefined
      ? { sasl: { mechanism: saslMechanism, username: saslUsername, password: saslPassword } as never }
      : {}),
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }: LogEntry) => {
        const { message, ...extra } = log;
        kafkaLogger[LEVELS[level] ?? "info"](extra, message);
      },
  });
}
