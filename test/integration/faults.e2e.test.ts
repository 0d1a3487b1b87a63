/**
 * The connector end to end on the real stack with the emulator's faults switched on: throttling, server errors,
 * dropped connections, lost submit responses, failed and stuck jobs, missing and malformed rows, every output
 * shape, and the v2 api flavor. Each scenario checks real outcomes, not just survival: every event is accounted
 * for exactly once, as a prediction equal to the formula or as a dead letter with the right reason; offsets are
 * committed to the end; the metrics add up; and the emulator saw no duplicate job for a retried request.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { EmulatorFaults, JobSnapshot, OutputShape } from "../../emulator/index.ts";
import {
  type DeadLetterRecord,
  expectedPrediction,
  features,
  type HarnessOptions,
  type PublishedPrediction,
  startHarness,
} from "../helpers/connectorHarness.ts";

type Harness = Awaited<ReturnType<typeof startHarness>>;

const PARTITIONS = 3;

interface Row {
  readonly store_id: string;
  readonly features: number[];
}

interface SentEvent {
  /** `partition/offset`: the event's identity everywhere below. */
  readonly id: string;
  readonly partition: number;
  readonly offset: string;
  readonly row: Row;
  /** The batch file's rendering of the row (a dead letter's value): the two columns, in this order. */
  readonly json: string;
}

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function start(options: HarnessOptions): Promise<Harness> {
  harness = await startHarness({ partitions: PARTITIONS, ...options });
  return harness;
}

/**
 * How store ids repeat. "repeating": 7 stores, so a batch holds several events of one store (spread over
 * several input files). "unique": one event per store, so a batch is a single file.
 */
type Stores = "repeating" | "unique";

/**
 * `count` valid events spread round-robin over the partitions. Each feature vector is unique (its first value is
 * the event's number), so a batch file's row can be traced back to its event.
 */
async function send(h: Harness, count: number, options: { first?: number; stores?: Stores } = {}) {
  const first = options.first ?? 0;
  const rows = Array.from({ length: count }, (_, i): Row => {
    const n = first + i;
    const store_id = options.stores === "unique" ? `ST_${n}` : `ST_${n % 7}`;
    return { store_id, features: [n / 100, ...features(n, 12)] };
  });
  const placed = await h.produceTracked(
    rows.map((row, i) => ({ key: row.store_id, value: JSON.stringify(row), partition: i % PARTITIONS })),
  );
  return rows.map((row, i): SentEvent => {
    const { partition, offset } = placed[i] as { partition: number; offset: string };
    return {
      id: `${partition}/${offset}`,
      partition,
      offset,
      row,
      json: JSON.stringify({ store_id: row.store_id, features: row.features }),
    };
  });
}

/** The batch a job scored: its input folder is the batch's own, named after the batch id. */
function batchOf(job: JobSnapshot): string {
  return job.inputUri.replace(/\/+$/, "").split("/").pop() as string;
}

interface Outcomes {
  readonly predictions: PublishedPrediction[];
  readonly letters: DeadLetterRecord[];
  readonly jobs: JobSnapshot[];
  readonly commits: Awaited<ReturnType<Harness["waitForCommitsAtEnd"]>>;
  readonly metric: (name: string, labels?: Record<string, string>) => number;
}

const METRICS = [
  "events_consumed_total",
  "predictions_published_total",
  "dead_letters_total",
  "events_in_flight",
  "batches_flushed_total",
  "jobs_submitted_total",
  "jobs_completed_total",
  "jobs_failed_total",
  "jobs_retried_total",
  "endpoint_http_retries_total",
  "prediction_rows_rejected_total",
];

/**
 * Waits until every partition is committed to its end (so every event has an acknowledged outcome), reads the
 * metrics, stops the connector (nothing more can be published), then reads both output topics to their ends.
 */
async function settle(h: Harness): Promise<Outcomes> {
  const commits = await h.waitForCommitsAtEnd(60_000);
  const registry = h.connector.metrics.registry;
  const values = new Map<string, Array<{ labels: Record<string, unknown>; value: number }>>();
  for (const name of METRICS) {
    const full = `forecast_connector_${name}`;
    values.set(full, (await registry.getSingleMetric(full)?.get())?.values ?? []);
  }
  const jobs = h.emulator.jobs();
  await h.stopConnector();
  const [predictions, letters] = await Promise.all([h.readAllPredictions(), h.readAllDeadLetters()]);
  return {
    predictions,
    letters,
    jobs,
    commits,
    metric(name, labels = {}) {
      const found = values.get(`forecast_connector_${name}`);
      if (found === undefined) throw new Error(`metric ${name} not read`);
      return found
        .filter((v) => Object.entries(labels).every(([k, value]) => String(v.labels[k]) === value))
        .reduce((sum, v) => sum + v.value, 0);
    },
  };
}

/**
 * The exact accounting: every sent event is either predicted (once, with the formula's value, from a Completed job
 * of its own batch) or dead-lettered (once, with the expected reason and its row read back from the batch file);
 * nothing else is on either topic; offsets are committed to the end; the metrics agree.
 */
function expectAccounted(out: Outcomes, sent: readonly SentEvent[], deadReasons = new Map<string, string>()) {
  const byId = new Map(sent.map((e) => [e.id, e]));
  expect(byId.size).toBe(sent.length);

  // Offsets: every partition committed to its end, and the ends are exactly what was sent.
  for (const row of out.commits) {
    expect(row.committed, `partition ${row.partition}`).toBe(row.end);
    expect(Number(row.end)).toBe(sent.filter((e) => e.partition === row.partition).length);
  }

  const completedJobs = new Map(out.jobs.filter((j) => j.status === "Completed").map((j) => [j.id, j]));
  const predicted = new Set<string>();
  for (const p of out.predictions) {
    const id = `${p.value.source_partition}/${p.value.source_offset}`;
    const event = byId.get(id);
    expect(event, `prediction for unknown event ${id}`).toBeDefined();
    expect(predicted.has(id), `duplicate prediction for ${id}`).toBe(false);
    predicted.add(id);
    expect(deadReasons.has(id), `${id} predicted but expected dead-lettered`).toBe(false);
    const row = (event as SentEvent).row;
    expect(p.key).toBe(row.store_id);
    expect(p.value.store_id).toBe(row.store_id);
    expect(p.value.prediction, `prediction of ${id}`).toBe(expectedPrediction(row.features));
    const batchId = String(p.value.batch_id);
    // A batch is laid out as files in which each store appears once: <batchId>-<k>.json.
    expect(String(p.value.file_name)).toMatch(new RegExp(`^${batchId}-\\d+\\.json$`));
    const job = completedJobs.get(String(p.value.job_id));
    expect(job, `job ${String(p.value.job_id)} of ${id} is a Completed emulator job`).toBeDefined();
    expect(batchOf(job as JobSnapshot)).toBe(batchId);
  }

  const lettered = new Map<string, DeadLetterRecord>();
  for (const letter of out.letters) {
    const id = `${letter.headers["dlq.source.partition"]}/${letter.headers["dlq.source.offset"]}`;
    const event = byId.get(id);
    expect(event, `dead letter for unknown event ${id}`).toBeDefined();
    expect(lettered.has(id), `duplicate dead letter for ${id}`).toBe(false);
    lettered.set(id, letter);
    expect(letter.headers["dlq.reason"], `reason of ${id}`).toBe(deadReasons.get(id));
    expect(letter.key).toBe((event as SentEvent).row.store_id);
    expect(letter.value?.toString()).toBe((event as SentEvent).json);
    expect(letter.headers["dlq.batch.id"]).toMatch(/^b-/);
    expect(letter.headers["dlq.job.id"]).toMatch(/^batchjob-/);
    const job = out.jobs.find((j) => j.id === letter.headers["dlq.job.id"]);
    expect(job, `dlq.job.id of ${id} names an emulator job`).toBeDefined();
    expect(batchOf(job as JobSnapshot)).toBe(letter.headers["dlq.batch.id"]);
  }
  expect([...lettered.keys()].sort()).toEqual([...deadReasons.keys()].sort());
  // Every event in exactly one bucket.
  expect(predicted.size + lettered.size).toBe(sent.length);

  expect(out.metric("events_consumed_total")).toBe(sent.length);
  expect(out.metric("predictions_published_total")).toBe(predicted.size);
  expect(out.metric("dead_letters_total")).toBe(lettered.size);
  expect(out.metric("events_in_flight")).toBe(0);
  for (const reason of new Set(deadReasons.values())) {
    expect(out.metric("dead_letters_total", { reason })).toBe(
      [...deadReasons.values()].filter((r) => r === reason).length,
    );
  }
}

/** Jobs grouped by the batch they scored, oldest first. */
function jobsByBatch(jobs: readonly JobSnapshot[]): Map<string, JobSnapshot[]> {
  const out = new Map<string, JobSnapshot[]>();
  for (const job of [...jobs].sort((a, b) => a.createdAtMs - b.createdAtMs)) {
    const list = out.get(batchOf(job)) ?? [];
    list.push(job);
    out.set(batchOf(job), list);
  }
  return out;
}

/** With only request faults (and no failed job) there is one job per batch: retried POSTs never made a second. */
function expectOneJobPerBatch(out: Outcomes) {
  const batches = out.metric("batches_flushed_total");
  expect(batches).toBeGreaterThan(1);
  expect(out.jobs).toHaveLength(batches);
  expect(jobsByBatch(out.jobs).size).toBe(batches);
  expect(out.metric("jobs_submitted_total")).toBe(batches);
  expect(out.metric("jobs_completed_total")).toBe(batches);
  expect(out.metric("jobs_retried_total")).toBe(0);
  expect(out.jobs.every((j) => j.status === "Completed")).toBe(true);
}

/**
 * The events whose rows the emulator left out with missingRows.every: rows every, 2*every, ... of each job's input
 * file, traced back to their events through the batch file in blob storage.
 */
async function droppedEvents(
  h: Harness,
  jobs: readonly JobSnapshot[],
  sent: readonly SentEvent[],
  every: number,
): Promise<Map<string, string>> {
  const byJson = new Map(sent.map((e) => [e.json, e]));
  const dropped = new Map<string, string>();
  for (const job of jobs) {
    expect(job.status).toBe("Completed");
    const rows = await h.batchFileRows(job.inputUri);
    expect(job.rowsRead).toBe(rows.length);
    expect(job.rowsWritten).toBe(rows.length - Math.floor(rows.length / every));
    rows.forEach((row, i) => {
      if ((i + 1) % every !== 0) return;
      const event = byJson.get(JSON.stringify({ store_id: row.store_id, features: row.features }));
      expect(event, "batch row traced to its event").toBeDefined();
      dropped.set((event as SentEvent).id, "missing_prediction");
    });
  }
  return dropped;
}

/**
 * The accounting without attribution: every event exactly once on one of the two topics, of its own store,
 * committed, counted. Returns the predicted events whose value is not their own, and the dead-lettered ones.
 */
function expectEveryEventOnce(out: Outcomes, sent: readonly SentEvent[]) {
  const byId = new Map(sent.map((e) => [e.id, e]));
  for (const row of out.commits) expect(row.committed).toBe(row.end);
  const ids = [
    ...out.predictions.map((p) => `${p.value.source_partition}/${p.value.source_offset}`),
    ...out.letters.map((l) => `${l.headers["dlq.source.partition"]}/${l.headers["dlq.source.offset"]}`),
  ];
  expect(ids.sort()).toEqual([...byId.keys()].sort());
  const wrong: string[] = [];
  for (const p of out.predictions) {
    const event = byId.get(`${p.value.source_partition}/${p.value.source_offset}`) as SentEvent;
    expect(p.value.store_id).toBe(event.row.store_id);
    if (p.value.prediction !== expectedPrediction(event.row.features)) wrong.push(event.id);
  }
  expect(out.metric("events_consumed_total")).toBe(sent.length);
  expect(out.metric("predictions_published_total")).toBe(out.predictions.length);
  expect(out.metric("dead_letters_total")).toBe(out.letters.length);
  expect(out.metric("events_in_flight")).toBe(0);
  const lettered = new Set(
    out.letters.map((l) => `${l.headers["dlq.source.partition"]}/${l.headers["dlq.source.offset"]}`),
  );
  return { wrong, lettered };
}

describe("forecast-connector under endpoint faults (Kafka, schema registry, Azurite, emulator)", () => {
  it("a 429 storm, 500s and dropped connections on submit and status: nothing lost, no duplicate job", async () => {
    const h = await start({
      faults: {
        throttle: { rate: 0.5, retryAfterSeconds: 0 },
        serverError: { rate: 0.2 },
        dropConnection: { rate: 0.1 },
      },
      // One request succeeds with probability 0.36: enough retries that a submission always gets through.
      env: { FC_HTTP_MAX_RETRIES: "20" },
    });
    const sent = await send(h, 60);
    const out = await settle(h);
    expectAccounted(out, sent);
    expectOneJobPerBatch(out);
    // The faults never reached a job: each job was created by exactly one POST.
    expect(out.jobs.map((j) => j.submitCount)).toEqual(out.jobs.map(() => 1));
    expect(out.metric("endpoint_http_retries_total", { operation: "submit" })).toBeGreaterThan(0);
    expect(out.metric("endpoint_http_retries_total", { operation: "status" })).toBeGreaterThan(0);
  });

  it("a lost submit response: the retried POST finds the job the first one created", async () => {
    const h = await start({ faults: { loseSubmitResponse: { count: 2 } } });
    const sent = await send(h, 60);
    const out = await settle(h);
    expectAccounted(out, sent);
    expectOneJobPerBatch(out);
    // Two responses were lost: two POSTs were repeats that the emulator mapped to existing jobs.
    expect(out.jobs.reduce((sum, j) => sum + j.submitCount, 0)).toBe(out.jobs.length + 2);
    expect(out.metric("endpoint_http_retries_total", { operation: "submit" })).toBe(2);
  });

  it("submit responses lost more often than the HTTP retries allow: the repeated submission finds the same job", async () => {
    // Two tries per request, three lost responses: the first submission fails after creating its job, and the
    // batch's next submission (same repeatability id) must be answered with that job, not a second one.
    const h = await start({
      faults: { loseSubmitResponse: { count: 3 } },
      env: { FC_HTTP_MAX_RETRIES: "1" },
    });
    const sent = await send(h, 40);
    const out = await settle(h);
    expectAccounted(out, sent);
    expectOneJobPerBatch(out);
    expect(out.jobs.reduce((sum, j) => sum + j.submitCount, 0)).toBe(out.jobs.length + 3);
    expect(out.metric("jobs_failed_total", { reason: "submit_error" })).toBeGreaterThan(0);
  });

  it("a Failed job is resubmitted and all its events predicted", async () => {
    const h = await start({ faults: { failJobs: { count: 1 } }, env: { FC_JOB_MAX_ATTEMPTS: "2" } });
    const sent = await send(h, 60);
    const out = await settle(h);
    expectAccounted(out, sent);

    const batches = out.metric("batches_flushed_total");
    expect(out.jobs).toHaveLength(batches + 1);
    const failed = out.jobs.filter((j) => j.status === "Failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]?.faults.outcome).toBe("fail");
    // The failed job's batch was scored by a second, Completed job created after it, with a new repeatability id.
    const retried = jobsByBatch(out.jobs).get(batchOf(failed[0] as JobSnapshot)) as JobSnapshot[];
    expect(retried.map((j) => j.status)).toEqual(["Failed", "Completed"]);
    expect(retried[1]?.repeatabilityId).not.toBe(retried[0]?.repeatabilityId);
    expect(out.predictions.some((p) => p.value.job_id === retried[1]?.id)).toBe(true);
    expect(out.predictions.some((p) => p.value.job_id === retried[0]?.id)).toBe(false);
    expect(out.jobs.every((j) => j.submitCount === 1)).toBe(true);

    expect(out.metric("jobs_retried_total")).toBe(1);
    expect(out.metric("jobs_failed_total", { reason: "failed" })).toBe(1);
    expect(out.metric("jobs_submitted_total")).toBe(batches + 1);
    expect(out.metric("jobs_completed_total")).toBe(batches);
  });

  it("jobs that fail on every attempt: their events are dead-lettered as job_failed, later ones predicted", async () => {
    const h = await start({ faults: { failJobs: { rate: 1 } }, env: { FC_JOB_MAX_ATTEMPTS: "2" } });
    const doomed = await send(h, 30);
    // Every job of these batches is created failing; only once all are settled does the endpoint recover.
    const first = await h.waitForCommitsAtEnd(60_000);
    for (const row of first) expect(row.committed).toBe(row.end);
    const doomedBatches = new Set(h.emulator.jobs().map(batchOf));
    h.emulator.setFaults({});
    const saved = await send(h, 30, { first: 30 });
    const out = await settle(h);

    expectAccounted(out, [...doomed, ...saved], new Map(doomed.map((e) => [e.id, "job_failed"])));
    const byBatch = jobsByBatch(out.jobs);
    for (const batchId of doomedBatches) {
      const jobs = byBatch.get(batchId) as JobSnapshot[];
      expect(jobs.map((j) => j.status)).toEqual(["Failed", "Failed"]);
      // The dead letters name the batch and its last job.
      const letters = out.letters.filter((l) => l.headers["dlq.batch.id"] === batchId);
      expect(letters.length).toBeGreaterThan(0);
      for (const letter of letters) {
        expect(letter.headers["dlq.job.id"]).toBe(jobs[1]?.id);
        expect(letter.headers["dlq.detail"]).toContain("Failed");
      }
    }
    expect(out.letters).toHaveLength(doomed.length);
    expect(out.metric("jobs_retried_total")).toBe(doomedBatches.size);
    expect(out.metric("jobs_failed_total", { reason: "failed" })).toBe(2 * doomedBatches.size);
    const savedBatches = out.metric("batches_flushed_total") - doomedBatches.size;
    expect(out.jobs).toHaveLength(2 * doomedBatches.size + savedBatches);
    expect(out.metric("jobs_completed_total")).toBe(savedBatches);
  });

  it("a stuck job times out, is resubmitted and its events predicted", async () => {
    const h = await start({
      faults: { stuckJobs: { count: 1 } },
      env: { FC_JOB_TIMEOUT_MS: "1500", FC_JOB_MAX_ATTEMPTS: "2" },
    });
    const sent = await send(h, 60);
    const out = await settle(h);
    expectAccounted(out, sent);

    const batches = out.metric("batches_flushed_total");
    expect(out.jobs).toHaveLength(batches + 1);
    const stuck = out.jobs.filter((j) => j.faults.outcome === "stuck");
    expect(stuck).toHaveLength(1);
    expect(stuck[0]?.status).toBe("Running");
    const retried = jobsByBatch(out.jobs).get(batchOf(stuck[0] as JobSnapshot)) as JobSnapshot[];
    expect(retried.map((j) => j.status)).toEqual(["Running", "Completed"]);
    expect(out.predictions.some((p) => p.value.job_id === stuck[0]?.id)).toBe(false);
    expect(out.metric("jobs_failed_total", { reason: "timeout" })).toBe(1);
    expect(out.metric("jobs_retried_total")).toBe(1);
    expect(out.metric("jobs_completed_total")).toBe(batches);
  });

  it("rows missing from predictions.csv: exactly those events are dead-lettered as missing_prediction", async () => {
    const every = 4;
    const h = await start({ faults: { missingRows: { every } } });
    const sent = await send(h, 60, { stores: "unique" });
    const out = await settle(h);
    const dropped = await droppedEvents(h, out.jobs, sent, every);
    expect(dropped.size).toBeGreaterThan(0);
    expectAccounted(out, sent, dropped);
    expectOneJobPerBatch(out);
    for (const letter of out.letters) expect(letter.headers["dlq.detail"]).toContain("no prediction");
  });

  it("malformed lines in predictions.csv are counted and affect nothing else", async () => {
    const h = await start({ faults: { malformedRows: { count: 3 } } });
    const sent = await send(h, 60);
    const out = await settle(h);
    expectAccounted(out, sent);
    expectOneJobPerBatch(out);
    expect(out.metric("prediction_rows_rejected_total", { reason: "malformed" })).toBe(3 * out.jobs.length);
    expect(out.metric("prediction_rows_rejected_total", { reason: "unmatched" })).toBe(0);
    expect(out.metric("prediction_rows_rejected_total", { reason: "duplicate" })).toBe(0);
  });

  const SHAPES: ReadonlyArray<[string, OutputShape, Stores]> = [
    ["comma", { delimiter: "," }, "repeating"],
    ["tab", { delimiter: "\t" }, "repeating"],
    ["header", { header: true }, "repeating"],
    ["bracketed", { bracketed: true }, "repeating"],
    ["quoted", { quoted: true }, "repeating"],
    ["crlf", { crlf: true }, "repeating"],
    ["shuffle", { shuffle: true }, "unique"],
    ["shuffle, repeating stores", { shuffle: true }, "repeating"],
    [
      "comma + header + quoted + crlf",
      { delimiter: ",", header: true, quoted: true, crlf: true },
      "repeating",
    ],
    ["comma + bracketed + quoted", { delimiter: ",", bracketed: true, quoted: true }, "repeating"],
    ["tab + bracketed + shuffle", { delimiter: "\t", bracketed: true, shuffle: true }, "unique"],
    [
      "space + header + bracketed + quoted + crlf + shuffle",
      { header: true, bracketed: true, quoted: true, crlf: true, shuffle: true },
      "unique",
    ],
    // MLflow rows name their position in the file, not the store: reordering is harmless even with repeats
    // (the plain MLflow shape, header on, is in the missing-rows test below).
    [
      "mlflow headerless + tab + shuffle",
      { mlflow: true, header: false, delimiter: "\t", shuffle: true },
      "repeating",
    ],
    [
      "mlflow + quoted + bracketed + crlf",
      { mlflow: true, quoted: true, bracketed: true, crlf: true },
      "repeating",
    ],
  ];

  it.each(SHAPES)("output shape %s: every event predicted", async (_name, shape, stores) => {
    const h = await start({ faults: { outputShape: shape } });
    const sent = await send(h, 40, { stores });
    const out = await settle(h);
    expectAccounted(out, sent);
    expectOneJobPerBatch(out);
    expect(out.jobs.every((j) => JSON.stringify(j.faults.outputShape) === JSON.stringify(shape))).toBe(true);
    expect(out.metric("prediction_rows_rejected_total")).toBe(0);
  });

  it("MLflow output with missing rows: matched by row position, exactly the dropped events dead-lettered", async () => {
    // MLflow rows carry their position in the input file: even with repeating stores, attribution is exact.
    const every = 4;
    const h = await start({
      faults: { outputShape: { mlflow: true, shuffle: true }, missingRows: { every } },
    });
    const sent = await send(h, 60);
    const out = await settle(h);
    const dropped = await droppedEvents(h, out.jobs, sent, every);
    expect(dropped.size).toBeGreaterThan(0);
    expectAccounted(out, sent, dropped);
    expectOneJobPerBatch(out);
    expect(out.metric("prediction_rows_rejected_total")).toBe(0);
  });

  it("the v2 api flavor end to end, a failed job and throttling included", async () => {
    const faults: EmulatorFaults = {
      throttle: { count: 2, retryAfterSeconds: 1 },
      failJobs: { count: 1 },
      outputShape: { delimiter: ",", header: true },
    };
    const h = await start({ faults, env: { FC_ENDPOINT_API_FLAVOR: "v2", FC_JOB_MAX_ATTEMPTS: "2" } });
    const sent = await send(h, 60);
    const out = await settle(h);
    expectAccounted(out, sent);

    const batches = out.metric("batches_flushed_total");
    expect(out.jobs).toHaveLength(batches + 1);
    expect(out.jobs.every((j) => j.flavor === "v2" && j.inputType === "UriFolder")).toBe(true);
    // The connector names each attempt's output: its own path, so a resubmission never meets an old output.
    for (const [batchId, jobs] of jobsByBatch(out.jobs)) {
      expect(jobs.map((j) => j.outputBlobPath)).toEqual(
        jobs.map((_, i) => `artifacts/output/${batchId}-attempt${i + 1}/predictions.csv`),
      );
    }
    expect(out.jobs.filter((j) => j.status === "Failed")).toHaveLength(1);
    expect(out.metric("jobs_retried_total")).toBe(1);
    expect(out.metric("endpoint_http_retries_total")).toBe(2);
  });
  /*
   * Repeating stores with reordered or missing rows: a batch is laid out as files in which each store appears
   * once (planBatchFiles), so a row's (file, store) names exactly one event and no prediction can be given to
   * another event of the same store. (These were the KNOWN BUG tests before that layout.)
   */
  it("shuffled rows with repeating stores in a batch: every prediction is its own event's", async () => {
    const h = await start({ faults: { outputShape: { shuffle: true } } });
    const sent = await send(h, 60);
    const out = await settle(h);
    const { wrong } = expectEveryEventOnce(out, sent);
    expect(out.letters).toHaveLength(0);
    expect(wrong).toEqual([]);
    expect(out.jobs.length).toBe(out.metric("batches_flushed_total"));
  });

  it("missing rows with repeating stores in a batch: exactly the dropped events are dead-lettered", async () => {
    const every = 4;
    const h = await start({ faults: { missingRows: { every } } });
    const sent = await send(h, 60);
    const out = await settle(h);
    const dropped = await droppedEvents(h, out.jobs, sent, every);
    const { wrong, lettered } = expectEveryEventOnce(out, sent);
    expect(out.letters.every((l) => l.headers["dlq.reason"] === "missing_prediction")).toBe(true);
    expect([...lettered].sort()).toEqual([...dropped.keys()].sort());
    expect(wrong).toEqual([]);
  });
});
