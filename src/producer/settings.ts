/** Settings of the publisher (publisher.ts): where predictions and dead letters go. */
import { kafkaTopic } from "../config/parsers.ts";
import { defineSettings, type OptionsOf } from "../config/spec.ts";

export const PRODUCER_SETTINGS = defineSettings({
  resultsTopic: {
    env: "FC_RESULTS_TOPIC",
    required: true,
    description: "Topic the predictions are published to (Avro)",
    parser: kafkaTopic,
  },
  deadLetterTopic: {
    env: "FC_DEAD_LETTER_TOPIC",
    required: true,
    description: "Topic for events that cannot be scored (invalid, or their job failed every attempt)",
    parser: kafkaTopic,
  },
});
export type ProducerSettings = OptionsOf<typeof PRODUCER_SETTINGS>;
