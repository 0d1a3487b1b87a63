import type { Admin } from "kafkajs";
import type { TopicSettings } from "./settings.ts";

/**
 * The topics must exist, or be created when FC_CREATE_TOPICS is on. Returns a problem naming each topic
 * that is missing, for the start-up error.
 */
export async function ensureTopics(
  admin: Admin,
  topics: readonly string[],
  settings: TopicSettings,
): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t));
  if (missing.length === 0) return [];
  if (!settings.createTopics) {
    return missing.map((t) => `Kafka topic "${t}" does not exist (create it, or set FC_CREATE_TOPICS=true)`);
  }
  await admin.createTopics({
    waitForLeaders: true,
    topics: missing.map((topic) => ({
      topic,
      numPartitions: settings.topicPartitions,
      replicationFactor: -1,
    })),
  });
  return [];
}
