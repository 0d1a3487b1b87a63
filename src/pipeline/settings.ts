/**
 * Settings of the delivery core: a batch's job life (batchJob.ts), flow control (pipeline.ts) and the
 * retry policy of the pipeline's own steps (src/retry.ts).
 */
import { datastoreName, integer, kafkaTopic, oneOf } from "../config/parsers.ts";
import { defineSettings, type OptionsOf } from "../config/spec.ts";

export const JOB_SETTINGS = defineSettings({
  jobTimeoutMs: {
    env: "FC_JOB_TIMEOUT_MS",
    default: "3600000",
    description:
      "A job not finished after this long counts as failed (tolerates cold starts of several minutes)",
    parser: integer(100, 604800000),
  },
  maxAttempts: {
    env: "FC_JOB_MAX_ATTEMPTS",
    default: "3",
    description:
      "Attempts in all for a batch's job (a failed or timed-out job is resubmitted), then its events are dead-lettered",
    parser: integer(1, 100),
  },
  outputDatastore: {
    env: "FC_ENDPOINT_OUTPUT_DATASTORE",
    default: "workspaceblobstore",
    description: "(v2 flavor) datastore name in the job's OutputData URI",
    parser: datastoreName,
  },
});
export type JobSettings = OptionsOf<typeof JOB_SETTINGS>;

export const FLOW_SETTINGS = defineSettings({
  maxJobsInFlight: {
    env: "FC_MAX_JOBS_IN_FLIGHT",
    default: "8",
    description:
      "Batches in their job at once (uploading, submitted or publishing); sealed batches wait for a slot",
    parser: integer(1, 1000),
  },
  maxEventsInFlight: {
    env: "FC_MAX_EVENTS_IN_FLIGHT",
    default: "50000",
    description:
      "Consumed but not yet finished events; the consumer pauses at this bound (must be >= FC_BATCH_MAX_RECORDS)",
    parser: integer(1, 10000000),
  },
});
export type FlowSettings = OptionsOf<typeof FLOW_SETTINGS>;

export const RETRY_SETTINGS = defineSettings({
  initialDelayMs: {
    env: "FC_RETRY_INITIAL_DELAY_MS",
    default: "1000",
    description:
      "First wait of the pipeline's own retries (blob steps, resubmission after an endpoint outage, publishing, commits); it doubles with jitter",
    parser: integer(1, 600000),
  },
  maxDelayMs: {
    env: "FC_RETRY_MAX_DELAY_MS",
    default: "60000",
    description: "Longest wait between two of those retries (must be >= FC_RETRY_INITIAL_DELAY_MS)",
    parser: integer(1, 3600000),
  },
});
export type RetrySettings = OptionsOf<typeof RETRY_SETTINGS>;

export const DELIVERY_SETTINGS = defineSettings({
  guarantee: {
    env: "FC_DELIVERY_GUARANTEE",
    default: "exactly-once",
    description:
      "exactly-once (each partition's predictions, dead letters, ledger update and offsets commit in one Kafka transaction: read the results with isolation.level=read_committed) or at-least-once (a crash may publish some outcomes twice)",
    parser: oneOf(["exactly-once", "at-least-once"]),
  },
  ledgerTopic: {
    env: "FC_LEDGER_TOPIC",
    default: "forecast-connector.ledger",
    description:
      "Compacted topic recording each batch's job (intent, submitted, done) per input partition, so no job is ever submitted twice; one per consumer group, with the input's partition count",
    parser: kafkaTopic,
  },
});
export type DeliverySettings = OptionsOf<typeof DELIVERY_SETTINGS>;
