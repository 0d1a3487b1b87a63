import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Every metric shares this prefix; names carry base units and counters end in _total (Prometheus conventions). */
export const METRIC_PREFIX = "forecast_connector_";

/**
 * Histogram buckets, chosen per histogram from the range it must resolve, so percentiles read from them are
 * close to the true ones (one wide bucket would make p50 and p99 artefacts of its bounds).
 */
export const BUCKETS = {
  /** Seconds from event to acknowledged prediction: seconds with a warm endpoint, up to hours after cold starts. */
  endToEndLatency: [
    0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200,
    1800, 2700, 3600, 5400, 7200,
  ],
  /** Seconds from submission to a terminal status: seconds (warm) to an hour and more (cold start, queues). */
  jobDuration: [
    1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600, 5400,
    7200,
  ],
  /** Seconds to upload one batch's files: milliseconds on a near account, up to a minute when throttled. */
  blobUploadDuration: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  /** Events per batch: 1 (time trigger on a quiet topic) to FC_BATCH_MAX_RECORDS's upper range. */
  batchSizeEvents: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000],
  /** Bytes per batch: one small event to FC_BATCH_MAX_BYTES's upper bound (256 MiB). */
  /** Events per Completed job left without a row in predictions.csv: 0 (the norm) to a whole large batch. */
  rowsMissingPerJob: [0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 100000, 1000000],
  batchSizeBytes: [1e3, 1e4, 1e5, 2.5e5, 5e5, 1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7, 6.4e7, 1.28e8, 2.56e8],
} as const;

/**
 * The connector's metrics, created once on the registry given, plus prom-client's default process and Node.js
 * metrics (memory, CPU, event-loop lag, GC) under the same prefix. Label values are bounded sets (reasons,
 * triggers, statuses, partitions), never ids.
 *
 * Event accounting (docs/architecture.md, invariant 3): every consumed event ends in exactly one bucket, so
 * at any moment events_consumed_total = predictions_published_total + dead_letters_total + events_in_flight.
 */
export function createMetrics(registry: Registry = new Registry()) {
  const p = METRIC_PREFIX;
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: p });
  return {
    registry,
    eventsConsumed: new Counter({
      name: `${p}events_consumed_total`,
      help: "Events read from the input topic (valid and invalid).",
      registers,
    }),
    eventsInvalid: new Counter({
      name: `${p}events_invalid_total`,
      help: "Events rejected by decoding or validation, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    eventsInFlight: new Gauge({
      name: `${p}events_in_flight`,
      help: "Events consumed whose prediction or dead-letter record is not yet acknowledged.",
      registers,
    }),
    batchesFlushed: new Counter({
      name: `${p}batches_flushed_total`,
      help: "Micro-batches sealed, by the trigger that sealed them.",
      labelNames: ["trigger"] as const,
      registers,
    }),
    batchSizeEvents: new Histogram({
      name: `${p}batch_size_events`,
      help: "Events per sealed batch.",
      buckets: [...BUCKETS.batchSizeEvents],
      registers,
    }),
    batchSizeBytes: new Histogram({
      name: `${p}batch_size_bytes`,
      help: "Size of each batch file uploaded, in bytes.",
      buckets: [...BUCKETS.batchSizeBytes],
      registers,
    }),
    blobUploadDuration: new Histogram({
      name: `${p}blob_upload_duration_seconds`,
      help: "Time to upload one batch file to Blob Storage.",
      buckets: [...BUCKETS.blobUploadDuration],
      registers,
    }),
    jobsSubmitted: new Counter({
      name: `${p}jobs_submitted_total`,
      help: "Batch jobs submitted to the endpoint (resubmissions included).",
      registers,
    }),
    jobsCompleted: new Counter({
      name: `${p}jobs_completed_total`,
      help: "Batch jobs that ended Completed.",
      registers,
    }),
    jobsFailed: new Counter({
      name: `${p}jobs_failed_total`,
      help: "Batch job attempts that did not complete, by reason (failed, canceled, timeout, submit_error).",
      labelNames: ["reason"] as const,
      registers,
    }),
    jobsRetried: new Counter({
      name: `${p}jobs_retried_total`,
      help: "Batches resubmitted after a failed or timed-out job.",
      registers,
    }),
    httpRetries: new Counter({
      name: `${p}endpoint_http_retries_total`,
      help: "Endpoint HTTP requests retried (429, 5xx, network errors), by operation.",
      labelNames: ["operation"] as const,
      registers,
    }),
    jobDuration: new Histogram({
      name: `${p}job_duration_seconds`,
      help: "Time from job submission to its terminal status, by status.",
      labelNames: ["status"] as const,
      buckets: [...BUCKETS.jobDuration],
      registers,
    }),
    jobsInFlight: new Gauge({
      name: `${p}jobs_in_flight`,
      help: "Batches in their job (uploading, submitted or publishing), bounded by FC_MAX_JOBS_IN_FLIGHT.",
      registers,
    }),
    batchesWaiting: new Gauge({
      name: `${p}batches_waiting`,
      help: "Sealed batches waiting for a job slot (the input is paused while any wait).",
      registers,
    }),
    predictionsPublished: new Counter({
      name: `${p}predictions_published_total`,
      help: "Prediction records acknowledged by Kafka on the results topic.",
      registers,
    }),
    predictionRowsMissing: new Counter({
      name: `${p}prediction_rows_missing_total`,
      help: "Events of Completed jobs that predictions.csv has no row for (failed mini-batches: deployments default to error_threshold -1); they become missing_prediction dead letters.",
      registers,
    }),
    jobRowsMissing: new Histogram({
      name: `${p}job_prediction_rows_missing`,
      help: "Per Completed job, events predictions.csv has no row for (0 for a complete output).",
      buckets: [...BUCKETS.rowsMissingPerJob],
      registers,
    }),
    jobStatusReads: new Counter({
      name: `${p}job_status_reads_total`,
      help: "Job status reads answered, by the status read (a documented Azure ML status, or other).",
      labelNames: ["status"] as const,
      registers,
    }),
    jobCancels: new Counter({
      name: `${p}job_cancels_total`,
      help: "Cancel requests sent through ARM, by reason (timed_out, given_up) and outcome (accepted, not_found, rejected, failed, timeout, aborted).",
      labelNames: ["reason", "outcome"] as const,
      registers,
    }),
    predictionRowsRejected: new Counter({
      name: `${p}prediction_rows_rejected_total`,
      help: "predictions.csv rows not used, by reason (malformed; unmatched: no event of the batch; duplicate: an event already matched).",
      labelNames: ["reason"] as const,
      registers,
    }),
    deadLetters: new Counter({
      name: `${p}dead_letters_total`,
      help: "Records acknowledged on the dead-letter topic, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    endToEndLatency: new Histogram({
      name: `${p}end_to_end_latency_seconds`,
      help: "From the event's Kafka timestamp to its prediction being acknowledged.",
      buckets: [...BUCKETS.endToEndLatency],
      registers,
    }),
    tokenRenewals: new Counter({
      name: `${p}token_renewals_total`,
      help: "Entra ID access tokens obtained, by cause (initial, expiry, unauthorized).",
      labelNames: ["cause"] as const,
      registers,
    }),
    offsetsCommitted: new Counter({
      name: `${p}offset_commits_total`,
      help: "Offset commits sent to the group coordinator.",
      registers,
    }),
    consumerLag: new Gauge({
      name: `${p}consumer_lag_messages`,
      help: "Per input partition: log end offset minus the committed offset.",
      labelNames: ["partition"] as const,
      registers,
    }),
    consumerGroupJoins: new Counter({
      name: `${p}consumer_group_joins_total`,
      help: "Times this member joined its consumer group (1 plus one per rebalance it took part in).",
      registers,
    }),
    consumerPauses: new Counter({
      name: `${p}consumer_pauses_total`,
      help: "Times the input was paused because in-flight work reached its bound.",
      registers,
    }),
    outputWriteFailures: new Counter({
      name: `${p}output_write_failures_total`,
      help: "Writes of outcomes, ledger records or offsets that Kafka refused (each is retried; a fenced partition is dropped).",
      registers,
    }),
    partitionsFenced: new Counter({
      name: `${p}partitions_fenced_total`,
      help: "Input partitions dropped because another member's producer fenced this one (it owns them now).",
      registers,
    }),
    partitionLoadDuration: new Histogram({
      name: `${p}partition_load_duration_seconds`,
      help: "Time to take over an assigned partition: fence its previous owner and read its ledger.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers,
    }),
    ledgerRecords: new Counter({
      name: `${p}ledger_records_total`,
      help: "Job ledger records written before and after submissions, by state (intent, submitted).",
      labelNames: ["state"] as const,
      registers,
    }),
    jobsResumed: new Counter({
      name: `${p}jobs_resumed_total`,
      help: "Batches found in flight in the ledger of an assigned partition and resumed (their jobs watched again, never resubmitted).",
      registers,
    }),
    batchesFailed: new Counter({
      name: `${p}batches_failed_total`,
      help: "Times a batch's scoring failed unexpectedly and was started again.",
      registers,
    }),
    consumerPaused: new Gauge({
      name: `${p}consumer_paused`,
      help: "1 while the consumer is paused because in-flight work reached its bound.",
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
