/**
 * The stages that talk to a service, each against the local stack: blob upload (Azurite), Avro encoding of
 * predictions (the schema registry, once per schema), produce (Kafka, acks=all). Built as the connector builds
 * them (src/connector.ts): from a Config loaded out of FC_* variables, by the stages' exported factories.
 *   node bench/stagesIo.ts     (BENCH_STAGE_RECORDS=100000 by default)
 */
import { BlobServiceClient } from "@azure/storage-blob";
import { createBatchStore } from "../src/azure/blobStore.ts";
import { createCredential } from "../src/azure/credential.ts";
import { serializeBatch } from "../src/batcher/index.ts";
import { loadConfig } from "../src/config/index.ts";
import { createKafkaClient } from "../src/kafka/client.ts";
import { createSchemaRegistry } from "../src/kafka/schemaRegistry.ts";
import { createLogger } from "../src/observability/logger.ts";
import { createPredictionEncoder, type PredictionRecord } from "../src/producer/predictionRecord.ts";
import { createPublisher } from "../src/producer/publisher.ts";
import type { FeatureRow } from "../src/types.ts";
import { localConnectorEnv } from "../stack/src/connectorEnv.ts";
import { killProcessGroupNow } from "../stack/src/processes.ts";
import { createTopics, kafkaOf, PARTITIONS } from "./e2e/input.ts";
import {
  banner,
  cpuRate,
  MiB,
  num,
  printTable,
  prng,
  rate,
  realisticFeatures,
  spread,
  storeId,
  type Timed,
  timedFigures,
  timeRoundsAsync,
  writeFigures,
} from "./lib.ts";
import { benchStack } from "./stack.ts";

const RECORDS = Number(process.env.BENCH_STAGE_RECORDS || 100_000);

banner("stages on the local stack: blob upload, Avro encoding, produce");
const stack = await benchStack();
process.once("exit", () => {
  for (const pid of stack.ownPids) killProcessGroupNow(pid);
});
const id = `bench-io-${Date.now().toString(36)}`;
const topics = { input: `${id}-in`, results: `${id}-out`, deadLetter: `${id}-dlq` };
const inputContainer = `${id}-in`;
try {
  const config = loadConfig({
    ...localConnectorEnv({
      endpoints: stack.endpoints,
      groupId: `${id}-group`,
      topics,
      inputContainer,
      scoringUri: "http://127.0.0.1:9/jobs",
    }),
    FC_LOG_LEVEL: "error",
  });
  await createTopics(kafkaOf(stack.endpoints, id), [
    { name: topics.results, partitions: PARTITIONS },
    { name: topics.deadLetter, partitions: 1 },
  ]);
  await BlobServiceClient.fromConnectionString(stack.endpoints.blobConnectionString)
    .getContainerClient(inputContainer)
    .create();
  const random = prng(41);
  const rows: Array<[string, Timed, string]> = [];

  // Blob upload: a 10,000-event batch as one file (a wide input), and as 200 files of 50 (50 stores).
  const store = createBatchStore({
    input: config.inputStorage,
    output: config.outputStorage,
    credential: createCredential(config.credential),
  });
  const batchRows: FeatureRow[] = Array.from({ length: 10_000 }, (_, i) => ({
    store_id: storeId(i, 10_000),
    features: realisticFeatures(random),
  }));
  let uploads = 0;
  const oneFile = [{ fileName: "f-0.json", body: serializeBatch(batchRows) }];
  const manyFiles = Array.from({ length: 200 }, (_, k) => ({
    fileName: `f-${k}.json`,
    body: serializeBatch(batchRows.slice(k * 50, (k + 1) * 50)),
  }));
  for (const [name, files] of [
    ["blob upload, 1 file of 10,000 rows per batch", oneFile],
    ["blob upload, 200 files of 50 rows per batch", manyFiles],
  ] as const) {
    const mib = files.reduce((s, f) => s + f.body.length, 0) / MiB;
    const t = await timeRoundsAsync(10_000, async () => {
      await store.uploadBatch(`b-${uploads++}`, files);
    });
    rows.push([name, t, `${num(mib, 2)} MiB per batch, ${num((t.opsPerSec / 10_000) * mib, 1)} MiB/s`]);
  }

  // Avro encoding, one record at a time as the publish stage asks for it.
  const registry = createSchemaRegistry(config.schemaRegistry);
  const encoder = await createPredictionEncoder(registry, topics.results);
  const now = Date.now();
  const predictions: PredictionRecord[] = Array.from({ length: RECORDS }, (_, i) => ({
    store_id: storeId(i),
    prediction: random() * 500,
    file_name: "b-0m3xk2a1q-5f3c9d2e8a71-0.json",
    job_id: "batchjob-5f3c9d2e-8a71-4c1e-9b2d-0123456789ab",
    batch_id: "b-0m3xk2a1q-5f3c9d2e8a71",
    source_topic: topics.input,
    source_partition: i % PARTITIONS,
    source_offset: i,
    source_timestamp: now,
    predicted_at: now,
  }));
  const encoded: Buffer[] = [];
  const encodeTimed = await timeRoundsAsync(RECORDS, async () => {
    encoded.length = 0;
    for (const p of predictions) encoded.push(await encoder.encode(p));
  });
  rows.push(["Avro encoding (encoder.encode)", encodeTimed, `${num(encoded[0]?.length ?? 0)} B per record`]);

  // Produce: the publisher's send of encoded predictions, acks=all, idempotent.
  const publisher = createPublisher({
    kafka: createKafkaClient(config.kafka, createLogger("error")),
    ...config.producer,
    encoder,
  });
  await publisher.connect();
  try {
    const messages = predictions.map((p, i) => ({ key: p.store_id, value: encoded[i] as Buffer }));
    const produceTimed = await timeRoundsAsync(
      RECORDS,
      async () => {
        await publisher.send([{ topic: topics.results, messages }]);
      },
      { rounds: 3 },
    );
    rows.push(["produce (publisher.send, acks=all)", produceTimed, `${num(RECORDS)} records per round`]);
  } finally {
    await publisher.disconnect();
  }

  printTable(
    `stages against the local stack (median of rounds; the stack shares the cores)`,
    ["stage", "records/s", "range", "per CPU-s of this process", "per record", "note"],
    rows.map(([name, t, note]) => [
      name,
      rate(t),
      spread(t),
      cpuRate(t),
      `${num(t.nsPerOp / 1000, 2)} us`,
      note,
    ]),
  );
  writeFigures("stagesIo", {
    records: RECORDS,
    cases: Object.fromEntries(rows.map(([name, t]) => [name, timedFigures(t)])),
  });
} finally {
  await stack.stop();
}
