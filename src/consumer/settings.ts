/** Settings of the input consumer (inputConsumer.ts) and of event validation (validate.ts, decode.ts). */
import { integer, kafkaTopic, text } from "../config/parsers.ts";
import { defineSettings, type OptionsOf } from "../config/spec.ts";

export const CONSUMER_SETTINGS = defineSettings({
  groupId: {
    env: "FC_KAFKA_GROUP_ID",
    default: "forecast-connector",
    description: "Consumer group; instances with the same id share the input partitions",
    parser: text(255),
  },
  topic: {
    env: "FC_INPUT_TOPIC",
    required: true,
    description: "Topic of the store feature events consumed",
    parser: kafkaTopic,
  },
  sessionTimeoutMs: {
    env: "FC_KAFKA_SESSION_TIMEOUT_MS",
    default: "30000",
    description: "Consumer group session timeout (the broker bounds it too)",
    parser: integer(1000, 1800000),
  },
});
export type ConsumerSettings = OptionsOf<typeof CONSUMER_SETTINGS>;

export const VALIDATION_SETTINGS = defineSettings({
  featureCount: {
    env: "FC_FEATURE_COUNT",
    default: "13",
    description: "Number of features each event must carry (the model's input size)",
    parser: integer(1, 10000),
  },
  maxStoreIdLength: {
    env: "FC_MAX_STORE_ID_LENGTH",
    default: "64",
    description: "Longest store_id accepted",
    parser: integer(1, 1024),
  },
  maxMessageBytes: {
    env: "FC_MAX_MESSAGE_BYTES",
    default: "65536",
    description:
      "Largest input message accepted; larger ones are dead-lettered (must be < FC_BATCH_MAX_BYTES)",
    parser: integer(1, 104857600),
  },
});
export type ValidationSettings = OptionsOf<typeof VALIDATION_SETTINGS>;
