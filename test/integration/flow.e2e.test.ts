import { afterEach, describe, expect, it } from "vitest";
import { expectedPrediction, features, startHarness } from "../helpers/connectorHarness.ts";

type Harness = Awaited<ReturnType<typeof startHarness>>;
let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

function events(count: number) {
  return Array.from({ length: count }, (_, i) => {
    const row = { store_id: `FL_${i % 7}`, features: features(i) };
    return { key: row.store_id, value: JSON.stringify(row), row };
  });
}

describe("flow control and long jobs", () => {
  it("keeps its group membership while jobs run far longer than the session timeout", async () => {
    // Jobs of ~16 s against a 6 s session timeout (the broker's minimum): a handler that awaited the job
    // would be thrown out of the group and its events replayed.
    const h = await startHarness({
      partitions: 2,
      emulator: { coldStartMs: 6_000, runMs: 10_000 },
      env: {
        FC_KAFKA_SESSION_TIMEOUT_MS: "6000",
        FC_BATCH_MAX_RECORDS: "30",
        FC_JOB_POLL_INTERVAL_MS: "500",
      },
    });
    harness = h;
    const sent = events(30);
    await h.produce(sent);
    const predictions = await h.readPredictions(sent.length, 90_000);
    expect(predictions).toHaveLength(sent.length);
    const expected = sent.map((e) => `${e.row.store_id}|${expectedPrediction(e.row.features)}`).sort();
    expect(predictions.map((p) => `${p.value.store_id}|${p.value.prediction}`).sort()).toEqual(expected);
    expect(await h.metric("forecast_connector_consumer_group_joins_total")).toBe(1);
    expect(h.emulator.jobs()).toHaveLength(1);
    const commits = await h.waitForCommitsAtEnd();
    for (const row of commits) expect(row.committed).toBe(row.end);
  });

  it("pauses the input when in-flight events reach their bound, resumes as they drain, and loses nothing", async () => {
    const h = await startHarness({
      partitions: 3,
      emulator: { coldStartMs: 300, runMs: 300 },
      env: { FC_MAX_EVENTS_IN_FLIGHT: "20", FC_BATCH_MAX_RECORDS: "10", FC_MAX_JOBS_IN_FLIGHT: "2" },
    });
    harness = h;
    const sent = events(120);
    await h.produce(sent);
    const predictions = await h.readPredictions(sent.length, 90_000);
    expect(new Set(predictions.map((p) => `${p.value.source_partition}/${p.value.source_offset}`)).size).toBe(
      120,
    );
    expect(await h.metric("forecast_connector_consumer_pauses_total")).toBeGreaterThan(0);
    expect(await h.metric("forecast_connector_consumer_paused")).toBe(0);
    expect(await h.metric("forecast_connector_events_in_flight")).toBe(0);
    const commits = await h.waitForCommitsAtEnd();
    for (const row of commits) expect(row.committed).toBe(row.end);
  });

  it("holds batches through an endpoint outage and scores them when it ends: no dead letters, no duplicate job", async () => {
    const h = await startHarness({
      partitions: 2,
      faults: { serverError: { rate: 1, on: "submit" } },
      env: { FC_HTTP_MAX_RETRIES: "1", FC_BATCH_MAX_RECORDS: "10" },
    });
    harness = h;
    const sent = events(30);
    await h.produce(sent);
    // Every submission fails for a while, long after the HTTP pipeline's own retries gave up.
    await new Promise((r) => setTimeout(r, 3000));
    expect(
      await h.metric("forecast_connector_jobs_failed_total", { reason: "submit_error" }),
    ).toBeGreaterThan(0);
    expect(await h.metric("forecast_connector_dead_letters_total")).toBe(0);
    expect(h.emulator.jobs()).toHaveLength(0);

    h.emulator.setFaults({});
    const predictions = await h.readPredictions(sent.length);
    expect(new Set(predictions.map((p) => `${p.value.source_partition}/${p.value.source_offset}`)).size).toBe(
      30,
    );
    expect(await h.metric("forecast_connector_dead_letters_total")).toBe(0);
    expect(h.emulator.jobs()).toHaveLength(await h.metric("forecast_connector_batches_flushed_total"));
  });
});
