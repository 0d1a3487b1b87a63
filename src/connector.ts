/**
 * The one place the connector is wired: every stage built from its slice of the configuration, in the
 * pipeline's order, each reporting through the instrumentation (docs/architecture.md, "Stages").
 */
import type { TokenCredential } from "@azure/core-auth";
import type { Admin } from "kafkajs";
import { Registry } from "prom-client";
import { type BatchStore, createBatchStore } from "./azure/blobStore.ts";
import { createCredential, credentialProblems } from "./azure/credential.ts";
import { createEndpointClient } from "./azure/endpointClient.ts";
import { createJobCanceller } from "./azure/jobCanceller.ts";
import { createJobPoller } from "./azure/jobPoller.ts";
import { createBatchPolicy } from "./batcher/index.ts";
import type { Config } from "./config/index.ts";
import { createEventDecoder } from "./consumer/decode.ts";
import { createInputConsumer } from "./consumer/inputConsumer.ts";
import { createEventValidator } from "./consumer/validate.ts";
import { abortedTransactionsOrdered } from "./kafka/abortedTransactionsOrder.ts";
import { createKafkaClient } from "./kafka/client.ts";
import { checkSchemaRegistry, createSchemaRegistry } from "./kafka/schemaRegistry.ts";
import { ensureLedgerTopic, ensureTopics, maxRecordBytes } from "./kafka/topics.ts";
import { createLedgerReader } from "./ledger/reader.ts";
import { startLagReporter } from "./observability/consumerLag.ts";
import { startHealthServer } from "./observability/healthServer.ts";
import { createInstrumentation } from "./observability/instrumentation.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { createMetrics, type Metrics } from "./observability/metrics.ts";
import { createBatchJobRunner } from "./pipeline/batchJob.ts";
import { createCoordinator } from "./pipeline/coordinator.ts";
import { createOffsetTracker } from "./pipeline/offsetTracker.ts";
import { createPipeline, type Pipeline } from "./pipeline/pipeline.ts";
import { DEFAULT_DEAD_LETTER_MAX_BYTES, deadLetterMessage } from "./producer/deadLetter.ts";
import { createAtLeastOnceWriter, createTransactionalWriter } from "./producer/outcomeWriter.ts";
import { createPredictionEncoder } from "./producer/predictionRecord.ts";
import { createPublisher } from "./producer/publisher.ts";
import { createRetryPolicy } from "./retry.ts";

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
  /** Stops fetching, lets quick work finish within the shutdown timeout, commits what is settled, disconnects. */
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

/** Start-up checks: Kafka, the topics, the registry, the Entra credential and both containers; every missing piece named at once. */
async function checkServices(
  admin: Admin,
  config: Config,
  store: BatchStore,
  credential: TokenCredential,
): Promise<void> {
  await admin.connect().catch((error: Error) => {
    throw new StartupError([
      `Kafka at ${config.kafka.brokers.join(",")}: connection failed: ${error.message}`,
    ]);
  });
  const topics = [config.consumer.topic, config.producer.resultsTopic, config.producer.deadLetterTopic];
  const problems = [
    ...(await ensureTopics(admin, topics, config.topics)),
    ...(await ensureLedgerTopic(admin, config.delivery.ledgerTopic, config.consumer.topic, config.topics)),
    ...(await checkSchemaRegistry(config.schemaRegistry)),
    ...(await credentialProblems(credential, config.endpoint.tokenScope)),
    ...(await store.checkAccess().then(
      () => [],
      (error: Error) => [error.message],
    )),
  ];
  if (problems.length > 0) {
    await admin.disconnect();
    throw new StartupError(problems);
  }
}

/** Builds every stage from the configuration and starts consuming. */
export async function startConnector(config: Config, deps: ConnectorDependencies = {}): Promise<Connector> {
  // Observability first: every stage reports through it.
  const logger = deps.logger ?? createLogger(config.observability.logLevel);
  const metrics = createMetrics(deps.metricsRegistry ?? new Registry());
  const instrument = createInstrumentation(metrics, logger);
  if (!abortedTransactionsOrdered()) {
    logger.warn("kafkajs loaded before its read_committed fix (src/kafka/abortedTransactionsOrder.ts)");
  }

  // Clients of the services outside.
  const credential = deps.credential ?? createCredential(config.credential);
  const kafka = createKafkaClient(config.kafka, logger);
  const schemaRegistry = createSchemaRegistry(config.schemaRegistry);
  const store = createBatchStore({ input: config.inputStorage, output: config.outputStorage, credential });
  const admin = kafka.admin();
  await checkServices(admin, config, store, credential);

  // The pipeline's stages, in its order: consume -> decode -> batch -> job -> settle -> publish.
  const retry = createRetryPolicy(config.retry);
  const consumer = createInputConsumer({ kafka, ...config.consumer });
  const decoder = createEventDecoder({
    schemaRegistry,
    validator: createEventValidator(config.validation),
    maxMessageBytes: config.validation.maxMessageBytes,
  });
  const { subscriptionId, resourceGroup, workspace } = config.arm;
  // The rules (src/config/rules.ts) let the three ARM names through all together or not at all.
  const arm =
    subscriptionId && resourceGroup && workspace
      ? { ...config.arm, subscriptionId, resourceGroup, workspace }
      : undefined;
  const endpoint = createEndpointClient({
    ...config.endpoint,
    ...(arm ? { arm } : {}),
    credential,
    onEvent: instrument.endpoint,
  });
  const poller = createJobPoller({ client: endpoint, ...config.poller, onEvent: instrument.poller });
  const canceller =
    arm?.cancelJobs === true
      ? createJobCanceller({
          client: endpoint,
          timeoutMs: arm.cancelTimeoutMs,
          onEvent: instrument.canceller,
        })
      : undefined;
  const jobs = createBatchJobRunner({
    store,
    endpoint,
    poller,
    apiFlavor: config.endpoint.apiFlavor,
    jobInput: config.endpoint,
    ...(canceller ? { cancelJob: canceller.cancel } : {}),
    retry,
    ...config.jobs,
    onEvent: instrument.batchJob,
  });
  const encoder = await createPredictionEncoder(schemaRegistry, config.producer.resultsTopic);
  const deadLetterMaxBytes =
    (await maxRecordBytes(admin, config.producer.deadLetterTopic)) ?? DEFAULT_DEAD_LETTER_MAX_BYTES;
  // At least once: one idempotent producer for everything. Exactly once: one transactional producer per
  // input partition, created on assignment (src/producer/outcomeWriter.ts).
  const publisher = createPublisher({ kafka, ...config.producer, encoder, deadLetterMaxBytes });
  await publisher.connect();
  const ledgerReader = createLedgerReader({
    kafka,
    admin,
    topic: config.delivery.ledgerTopic,
    groupId: config.consumer.groupId,
    onUnreadable: (partition, offset) =>
      logger.warn({ partition, offset }, "ledger record of an unknown version ignored"),
  });
  await ledgerReader.start();
  const exactlyOnce = config.delivery.guarantee === "exactly-once";
  const coordinator = createCoordinator({
    inputTopic: config.consumer.topic,
    ledgerTopic: config.delivery.ledgerTopic,
    resultsTopic: config.producer.resultsTopic,
    tracker: createOffsetTracker(),
    createWriter: (partition) =>
      exactlyOnce
        ? createTransactionalWriter({
            kafka,
            transactionalId: `${config.consumer.groupId}.${config.consumer.topic}.${partition}`,
            groupId: config.consumer.groupId,
            inputTopic: config.consumer.topic,
            partition,
            ledgerTopic: config.delivery.ledgerTopic,
          })
        : createAtLeastOnceWriter({
            send: (topicMessages) => publisher.send(topicMessages),
            commit: (offset) => consumer.commit([{ topic: config.consumer.topic, partition, offset }]),
          }),
    readLedger: (partition) => ledgerReader.entriesOf(partition),
    readCommittedOffset: async (partition) => {
      const [topic] = await admin.fetchOffsets({
        groupId: config.consumer.groupId,
        topics: [config.consumer.topic],
      });
      const offset = topic?.partitions.find((p) => p.partition === partition)?.offset;
      return offset === undefined || BigInt(offset) < 0n ? undefined : offset;
    },
    seek: (partition, offset) => consumer.seek(partition, offset),
    tombstoneAfterCommit: !exactlyOnce,
    encodePrediction: (record) => encoder.encode(record),
    deadLetterMessages: (letters) => {
      const now = new Date();
      return {
        topic: config.producer.deadLetterTopic,
        messages: letters.map((letter) => deadLetterMessage(letter, now, deadLetterMaxBytes)),
      };
    },
    store,
    retry,
    onEvent: instrument.coordinator,
  });
  const pipeline = createPipeline({
    consumer,
    decoder,
    batchPolicy: createBatchPolicy(config.batch),
    coordinator,
    jobs,
    retry,
    ...config.flow,
    maxDeadLetterValueBytes: config.validation.maxMessageBytes,
    onEvent: instrument.pipeline,
  });

  // Operations: probes and lag.
  let stopping = false;
  let consumerDead = false;
  const health = await startHealthServer({
    port: config.observability.port,
    registry: metrics.registry,
    // Not alive once the consumer has crashed for good (kafkajs will not restart it): let Kubernetes restart us.
    isAlive: () => !consumerDead,
    // Not ready when work is pending and nothing has moved for the progress timeout: something is stuck.
    // Nor when a partition still assigned here has been unusable (fenced, failed to load) that long.
    isReady: () => {
      const now = Date.now();
      const timeout = config.observability.progressTimeoutMs;
      const unusableSince = coordinator.unusableSinceMs();
      return (
        !stopping &&
        consumer.isJoined() &&
        (unusableSince === undefined || now - unusableSince < timeout) &&
        (pipeline.inFlight().events === 0 || now - instrument.lastProgressMs() < timeout)
      );
    },
  });
  const stopLagReporter = startLagReporter({
    admin,
    groupId: config.consumer.groupId,
    topic: config.consumer.topic,
    assignedPartitions: () => consumer.assignedPartitions(),
    ...(deps.lagIntervalMs !== undefined ? { intervalMs: deps.lagIntervalMs } : {}),
    metrics,
    logger,
  });

  try {
    await consumer.start({
      onMessages: (messages) => pipeline.handleMessages(messages),
      onAssignment: (assigned, added, lost) => {
        instrument.consumer({ type: "group_joined", assigned, added, lost });
        pipeline.revoke(lost);
        void pipeline.assign(added);
      },
      onCrash: (error, willRestart) => {
        instrument.consumer({ type: "crashed", error, willRestart });
        if (!willRestart) consumerDead = true;
      },
    });
  } catch (error) {
    // A process that cannot consume must not look alive: stop what started, and fail the start.
    stopLagReporter();
    await ledgerReader.stop().catch(() => {});
    await publisher.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    await health.close();
    throw new StartupError([`the Kafka consumer could not start: ${(error as Error).message}`]);
  }
  logger.info(
    {
      inputTopic: config.consumer.topic,
      groupId: config.consumer.groupId,
      httpPort: health.port,
      apiFlavor: config.endpoint.apiFlavor,
    },
    "forecast-connector started",
  );

  return {
    metrics,
    httpPort: health.port,
    pipeline,
    async stop() {
      if (stopping) return;
      stopping = true;
      logger.info(pipeline.inFlight(), "stopping: no more fetching, nothing new submitted");
      consumer.pause();
      // Batches not yet publishing stop now; their jobs run on and the next owner resumes them (ledger).
      pipeline.close();
      const drained = await Promise.race([
        pipeline.drain().then(() => true),
        new Promise<false>((resolve) =>
          setTimeout(() => resolve(false), config.lifecycle.shutdownTimeoutMs).unref(),
        ),
      ]);
      if (!drained) logger.warn(pipeline.inFlight(), "shutdown timeout: leaving outcomes unpublished");
      // Whatever is still running ends now, without an outcome: its events stay uncommitted.
      pipeline.abandon();
      poller.close();
      // Cancel requests still in flight are dropped and none starts from here on: the jobs the next owners
      // resume must run on, and a timed-out job left running only costs compute.
      canceller?.close();
      coordinator.stop();
      stopLagReporter();
      // Writers closed before leaving the group: no transaction is left open for the next owner to wait on.
      await coordinator.close().catch(() => {});
      // Leaving the group hands the partitions over at once (no wait for the session timeout).
      await consumer.stop().catch(() => {});
      await ledgerReader.stop().catch(() => {});
      await publisher.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
      await health.close();
      logger.info("stopped");
    },
  };
}
