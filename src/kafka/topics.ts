import "./abortedTransactionsOrder.ts"; // before kafkajs: its read_committed filter, fixed
import kafkajs, { type Admin } from "kafkajs";
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

/** The input topic's partition count (the ledger must have the same). */
async function partitionCount(admin: Admin, topic: string): Promise<number | undefined> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => ({ topics: [] }));
  return topics.find((t) => t.name === topic)?.partitions.length;
}

async function topicConfig(admin: Admin, topic: string, name: string): Promise<string | undefined> {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    // A CommonJS enum Node cannot import by name: read off the default export.
    resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }],
  });
  return described.resources[0]?.configEntries.find((entry) => entry.configName === name)?.configValue;
}

/**
 * The job ledger must be a compacted topic (compaction alone: time or size retention would delete the record
 * of a batch still in flight) with the input's partition count, ledger partition P being input partition P's.
 * Created so when missing and FC_CREATE_TOPICS is on. Returns problems naming FC_LEDGER_TOPIC.
 */
export async function ensureLedgerTopic(
  admin: Admin,
  ledgerTopic: string,
  inputTopic: string,
  settings: TopicSettings,
): Promise<string[]> {
  const inputPartitions = await partitionCount(admin, inputTopic);
  if (inputPartitions === undefined) return []; // the input topic's own problem is reported already
  const existing = new Set(await admin.listTopics());
  if (!existing.has(ledgerTopic)) {
    if (!settings.createTopics) {
      return [
        `FC_LEDGER_TOPIC: Kafka topic "${ledgerTopic}" does not exist (create it with cleanup.policy=compact and ${inputPartitions} partitions like "${inputTopic}", or set FC_CREATE_TOPICS=true)`,
      ];
    }
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: ledgerTopic,
          numPartitions: inputPartitions,
          replicationFactor: -1,
          configEntries: [{ name: "cleanup.policy", value: "compact" }],
        },
      ],
    });
    return [];
  }
  const problems: string[] = [];
  const ledgerPartitions = await partitionCount(admin, ledgerTopic);
  if (ledgerPartitions !== inputPartitions) {
    problems.push(
      `FC_LEDGER_TOPIC: topic "${ledgerTopic}" has ${ledgerPartitions} partitions, but the input topic "${inputTopic}" has ${inputPartitions}: they must be equal`,
    );
  }
  const policy = await topicConfig(admin, ledgerTopic, "cleanup.policy");
  if (policy !== "compact") {
    problems.push(
      `FC_LEDGER_TOPIC: topic "${ledgerTopic}" has cleanup.policy=${policy ?? "unknown"}; it must be compact (alone)`,
    );
  }
  return problems;
}

/**
 * The largest record the dead-letter topic takes (its max.message.bytes), less a margin for the batch
 * framing: dead letters are cut to fit it.
 */
export async function maxRecordBytes(admin: Admin, topic: string): Promise<number | undefined> {
  const value = await topicConfig(admin, topic, "max.message.bytes").catch(() => undefined);
  const bytes = value === undefined ? Number.NaN : Number(value);
  return Number.isFinite(bytes) && bytes > 8192 ? bytes - 4096 : undefined;
}
