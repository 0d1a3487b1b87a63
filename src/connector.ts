import type { TokenCredential } from "@azure/core-auth";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import type { Admin } from "kafkajs";
import { Registry } from "prom-client";
import { createBatchStore } from "./azure/blobStore.ts";
import { createCredential } from "./azure/credential.ts";
import { createEndpointClient } from "./azure/endpointClient.ts";
import { createJobPoller } from "./azure/jobPoller.ts";
import { createBatcher, createBatchPolicy } from "./batcher/index.ts";
import type { Config } from "./config/types.ts";
import { createEventDecoder } from "./consumer/decode.ts";
import { createInputConsumer } from "./consumer/inputConsumer.ts";
import { createEventValidator } from "./consumer/validate.ts";
import { createKafkaClient } from "./kafkaClient.ts";
import { startHealthServer } from "./observability/healthServer.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { createMetrics, type Metrics } from "./observability/metrics.ts";
import { type BatchJobDeps, type BatchJobEvent, scoreBatch, uploadBatch } from "./pipeline/batchJob.ts";
import { createCoordinator } from "./pipeline/coordinator.ts";
import { createOffsetTracker } from "./pipeline/offsetTracker.ts";
import { createPipeline, type Pipeline } from "./pipeline/pipeline.ts";
import { createPredictionEncoder } from "./producer/predictionRecord.ts";
import { createPublisher } from "./producer/publisher.ts";
import type { SealedBatch } from "./types.ts";

export interface ConnectorDependencies {
  /** Default: from config (DefaultAzureCredential, or the local-dev one for the emulator). */
  readonly credential?: TokenCredential;
  readonly logger?: Logger;
  /** Default: a new prom-client registry. */
  readonly metricsRegistry?: Registry;
  /** How often consumer_lag_messages is refreshed. Default 15 s. */
  readonly lagIntervalMs?: number;
}

export interface Connector {
  readonly metrics: Metrics;
  /** The port /metrics, /healthz and /readyz are served on. */
  readonly httpPort: number;
  readonly pipeline: Pipeline;
  /** Stops fetching, lets quick work finish within shutdownTimeoutMs, commits what is settled, disconnects. */
  stop(): Promise<void>;
}

export class StartupError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`forecast-connector cannot start:\n  - ${problems.join("\n  - ")}`);
    this.name = "StartupError";
    this.problems = problems;
  }
}

/** Topics must exist (or be created when FC_CREATE_TOPICS is on); whatever is missing is named. */
async function ensureTopics(admin: Admin, config: Config["kafka"]): Promise<string[]> {
  const wanted = [config.inputTopic, config.resultsTopic, config.deadLetterTopic];
  const existing = new Set(await admin.listTopics());
  const missing = wanted.filter((t) => !existing.has(t));
  if (missing.length === 0) return [];
  if (!config.createTopics) {
    return missing.map((t) => `Kafka topic "${t}" does not exist (create it, or set FC_CREATE_TOPICS=true)`);
  }
  await admin.createTopics({
    waitForLeaders: true,
    topics: missing.map((topic) => ({ topic, numPartitions: config.topicPartitions, replicationFactor: -1 })),
  });
  return [];
}

async function checkRegistry(config: Config["schemaRegistry"]): Promise<string[]> {
  const headers: Record<string, string> = {};
  if (config.username) {
    headers.Authorization = `Basic ${Buffer.from(`${config.username}:${config.password ?? ""}`).toString("base64")}`;
  }
  try {
    const response = await fetch(`${config.url.replace(/\/+$/, "")}/subjects`, {
      headers,
      signal: AbortSignal.timeout(10_000),
    });
    return response.ok ? [] : [`schema registry at ${config.url} answered HTTP ${response.status}`];
  } catch (error) {
    return [`schema registry at ${config.url} cannot be reached: ${(error as Error).message}`];
  }
}

/** Builds every stage from the configuration and starts consuming. The one place the pipeline is wired. */
export async function startConnector(config: Config, deps: ConnectorDependencies = {}): Promise<Connector> {
  const logger = deps.logger ?? createLogger(config.observability.logLevel);
  const metrics = createMetrics(deps.metricsRegistry ?? new Registry());
  const credential = deps.credential ?? createCredential(config.endpoint.credential);
  const kafka = createKafkaClient(config.kafka, logger);
  const registry = new SchemaRegistry({
    host: config.schemaRegistry.url,
    ...(config.schemaRegistry.username
      ? { auth: { username: config.schemaRegistry.username, password: config.schemaRegistry.password ?? "" } }
      : {}),
  });
  const store = createBatchStore({ input: config.storage.input, output: config.storage.output, credential });

  // Start-up checks: every missing piece is named at once.
  const admin = kafka.admin();
  await admin.connect().catch((error: Error) => {
    throw new StartupError([
      `Kafka at ${config.kafka.brokers.join(",")} cannot be reached: ${error.message}`,
    ]);
  });
  const problems = [
    ...(await ensureTopics(admin, config.kafka)),
    ...(await checkRegistry(config.schemaRegistry)),
    ...(await store.checkAccess().then(
      () => [],
      (error: Error) => [error.message],
    )),
  ];
  if (problems.length > 0) {
    await admin.disconnect();
    throw new StartupError(problems);
  }

  const encoder = await createPredictionEncoder(registry, config.kafka.resultsTopic);
  const publisher = createPublisher({
    kafka,
    resultsTopic: config.kafka.resultsTopic,
    deadLetterTopic: config.kafka.deadLetterTopic,
    encoder,
  });
  await publisher.connect();

  const endpoint = createEndpointClient({
    scoringUri: config.endpoint.scoringUri,
    apiFlavor: config.endpoint.apiFlavor,
    statusUrlTemplate: config.endpoint.statusUrlTemplate,
    ...(config.endpoint.deployment ? { deployment: config.endpoint.deployment } : {}),
    credential,
    tokenScope: config.endpoint.tokenScope,
    maxRetries: config.endpoint.httpMaxRetries,
    retryDelayInMs: config.endpoint.httpRetryDelayMs,
    maxRetryDelayInMs: config.endpoint.httpMaxRetryDelayMs,
    requestTimeoutInMs: config.endpoint.requestTimeoutMs,
    onRetry: (operation) => metrics.httpRetries.inc({ operation }),
    onTokenRenewal: (cause) => metrics.tokenRenewals.inc({ cause }),
  });
  const jobLogger = logger.child({ component: "jobs" });
  const poller = createJobPoller({
    client: endpoint,
    pollIntervalMs: config.jobs.pollIntervalMs,
    onPollError: (jobId, error) =>
      jobLogger.warn({ jobId, err: error }, "job status read failed; polling goes on"),
    onStatus: (jobId, status) => jobLogger.debug({ jobId, status }, "job status"),
  });

  const onBatchEvent = (event: BatchJobEvent) => {
    switch (event.type) {
      case "uploaded":
        metrics.blobUploadDuration.observe(event.durationMs / 1000);
        metrics.batchSizeBytes.observe(event.bytes);
        break;
      case "submitted":
        metrics.jobsSubmitted.inc();
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
      case "results_parsed":
        if (event.malformedRows)
          metrics.predictionRowsRejected.inc({ reason: "malformed" }, event.malformedRows);
        if (event.unmatchedRows)
          metrics.predictionRowsRejected.inc({ reason: "unmatched" }, event.unmatchedRows);
        if (event.duplicateRows)
          metrics.predictionRowsRejected.inc({ reason: "duplicate" }, event.duplicateRows);
        break;
    }
    const level =
      event.type === "submit_failed" || event.type === "resubmitting" || event.type === "step_failed"
        ? "warn"
        : "info";
    const { type, ...fields } = event;
    jobLogger[level](
      { ...fields, ...("outcome" in event ? { outcome: event.outcome } : {}) },
      `batch ${type}`,
    );
  };

  const tracker = createOffsetTracker();
  let consumer: ReturnType<typeof createInputConsumer> | undefined;
  const coordinator = createCoordinator({
    publisher,
    tracker,
    commit: async (entries) => {
      if (consumer) await consumer.commit(entries);
    },
    store,
    metrics,
    logger: logger.child({ component: "coordinator" }),
  });

  let pipeline: Pipeline | undefined;
  // Aborted when shutdown gives up on jobs still running: their batches end without an outcome.
  const abandonBatches = new AbortController();
  const validator = createEventValidator(config.validation);
  const batcher = createBatcher({
    policy: createBatchPolicy(config.batch),
    onSeal: (batch: SealedBatch) => pipeline?.enqueue(batch),
  });
  const batchJobDeps: BatchJobDeps = {
    store,
    endpoint,
    poller,
    apiFlavor: config.endpoint.apiFlavor,
    outputDatastore: config.endpoint.outputDatastore,
    jobTimeoutMs: config.jobs.timeoutMs,
    maxAttempts: config.jobs.maxAttempts,
    submitRetryDelayMs: config.endpoint.httpRetryDelayMs,
    signal: abandonBatches.signal,
    onEvent: onBatchEvent,
  };
  const inputConsumer = createInputConsumer({
    kafka,
    groupId: config.kafka.groupId,
    topic: config.kafka.inputTopic,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    onMessages: (messages) => (pipeline as Pipeline).handleMessages(messages),
    onAssignment: (assigned, lost) => {
      metrics.consumerGroupJoins.inc();
      if (lost.length > 0) coordinator.revoke(config.kafka.inputTopic, lost);
      logger.info({ assigned, lost }, "partitions assigned");
    },
    onCrash: (error, willRestart) => {
      logger.error({ err: error, willRestart }, "consumer crashed");
      if (!willRestart) consumerDead = true;
    },
  });
  consumer = inputConsumer;
  pipeline = createPipeline({
    consumer: inputConsumer,
    decoder: createEventDecoder({ registry, validator, maxMessageBytes: config.validation.maxMessageBytes }),
    batcher,
    coordinator,
    upload: (batch) => uploadBatch(batch, batchJobDeps),
    score: (batch) => scoreBatch(batch, batchJobDeps),
    maxJobsInFlight: config.jobs.maxInFlight,
    maxEventsInFlight: config.flow.maxEventsInFlight,
    maxDeadLetterValueBytes: config.validation.maxMessageBytes,
    metrics,
    logger: logger.child({ component: "pipeline" }),
  });

  let stopping = false;
  let consumerDead = false;
  const health = await startHealthServer({
    port: config.observability.port,
    registry: metrics.registry,
    // Not alive once the consumer has crashed for good (kafkajs will not restart it): let Kubernetes restart us.
    isAlive: () => !consumerDead,
    isReady: () => !stopping && inputConsumer.isJoined(),
  });

  const lagTimer = setInterval(
    () => void reportLag(admin, config, inputConsumer.assignedPartitions(), metrics, logger),
    deps.lagIntervalMs ?? 15_000,
  );
  lagTimer.unref();

  await inputConsumer.start();
  logger.info(
    {
      inputTopic: config.kafka.inputTopic,
      groupId: config.kafka.groupId,
      httpPort: health.port,
      apiFlavor: config.endpoint.apiFlavor,
    },
    "forecast-connector started",
  );

  const runningPipeline = pipeline;
  return {
    metrics,
    httpPort: health.port,
    pipeline: runningPipeline,
    async stop() {
      if (stopping) return;
      stopping = true;
      logger.info({ jobsInFlight: runningPipeline.jobsInFlight() }, "stopping: no more fetching");
      inputConsumer.pause();
      // The open batch is never submitted: its events are uncommitted and will be consumed again.
      runningPipeline.close();
      batcher.close();
      const drained = await Promise.race([
        runningPipeline.drain().then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), config.shutdownTimeoutMs).unref()),
      ]);
      if (!drained) {
        logger.warn(
          { jobsInFlight: runningPipeline.jobsInFlight() },
          "shutdown timeout: leaving jobs unsettled",
        );
      }
      // Whatever is still running ends now, without an outcome: its events stay uncommitted.
      abandonBatches.abort();
      poller.close();
      // Commit what is settled before the publish retries stop and the consumer leaves its group.
      await coordinator.flushCommits();
      coordinator.stop();
      clearInterval(lagTimer);
      await inputConsumer.stop().catch(() => {});
      await publisher.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
      await health.close();
      logger.info("stopped");
    },
  };
}

/** consumer_lag_messages for the partitions this member owns: log end offset minus committed offset. */
async function reportLag(
  admin: Admin,
  config: Config,
  assigned: readonly number[],
  metrics: Metrics,
  logger: Logger,
): Promise<void> {
  try {
    const [ends, committed] = await Promise.all([
      admin.fetchTopicOffsets(config.kafka.inputTopic),
      admin.fetchOffsets({ groupId: config.kafka.groupId, topics: [config.kafka.inputTopic] }),
    ]);
    const committedBy = new Map(committed[0]?.partitions.map((p) => [p.partition, BigInt(p.offset)]) ?? []);
    metrics.consumerLag.reset();
    for (const end of ends) {
      if (!assigned.includes(end.partition)) continue;
      const position = committedBy.get(end.partition) ?? -1n;
      const start = position < 0n ? BigInt(end.low) : position;
      metrics.consumerLag.set({ partition: String(end.partition) }, Number(BigInt(end.high) - start));
    }
  } catch (error) {
    // Lag is best effort: a failed read leaves the last values.
    logger.debug({ err: error }, "consumer lag not refreshed");
  }
}
