import "./abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { type ConnectionOptions, createSecureContext, connect as tlsConnect } from "node:tls";
import {
  type Admin,
  type AdminConfig,
  type Consumer,
  type ConsumerConfig,
  type ISocketFactory,
  Kafka,
  type KafkaConfig,
  type LogEntry,
  logLevel,
  type Producer,
  type ProducerConfig,
} from "kafkajs";
import { ConfigError } from "../config/errors.ts";
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
  const ssl = tlsOptions(settings);
  const config: KafkaConfig = {
    clientId: settings.clientId,
    brokers: [...settings.brokers],
    ...(ssl === undefined ? {} : { ssl, socketFactory: tlsSocketFactory(settings) }),
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
  };
  return saslMechanism && saslUsername !== undefined
    ? new ExplainedKafka(config, (error) => explainAuthenticationFailure(error, saslMechanism, saslUsername))
    : new Kafka(config);
}

/**
 * The TLS options of every broker connection, or undefined without FC_KAFKA_SSL. The PEM files are read
 * here, once, when the client is created (a renewed certificate takes a restart), and checked so a wrong
 * file or passphrase is named now rather than as a handshake failure later. Messages name the variable
 * and the path, never the content or the passphrase.
 */
export function tlsOptions(settings: KafkaSettings): ConnectionOptions | undefined {
  if (!settings.ssl) return undefined;
  const options: ConnectionOptions = {
    rejectUnauthorized: settings.sslRejectUnauthorized,
    ...(settings.sslCaFile === undefined ? {} : { ca: readPem("FC_KAFKA_SSL_CA_FILE", settings.sslCaFile) }),
    ...(settings.sslCertFile === undefined
      ? {}
      : { cert: readPem("FC_KAFKA_SSL_CERT_FILE", settings.sslCertFile) }),
    ...(settings.sslKeyFile === undefined
      ? {}
      : { key: readPem("FC_KAFKA_SSL_KEY_FILE", settings.sslKeyFile) }),
    ...(settings.sslKeyPassword === undefined ? {} : { passphrase: settings.sslKeyPassword }),
  };
  const problems = [
    ...(typeof options.ca === "string" ? caProblems(options.ca, settings.sslCaFile ?? "") : []),
    ...secureContextProblems(options, settings),
  ];
  if (problems.length > 0) throw new ConfigError(problems);
  return options;
}

function readPem(name: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    throw new ConfigError([`${name}: the file ${path} cannot be read (${code})`]);
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Node takes a CA bundle without a single certificate in it silently, and would then trust nothing. */
function caProblems(pem: string, path: string): string[] {
  const certificates = pem.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) {
    return [`FC_KAFKA_SSL_CA_FILE: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`];
  }
  const unreadable = certificates.filter((certificate) => {
    try {
      new X509Certificate(certificate);
      return false;
    } catch {
      return true;
    }
  });
  return unreadable.length === 0
    ? []
    : [`FC_KAFKA_SSL_CA_FILE: ${unreadable.length} of the certificates in ${path} cannot be parsed`];
}

/** The client certificate, its key and the passphrase, as OpenSSL judges them together. */
function secureContextProblems(options: ConnectionOptions, settings: KafkaSettings): string[] {
  if (options.cert === undefined && options.key === undefined) return [];
  try {
    createSecureContext(options);
    return [];
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    const cert = `FC_KAFKA_SSL_CERT_FILE (${settings.sslCertFile})`;
    const key = `FC_KAFKA_SSL_KEY_FILE (${settings.sslKeyFile})`;
    if (code === "ERR_OSSL_BAD_DECRYPT") {
      return [
        settings.sslKeyPassword === undefined
          ? `${key} is encrypted: set its passphrase in FC_KAFKA_SSL_KEY_PASSWORD`
          : `${key} cannot be decrypted with FC_KAFKA_SSL_KEY_PASSWORD: wrong passphrase`,
      ];
    }
    if (code === "ERR_OSSL_X509_KEY_VALUES_MISMATCH") return [`${key} is not the private key of ${cert}`];
    if (code === "ERR_OSSL_PEM_NO_START_LINE") return [`${cert} holds no PEM certificate`];
    return [`${cert} and ${key} are not a usable PEM certificate and private key (${code || "unknown"})`];
  }
}

/** Node's codes for a broker certificate that no trusted CA signed. */
const UNTRUSTED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
]);

/** What a failed TLS handshake means for the settings, or undefined for an error that is not about TLS. */
function tlsHint(error: NodeJS.ErrnoException, settings: KafkaSettings): string | undefined {
  const code = error.code;
  if (error.message.includes("before secure TLS connection was established")) {
    return "the broker closed the connection during the TLS handshake: is this port a TLS listener?";
  }
  if (code === undefined) return undefined;
  if (UNTRUSTED.has(code)) {
    return settings.sslCaFile === undefined
      ? "the broker's certificate is not signed by a public CA: set FC_KAFKA_SSL_CA_FILE to the CA that signed it"
      : `the broker's certificate is not signed by a CA in FC_KAFKA_SSL_CA_FILE (${settings.sslCaFile})`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return "the broker's certificate does not name the host connected to: use a broker address the certificate carries";
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return "the broker's certificate is outside its validity period";
  }
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG") {
    return "the broker did not answer in TLS: is this port a TLS listener?";
  }
  if (code.startsWith("ERR_SSL_")) {
    return settings.sslCertFile === undefined
      ? "the broker refused the handshake: does its listener require a client certificate (FC_KAFKA_SSL_CERT_FILE)?"
      : "the broker refused the handshake: is FC_KAFKA_SSL_CERT_FILE signed by a CA the broker trusts?";
  }
  return undefined;
}

/** OpenSSL's own words without its error-queue prefix: "ssl/tls alert bad certificate", not "40AD...:error:0A000412:...". */
function openSslReason(message: string): string {
  return /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1]?.trim() ?? message.trim();
}

/**
 * kafkajs's own socket factory, plus a TLS failure that says what it means: kafkajs reports it only as
 * "Connection error: <OpenSSL's words>", which reads like an unreachable broker.
 */
function tlsSocketFactory(settings: KafkaSettings): ISocketFactory {
  return ({ host, port, ssl, onConnect }) => {
    const socket = tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }, onConnect);
    socket.setKeepAlive(true, 60_000);
    socket.prependListener("error", (error: NodeJS.ErrnoException) => {
      const hint = tlsHint(error, settings);
      if (hint !== undefined) {
        error.message = `TLS with ${host}:${port} failed: ${openSslReason(error.message)} (${hint})`;
      }
    });
    return socket;
  };
}

/** The innermost error of kafkajs's wrappers (retries exceeded, non-retriable ...) that is a SASL failure. */
function saslFailure(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e.name === "KafkaJSSASLAuthenticationError") return true;
  }
  return false;
}

/** kafkajs's SASL failure names the mechanism but not the user: add the user and what to check, never the password. */
function explainAuthenticationFailure(error: unknown, mechanism: string, username: string): void {
  if (!saslFailure(error) || !(error instanceof Error)) return;
  error.message = `authentication failed for user ${JSON.stringify(username)} (SASL ${mechanism.toUpperCase()}): check FC_KAFKA_SASL_USERNAME and FC_KAFKA_SASL_PASSWORD. ${error.message}`;
}

/** A Kafka client whose admin, producers and consumers explain a failed connect before it is thrown. */
class ExplainedKafka extends Kafka {
  readonly #explain: (error: unknown) => void;

  constructor(config: KafkaConfig, explain: (error: unknown) => void) {
    super(config);
    this.#explain = explain;
  }

  override admin(config?: AdminConfig): Admin {
    return this.#explained(super.admin(config));
  }

  override producer(config?: ProducerConfig): Producer {
    return this.#explained(super.producer(config));
  }

  override consumer(config: ConsumerConfig): Consumer {
    return this.#explained(super.consumer(config));
  }

  #explained<T extends { connect(): Promise<void> }>(client: T): T {
    const connect = client.connect.bind(client);
    client.connect = () =>
      connect().catch((error: unknown) => {
        this.#explain(error);
        throw error;
      });
    return client;
  }
}
