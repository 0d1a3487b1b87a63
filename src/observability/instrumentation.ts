/**
 * The one place the stages' instrumentation events become metrics and log lines (kafkajs style: stages
 * emit typed events and never log or count on their own, so the hot paths stay free of both). Each
 * handler takes the events of one stage; the wiring (src/connector.ts) passes them as the stages' onEvent.
 * Tokens, keys and secrets never reach an event, so none reaches a log line here either.
 */
import type { EndpointEvent } from "../azure/endpointClient.ts";
import { describeServiceError } from "../azure/errors.ts";
import type { CancelEvent } from "../azure/jobCanceller.ts";
import type { PollerEvent } from "../azure/jobPoller.ts";
import { jobStatusLabel } from "../azure/jobStatus.ts";
import type { BatchJobEvent } from "../pipeline/batchJob.ts";
import type { CoordinatorEvent } from "../pipeline/coordinator.ts";
import type { PipelineEvent } from "../pipeline/pipeline.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";

/** What the input consumer reports (src/consumer/inputConsumer.ts hands these to its handlers). */
export type ConsumerEvent =
  | {
      readonly type: "group_joined";
      readonly assigned: readonly number[];
      readonly added: readonly number[];
      readonly lost: readonly number[];
    }
  | { readonly type: "crashed"; readonly error: Error; readonly willRestart: boolean };

export interface Instrumentation {
  readonly consumer: (event: ConsumerEvent) => void;
  readonly pipeline: (event: PipelineEvent) => void;
  readonly batchJob: (event: BatchJobEvent) => void;
  readonly poller: (event: PollerEvent) => void;
  readonly endpoint: (event: EndpointEvent) => void;
  readonly canceller: (event: CancelEvent) => void;
  readonly coordinator: (event: CoordinatorEvent) => void;
  /** When a step last succeeded (an upload, a job status read, a publish, a commit): for /readyz. */
  readonly lastProgressMs: () => number;
}

export function createInstrumentation(metrics: Metrics, logger: Logger): Instrumentation {
  const consumerLog = logger.child({ component: "consumer" });
  const pipelineLog = logger.child({ component: "pipeline" });
  const jobLog = logger.child({ component: "jobs" });
  const coordinatorLog = logger.child({ component: "coordinator" });
  let lastProgress = Date.now();
  const progressed = () => {
    lastProgress = Date.now();
  };

  return {
    lastProgressMs: () => lastProgress,
    consumer(event) {
      switch (event.type) {
        case "group_joined":
          metrics.consumerGroupJoins.inc();
          consumerLog.info(
            { assigned: event.assigned, added: event.added, lost: event.lost },
            "partitions assigned",
          );
          break;
        case "crashed":
          consumerLog.error({ err: event.error, willRestart: event.willRestart }, "consumer crashed");
          break;
      }
    },

    pipeline(event) {
      switch (event.type) {
        case "messages_handled":
          progressed();
          metrics.eventsConsumed.inc(event.consumed);
          for (const [reason, count] of Object.entries(event.invalid))
            metrics.eventsInvalid.inc({ reason }, count);
          break;
        case "registry_unavailable":
          pipelineLog.warn(
            { err: event.error, source: event.source },
            "schema registry unavailable: event left for the next fetch",
          );
          break;
        case "batch_sealed":
          metrics.batchesFlushed.inc({ trigger: event.trigger });
          metrics.batchSizeEvents.observe(event.events);
          pipelineLog.info(
            { batchId: event.batchId, events: event.events, bytes: event.bytes, trigger: event.trigger },
            "batch sealed",
          );
          break;
        case "batch_resuming":
          metrics.jobsResumed.inc();
          pipelineLog.info(
            { batchId: event.batchId, partitions: event.partitions },
            "batch resumed from the ledger",
          );
          break;
        case "batch_failed":
          metrics.batchesFailed.inc();
          pipelineLog.error(
            { err: event.error, batchId: event.batchId, attempt: event.attempt },
            "batch scoring failed unexpectedly; it is scored again",
          );
          break;
        case "batch_abandoned":
          pipelineLog.error(
            { err: event.error, batchId: event.batchId },
            "batch abandoned before its outcome was settled",
          );
          break;
        case "in_flight":
          metrics.eventsInFlight.set(event.events);
          metrics.jobsInFlight.set(event.batchesRunning);
          metrics.batchesWaiting.set(event.batchesWaiting);
          break;
        case "input_paused": {
          const { type: _, ...inFlight } = event;
          metrics.consumerPaused.set(1);
          metrics.consumerPauses.inc();
          pipelineLog.info(inFlight, "input paused: in-flight work at its bound");
          break;
        }
        case "input_resumed": {
          const { type: _, ...inFlight } = event;
          metrics.consumerPaused.set(0);
          pipelineLog.info(inFlight, "input resumed");
          break;
        }
      }
    },

    batchJob(event) {
      switch (event.type) {
        case "uploaded":
          progressed();
          metrics.blobUploadDuration.observe(event.durationMs / 1000);
          metrics.batchSizeBytes.observe(event.bytes);
          break;
        case "submitted":
          progressed();
          metrics.jobsSubmitted.inc();
          break;
        case "resumed":
          break;
        case "submit_failed":
          metrics.jobsFailed.inc({ reason: "submit_error" });
          break;
        case "resubmitting":
          metrics.jobsRetried.inc();
          break;
        case "finished": {
          const status = event.outcome.status;
          metrics.jobDuration.observe({ status }, event.outcome.durationMs / 1000);
          if (status === "Completed") metrics.jobsCompleted.inc();
          else metrics.jobsFailed.inc({ reason: status === "TimedOut" ? "timeout" : status.toLowerCase() });
          break;
        }
        case "results_parsed": {
          const rejected = {
            malformed: event.malformedRows,
            // unmatchedRows counts the duplicates too: each rejected row is counted under one reason only.
            unmatched: event.unmatchedRows - event.duplicateRows,
            duplicate: event.duplicateRows,
          };
          for (const [reason, count] of Object.entries(rejected))
            if (count > 0) metrics.predictionRowsRejected.inc({ reason }, count);
          metrics.jobRowsMissing.observe(event.missing);
          if (event.missing > 0) metrics.predictionRowsMissing.inc(event.missing);
          break;
        }
        case "step_failed":
          break;
      }
      const warn =
        event.type === "submit_failed" ||
        event.type === "resubmitting" ||
        event.type === "step_failed" ||
        (event.type === "finished" && event.outcome.status !== "Completed");
      const { type, ...fields } = event;
      // The service's error body in one line beside the structured one: what an operator greps for.
      const serviceError =
        event.type === "finished" && event.outcome.error
          ? { serviceError: describeServiceError(event.outcome.error) }
          : {};
      jobLog[warn ? "warn" : "info"]({ ...fields, ...serviceError }, `batch ${type}`);
    },

    poller(event) {
      switch (event.type) {
        case "status_read":
          progressed();
          metrics.jobStatusReads.inc({ status: jobStatusLabel(event.status) });
          break;
        case "status_changed":
          jobLog.debug({ jobId: event.jobId, status: event.status }, "job status");
          break;
        case "unknown_status":
          jobLog.warn(
            { jobId: event.jobId, status: event.status },
            "job status never seen before: treated as running, bounded by the job timeout (told once per status)",
          );
          break;
        case "poll_failed":
          jobLog.warn({ jobId: event.jobId, err: event.error }, "job status read failed; polling goes on");
          break;
      }
    },

    canceller(event) {
      metrics.jobCancels.inc({ reason: event.reason, outcome: event.outcome });
      const { type: _, ...fields } = event;
      jobLog[event.outcome === "accepted" ? "info" : "warn"](fields, "job cancel requested");
    },

    endpoint(event) {
      if (event.type === "http_retry") metrics.httpRetries.inc({ operation: event.operation });
      else metrics.tokenRenewals.inc({ cause: event.cause });
    },

    coordinator(event) {
      switch (event.type) {
        case "outcomes_published": {
          progressed();
          metrics.predictionsPublished.inc(event.predictions);
          for (const timestampMs of event.sourceTimestampsMs)
            metrics.endToEndLatency.observe((event.acknowledgedAtMs - timestampMs) / 1000);
          let deadLetters = 0;
          for (const [reason, count] of Object.entries(event.deadLetters)) {
            metrics.deadLetters.inc({ reason }, count);
            deadLetters += count;
          }
          if (event.batchId !== undefined) {
            coordinatorLog.info(
              {
                batchId: event.batchId,
                jobId: event.jobId,
                partition: event.partition,
                predictions: event.predictions,
                deadLetters,
              },
              "batch results published",
            );
          }
          break;
        }
        case "write_failed":
          metrics.outputWriteFailures.inc();
          coordinatorLog.error(
            { err: event.error, partition: event.partition, what: event.what, attempt: event.attempt },
            "writing to Kafka failed; retrying",
          );
          break;
        case "partition_fenced":
          metrics.partitionsFenced.inc();
          coordinatorLog.warn(
            { err: event.error, partition: event.partition },
            "partition fenced by its new owner: its work here is dropped",
          );
          break;
        case "partition_loaded":
          metrics.partitionLoadDuration.observe(event.durationMs / 1000);
          coordinatorLog.info(
            {
              partition: event.partition,
              held: event.held,
              resumable: event.resumable,
              durationMs: event.durationMs,
            },
            "partition taken over: previous owner fenced, ledger read",
          );
          break;
        case "ledger_recorded":
          progressed();
          metrics.ledgerRecords.inc({ state: event.state });
          coordinatorLog.debug(
            { partition: event.partition, batchId: event.batchId, state: event.state },
            "ledger recorded",
          );
          break;
        case "batch_file_read_failed":
          coordinatorLog.error(
            { err: event.error, blobPath: event.blobPath, attempt: event.attempt },
            "reading a batch file back for its dead letters failed; retrying",
          );
          break;
        case "committed":
          progressed();
          metrics.offsetsCommitted.inc();
          break;
      }
    },
  };
}
