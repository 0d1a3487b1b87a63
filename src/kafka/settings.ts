/** Settings of the Kafka connection, the topics the connector creates, and the schema registry. */

import { boolean, brokerList, httpUrl, integer, oneOf, readableFile, text } from "../config/parsers.ts";
import { defineSettings, type OptionsOf } from "../config/spec.ts";

/** The kafkajs client (client.ts). */
export const KAFKA_SETTINGS = defineSettings({
  brokers: {
    env: "FC_KAFKA_BROKERS",
    required: true,
    description: "Kafka bootstrap brokers, comma-separated host:port",
    parser: brokerList,
  },
  clientId: {
    env: "FC_KAFKA_CLIENT_ID",
    default: "forecast-connector",
    description: "Kafka client id (appears in broker logs and quotas)",
    parser: text(255),
  },
  ssl: {
    env: "FC_KAFKA_SSL",
    default: "false",
    description: "Connect to the brokers over TLS",
    parser: boolean,
  },
  sslCaFile: {
    env: "FC_KAFKA_SSL_CA_FILE",
    description:
      "PEM file of the CA certificates the brokers' certificates are checked against (with FC_KAFKA_SSL); it replaces Node's public CA list. Unset: that list",
    parser: readableFile,
  },
  sslCertFile: {
    env: "FC_KAFKA_SSL_CERT_FILE",
    description:
      "PEM file of the client certificate (and its chain) for mutual TLS; with FC_KAFKA_SSL_KEY_FILE and FC_KAFKA_SSL",
    parser: readableFile,
  },
  sslKeyFile: {
    env: "FC_KAFKA_SSL_KEY_FILE",
    description: "PEM file of the client certificate's private key; with FC_KAFKA_SSL_CERT_FILE",
    parser: readableFile,
  },
  sslKeyPassword: {
    env: "FC_KAFKA_SSL_KEY_PASSWORD",
    secret: true,
    description: "Passphrase of an encrypted FC_KAFKA_SSL_KEY_FILE",
    parser: text(4096),
  },
  sslRejectUnauthorized: {
    env: "FC_KAFKA_SSL_REJECT_UNAUTHORIZED",
    default: "true",
    description:
      "Check the brokers' certificates and host names (with FC_KAFKA_SSL); false is allowed only when every broker is on a loopback host",
    parser: boolean,
  },
  saslMechanism: {
    env: "FC_KAFKA_SASL_MECHANISM",
    description:
      "SASL mechanism; unset means no SASL. Needs FC_KAFKA_SASL_USERNAME and FC_KAFKA_SASL_PASSWORD",
    parser: oneOf(["plain", "scram-sha-256", "scram-sha-512"]),
  },
  saslUsername: {
    env: "FC_KAFKA_SASL_USERNAME",
    description: "SASL user name",
    parser: text(1024),
  },
  saslPassword: {
    env: "FC_KAFKA_SASL_PASSWORD",
    secret: true,
    description: "SASL password",
    parser: text(4096),
  },
});
export type KafkaSettings = OptionsOf<typeof KAFKA_SETTINGS>;

/** Start-up topic checks (topics.ts). */
export const TOPIC_SETTINGS = defineSettings({
  createTopics: {
    env: "FC_CREATE_TOPICS",
    default: "false",
    description: "Create missing topics at start (otherwise a missing topic stops start-up)",
    parser: boolean,
  },
  topicPartitions: {
    env: "FC_TOPIC_PARTITIONS",
    default: "6",
    description: "Partitions of topics the connector creates (used only with FC_CREATE_TOPICS)",
    parser: integer(1, 10000),
  },
});
export type TopicSettings = OptionsOf<typeof TOPIC_SETTINGS>;

/** The schema registry client (schemaRegistry.ts), for Avro events in and the Avro results out. */
export const SCHEMA_REGISTRY_SETTINGS = defineSettings({
  url: {
    env: "FC_SCHEMA_REGISTRY_URL",
    required: true,
    description: "Schema registry URL (Confluent API) for the Avro results",
    parser: httpUrl,
  },
  username: {
    env: "FC_SCHEMA_REGISTRY_USERNAME",
    description: "Schema registry basic-auth user name (with FC_SCHEMA_REGISTRY_PASSWORD)",
    parser: text(1024),
  },
  password: {
    env: "FC_SCHEMA_REGISTRY_PASSWORD",
    secret: true,
    description: "Schema registry basic-auth password",
    parser: text(4096),
  },
});
export type SchemaRegistrySettings = OptionsOf<typeof SCHEMA_REGISTRY_SETTINGS>;
