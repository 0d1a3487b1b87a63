import { type Kafka, type Message, Partitioners, type Producer } from "kafkajs";
import { type DeadLetter, deadLetterHeaders } from "./deadLetter.ts";
import type { PredictionEncoder, PredictionRecord } from "./predictionRecord.ts";

export interface PublisherOptions {
  readonly kafka: Kafka;
  readonly resultsTopic: string;
  readonly deadLetterTopic: string;
  readonly encoder: PredictionEncoder;
}

export interface Publisher {
  connect(): Promise<void>;
  /**
   * Sends predictions and dead letters; resolves once Kafka has acknowledged every record (acks=all),
   * which is when their source offsets may be committed.
   */
  publish(predictions: readonly PredictionRecord[], deadLetters: readonly DeadLetter[]): Promise<void>;
  disconnect(): Promise<void>;
}

/** The connector's one idempotent producer, for the results topic and the dead-letter topic. */
export function createPublisher(options: PublisherOptions): Publisher {
  const producer: Producer = options.kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // The Java client's murmur2 partitioning: a store's forecasts land where Java producers would put them.
    createPartitioner: Partitioners.DefaultPartitioner,
  });

  return {
    connect: () => producer.connect(),
    async publish(predictions, deadLetters) {
      const now = new Date();
      const topicMessages: Array<{ topic: string; messages: Message[] }> = [];
      if (predictions.length > 0) {
        const messages = await Promise.all(
          predictions.map(async (record) => ({
            key: record.store_id,
            value: await options.encoder.encode(record),
          })),
        );
        topicMessages.push({ topic: options.resultsTopic, messages });
      }
      if (deadLetters.length > 0) {
        topicMessages.push({
          topic: options.deadLetterTopic,
          messages: deadLetters.map((letter) => ({
            key: letter.key,
            value: letter.value,
            headers: deadLetterHeaders(letter, now),
            timestamp: String(now.getTime()),
          })),
        });
      }
      if (topicMessages.length > 0) await producer.sendBatch({ topicMessages, acks: -1 });
    },
    disconnect: () => producer.disconnect(),
  };
}
