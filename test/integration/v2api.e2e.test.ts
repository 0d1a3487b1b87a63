/**
 * The connector end to end with the Azure ML v2 API as the service has it: v2 bodies, statuses read through the
 * workspace's ARM jobs API (management-scope token, 429 + Retry-After), timed-out jobs cancelled through ARM, every
 * status a job can pass through, the service's error bodies in the dead letters, and rows missing from a Completed
 * job counted per job. Each scenario checks every event once, as the formula's prediction or as the dead letter
 * it must be, and offsets committed to the end.
 *
 * The test harness creates its emulator after the settings are fixed, so the ARM base URL points at a plain TCP
 * relay started first and connected to the emulator once it listens: bytes pass through unchanged, whatever the
 * emulator answers is what the connector gets.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_JOB_ERROR, DEFAULT_STATUS_JOURNEY } from "../../emulator/index.ts";
import { jobStatusLabel } from "../../src/azure/jobStatus.ts";
import {
  expectedPrediction,
  features,
  type HarnessOptions,
  startHarness,
} from "../helpers/connectorHarness.ts";

type Harness = Awaited<ReturnType<typeof startHarness>>;

const PARTITIONS = 3;

/** A TCP relay on a port of its own, forwarding to a target port set later (the emulator's). */
async function startRelay() {
  let targetPort: number | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    if (targetPort === undefined) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    target(port: number) {
      targetPort = port;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let harness: Harness | undefined;
let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
afterEach(async () => {
  await harness?.close();
  await relay?.close();
  harness = undefined;
  relay = undefined;
});

/**
 * A harness whose connector speaks v2 and reads statuses from ARM: the settings a user sets for ARM polling,
 * with the emulator's workspace (its defaults) and its URL as FC_ARM_BASE_URL.
 */
async function startArm(options: HarnessOptions & { statusApi?: "arm" | "data-plane" } = {}) {
  relay = await startRelay();
  harness = await startHarness({
    partitions: PARTITIONS,
    ...options,
    env: {
      FC_ENDPOINT_API_FLAVOR: "v2",
      FC_ENDPOINT_STATUS_API: options.statusApi ?? "arm",
      FC_ARM_SUBSCRIPTION_ID: "00000000-0000-0000-0000-000000000000",
      FC_ARM_RESOURCE_GROUP: "emulator",
      FC_ARM_WORKSPACE: "emulator",
      FC_ARM_BASE_URL: relay.url,
      FC_ARM_CANCEL_TIMEOUT_MS: "5000",
      ...options.env,
    },
  });
  relay.target(Number(new URL(harness.emulator.armBaseUrl).port));
  return harness;
}

interface SentEvent {
  readonly id: string;
  readonly partition: number;
  readonly storeId: string;
  readonly features: number[];
}

/** `count` events round-robin over the partitions, each with a unique feature vector; unique stores by default. */
async function send(
  h: Harness,
  count: number,
  stores: "unique" | "repeating" = "unique",
): Promise<SentEvent[]> {
  const rows = Array.from({ length: count }, (_, n) => ({
    store_id: stores === "unique" ? `ST_${n}` : `ST_${n % 5}`,
    features: [n / 100, ...features(n, 12)],
  }));
  const placed = await h.produceTracked(
    rows.map((row, i) => ({ key: row.store_id, value: JSON.stringify(row), partition: i % PARTITIONS })),
  );
  return rows.map((row, i) => {
    const { partition, offset } = placed[i] as { partition: number; offset: string };
    return { id: `${partition}/${offset}`, partition, storeId: row.store_id, features: row.features };
  });
}

/** Waits for every offset committed to its end, then reads the metrics named, then both topics to their ends. */
async function settle(h: Harness, sent: readonly SentEvent[], metricNames: readonly string[]) {
  const commits = await h.waitForCommitsAtEnd(60_000);
  for (const row of commits) {
    expect(row.committed, `partition ${row.partition}`).toBe(row.end);
    expect(Number(row.end)).toBe(sent.filter((e) => e.partition === row.partition).length);
  }
  const values = new Map<
    string,
    Array<{ labels: Record<string, unknown>; value: number; metricName?: string }>
  >();
  for (const name of metricNames) {
    const full = `forecast_connector_${name}`;
    values.set(full, (await h.connector.metrics.registry.getSingleMetric(full)?.get())?.values ?? []);
  }
  const jobs = h.emulator.jobs();
  await h.stopConnector();
  const [predictions, letters] = await Promise.all([h.readAllPredictions(), h.readAllDeadLetters()]);
  const metric = (name: string, labels: Record<string, string> = {}) =>
    (values.get(`forecast_connector_${name}`) ?? [])
      .filter((v) => Object.entries(labels).every(([k, value]) => String(v.labels[k]) === value))
      .reduce((sum, v) => sum + v.value, 0);
  /** A histogram's _count or _sum series. */
  const series = (name: string, suffix: "count" | "sum") =>
    (values.get(`forecast_connector_${name}`) ?? [])
      .filter((v) => v.metricName === `forecast_connector_${name}_${suffix}`)
      .reduce((sum, v) => sum + v.value, 0);
  return { predictions, letters, jobs, metric, series };
}

type Settled = Awaited<ReturnType<typeof settle>>;

/** Every event once: predicted with the formula's value, or dead-lettered with the reason it must have. */
function expectEveryEventOnce(
  out: Settled,
  sent: readonly SentEvent[],
  deadReasons = new Map<string, string>(),
) {
  const byId = new Map(sent.map((e) => [e.id, e]));
  const seen = new Set<string>();
  for (const p of out.predictions) {
    const id = `${p.value.source_partition}/${p.value.source_offset}`;
    const event = byId.get(id);
    expect(event, `prediction for unknown event ${id}`).toBeDefined();
    expect(seen.has(id), `${id} has two outcomes`).toBe(false);
    seen.add(id);
    expect(deadReasons.has(id), `${id} predicted but expected dead-lettered`).toBe(false);
    expect(p.value.store_id).toBe(event?.storeId);
    expect(p.value.prediction).toBe(expectedPrediction(event?.features ?? []));
  }
  for (const letter of out.letters) {
    const id = `${letter.headers["dlq.source.partition"]}/${letter.headers["dlq.source.offset"]}`;
    expect(byId.has(id), `dead letter for unknown event ${id}`).toBe(true);
    expect(seen.has(id), `${id} has two outcomes`).toBe(false);
    seen.add(id);
    expect(letter.headers["dlq.reason"], id).toBe(deadReasons.get(id));
  }
  expect(seen.size).toBe(sent.length);
  expect(out.letters).toHaveLength(deadReasons.size);
}

describe("Azure ML v2 end to end, the ARM jobs API configured", () => {
  it.each(["arm", "data-plane"] as const)(
    "reads statuses through %s only, through every status a job passes (an unknown one too), UriFile inputs: every prediction once",
    async (statusApi) => {
      const h = await startArm({
        statusApi,
        faults: { statusJourney: { rate: 1 } },
        emulator: { coldStartMs: 700, runMs: 700 },
        env: { FC_ENDPOINT_INPUT_TYPE: "auto", FC_JOB_POLL_INTERVAL_MS: "25" },
      });
      const sent = await send(h, 60);
      const out = await settle(h, sent, [
        "job_status_reads_total",
        "jobs_completed_total",
        "batches_flushed_total",
      ]);
      expectEveryEventOnce(out, sent);

      // Each batch of unique stores is one file: sent as UriFile. Statuses came from the API chosen alone.
      expect(out.jobs.length).toBe(out.metric("batches_flushed_total"));
      for (const job of out.jobs) {
        expect(job).toMatchObject({ status: "Completed", inputType: "UriFile" });
        expect(job.inputUri).toMatch(/\.json$/);
        const [used, unused] =
          statusApi === "arm" ? [job.armStatusPolls, job.statusPolls] : [job.statusPolls, job.armStatusPolls];
        expect(used).toBeGreaterThan(0);
        expect(unused).toBe(0);
        expect(job.faults.journey).toEqual(DEFAULT_STATUS_JOURNEY);
      }
      // Read counted per status, the unknown one as "other"; the jobs ended only on Completed.
      for (const status of new Set(DEFAULT_STATUS_JOURNEY))
        expect(
          out.metric("job_status_reads_total", { status: jobStatusLabel(status) }),
          status,
        ).toBeGreaterThan(0);
      expect(out.metric("job_status_reads_total", { status: "Completed" })).toBe(out.jobs.length);
      expect(out.metric("jobs_completed_total")).toBe(out.jobs.length);
    },
  );

  it("a job that times out is cancelled through ARM without waiting, resubmitted, and its events predicted once", async () => {
    const h = await startArm({
      faults: { stuckJobs: { count: 1 } },
      env: { FC_JOB_TIMEOUT_MS: "1500", FC_JOB_MAX_ATTEMPTS: "2" },
    });
    const sent = await send(h, 50);
    const out = await settle(h, sent, ["job_cancels_total", "jobs_failed_total", "jobs_retried_total"]);
    expectEveryEventOnce(out, sent);

    const stuck = out.jobs.filter((j) => j.faults.outcome === "stuck");
    expect(stuck).toHaveLength(1);
    expect(stuck[0]?.cancelRequests).toBe(1);
    // The emulator holds CancelRequested for its cancelMs (1 s): the connector moved on before it ended.
    expect(out.predictions.some((p) => p.value.job_id === stuck[0]?.id)).toBe(false);
    expect(out.metric("job_cancels_total", { reason: "timed_out", outcome: "accepted" })).toBe(1);
    expect(out.metric("job_cancels_total")).toBe(1);
    expect(out.metric("jobs_failed_total", { reason: "timeout" })).toBe(1);
    expect(out.metric("jobs_retried_total")).toBe(1);
    // Only the timed-out job was cancelled; it reaches Canceled by itself afterwards.
    expect(out.jobs.filter((j) => j.cancelRequests > 0)).toHaveLength(1);
    await vi.waitFor(
      () => expect(h.emulator.jobs().find((j) => j.id === stuck[0]?.id)?.status).toBe("Canceled"),
      { timeout: 10_000, interval: 50 },
    );
  });

  it("a batch given up after its last attempt timed out: its job cancelled, its events job_failed with the timeout in dlq.detail", async () => {
    const h = await startArm({
      faults: { stuckJobs: { count: 1 } },
      env: { FC_JOB_TIMEOUT_MS: "1500", FC_JOB_MAX_ATTEMPTS: "1", FC_BATCH_MAX_RECORDS: "1000" },
    });
    const sent = await send(h, 20);
    const out = await settle(h, sent, ["job_cancels_total"]);
    expectEveryEventOnce(out, sent, new Map(sent.map((e) => [e.id, "job_failed"])));
    expect(out.jobs).toHaveLength(1);
    expect(out.jobs[0]?.cancelRequests).toBe(1);
    expect(out.metric("job_cancels_total", { reason: "given_up", outcome: "accepted" })).toBe(1);
    for (const letter of out.letters)
      expect(letter.headers["dlq.detail"]).toMatch(
        /ended TimedOut: Timeout: no terminal status after 1500 ms/,
      );
  });

  it("failed jobs: the service's error body (code, message, details) in dlq.detail; ARM's 429 Retry-After honoured", async () => {
    const h = await startArm({
      faults: { failJobs: { rate: 1 }, throttle: { count: 3, retryAfterSeconds: 1, on: "arm_status" } },
      env: { FC_JOB_MAX_ATTEMPTS: "1" },
    });
    const sent = await send(h, 30);
    const out = await settle(h, sent, [
      "endpoint_http_retries_total",
      "jobs_failed_total",
      "job_cancels_total",
    ]);
    expectEveryEventOnce(out, sent, new Map(sent.map((e) => [e.id, "job_failed"])));
    const detail = `${DEFAULT_JOB_ERROR.code}: ${DEFAULT_JOB_ERROR.message} [details: ${DEFAULT_JOB_ERROR.details?.[0]?.code}: ${DEFAULT_JOB_ERROR.details?.[0]?.message} (score.py)]`;
    for (const letter of out.letters) {
      expect(letter.headers["dlq.detail"]).toBe(
        `job ${letter.headers["dlq.job.id"]} ended Failed: ${detail}`,
      );
    }
    // The three 429s were retried by the SDK pipeline (after Retry-After), not turned into failures.
    expect(out.metric("endpoint_http_retries_total", { operation: "status" })).toBe(3);
    expect(out.metric("jobs_failed_total", { reason: "failed" })).toBe(out.jobs.length);
    // A job that failed by itself is never cancelled.
    expect(out.metric("job_cancels_total")).toBe(0);
  });

  it("rows missing from a Completed job's predictions.csv are counted per job, matching the missing_prediction dead letters", async () => {
    const h = await startArm({ faults: { missingRows: { every: 4 } } });
    const sent = await send(h, 60);
    const out = await settle(h, sent, [
      "prediction_rows_missing_total",
      "job_prediction_rows_missing",
      "dead_letters_total",
    ]);
    const missing = out.letters.filter((l) => l.headers["dlq.reason"] === "missing_prediction");
    expectEveryEventOnce(
      out,
      sent,
      new Map(
        missing.map((l) => [
          `${l.headers["dlq.source.partition"]}/${l.headers["dlq.source.offset"]}`,
          "missing_prediction",
        ]),
      ),
    );
    const expectedMissing = out.jobs.reduce((sum, j) => sum + ((j.rowsRead ?? 0) - (j.rowsWritten ?? 0)), 0);
    expect(expectedMissing).toBeGreaterThan(0);
    expect(missing).toHaveLength(expectedMissing);
    expect(out.metric("prediction_rows_missing_total")).toBe(expectedMissing);
    // The histogram has one observation per Completed job, summing to the same count.
    expect(out.jobs.every((j) => j.status === "Completed")).toBe(true);
    expect(out.series("job_prediction_rows_missing", "count")).toBe(out.jobs.length);
    expect(out.series("job_prediction_rows_missing", "sum")).toBe(expectedMissing);
  });
});
