import { mkdirSync, writeFileSync } from "node:fs";
import { SchemaType } from "@kafkajs/confluent-schema-registry";
import { afterEach, describe, expect, it } from "vitest";
import { expectedPrediction, features, startHarness } from "../helpers/connectorHarness.ts";
import { FEATURE_EVENT_SCHEMA } from "../helpers/registryWire.ts";

type Harness = Awaited<ReturnType<typeof startHarness>>;

const INPUT_AVRO_SCHEMA = JSON.stringify(FEATURE_EVENT_SCHEMA);

/** N valid events over several stores (so several partitions by key), as JSON. */
function validEvents(count: number, offset = 0) {
  return Array.from({ length: count }, (_, i) => {
    const storeId = `ST_${(i + offset) % 17}`;
    const row = { store_id: storeId, features: features(i + offset) };
    return { key: storeId, value: JSON.stringify(row), row };
  });
}

const INVALID_EVENTS = [
  { value: "{not json", reason: "malformed_json" },
  { value: JSON.stringify({ store_id: "CA_1", features: [1, 2, 3] }), reason: "wrong_feature_count" },
  { value: JSON.stringify({ features: features(1) }), reason: "invalid_store_id" },
  { value: JSON.stringify({ store_id: "CA_1", features: "lots" }), reason: "invalid_features" },
  { value: JSON.stringify([1, 2]), reason: "not_an_object" },
  { value: "", reason: "empty_message" },
] as const;

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

/** Every valid event: exactly one prediction, equal to the formula, carrying its source coordinates. */
function expectOnePredictionPerEvent(
  predictions: Awaited<ReturnType<Harness["readPredictions"]>>,
  sent: ReadonlyArray<{ row: { store_id: string; features: number[] } }>,
) {
  expect(predictions).toHaveLength(sent.length);
  const bySource = new Map(
    predictions.map((p) => [`${p.value.source_partition}/${p.value.source_offset}`, p]),
  );
  expect(bySource.size).toBe(sent.length); // no duplicates
  const expectedByStoreAndValue = new Map<string, number>();
  for (const { row } of sent) {
    const key = `${row.store_id}|${expectedPrediction(row.features)}`;
    expectedByStoreAndValue.set(key, (expectedByStoreAndValue.get(key) ?? 0) + 1);
  }
  for (const p of predictions) {
    expect(p.key).toBe(p.value.store_id);
    const key = `${p.value.store_id}|${p.value.prediction}`;
    const left = expectedByStoreAndValue.get(key);
    expect(left, `unexpected prediction ${key}`).toBeGreaterThan(0);
    expectedByStoreAndValue.set(key, (left as number) - 1);
    expect(String(p.value.file_name)).toMatch(new RegExp(`^${p.value.batch_id}-\\d+\\.json$`));
    expect(String(p.value.job_id)).toMatch(/^batchjob-/);
    expect(Number(p.value.predicted_at)).toBeGreaterThanOrEqual(Number(p.value.source_timestamp));
  }
}

describe("forecast-connector end to end (Kafka, schema registry, Azurite, emulator)", () => {
  it("turns every valid event into exactly one prediction and every invalid one into a dead letter", async () => {
    const h = await startHarness({ partitions: 3 });
    harness = h;
    const valid = validEvents(150);
    await harness.produce(valid);
    await harness.produce(INVALID_EVENTS.map((e, i) => ({ key: `bad-${i}`, value: e.value })));
    // Larger than FC_MAX_MESSAGE_BYTES (64 KiB): dead-lettered with its first 64 KiB and its size in a header.
    const huge = JSON.stringify({ store_id: "HUGE", features: features(1), padding: "x".repeat(80_000) });
    await harness.produce([{ key: "huge", value: huge }]);

    // Avro events too, in the Confluent wire format through the registry.
    const { id } = await harness.registry.register(
      { type: SchemaType.AVRO, schema: INPUT_AVRO_SCHEMA },
      { subject: `${harness.topics.input}-value` },
    );
    const avroRows = validEvents(20, 1000);
    await harness.produce(
      await Promise.all(
        avroRows.map(async (e) => ({ key: e.key, value: await h.registry.encode(id, e.row) })),
      ),
    );

    const predictions = await harness.readPredictions(valid.length + avroRows.length);
    expectOnePredictionPerEvent(predictions, [...valid, ...avroRows]);
    expect(new Set(predictions.map((p) => p.value.source_partition)).size).toBe(3);

    const letters = await harness.readDeadLetters(INVALID_EVENTS.length + 1);
    expect(letters).toHaveLength(INVALID_EVENTS.length + 1);
    const tooLarge = letters.find((l) => l.key === "huge");
    expect(tooLarge?.headers["dlq.reason"]).toBe("too_large");
    expect(tooLarge?.headers["dlq.value.truncated.from.bytes"]).toBe(String(Buffer.byteLength(huge)));
    expect(tooLarge?.value?.equals(Buffer.from(huge).subarray(0, 65_536))).toBe(true);
    for (const [i, event] of INVALID_EVENTS.entries()) {
      const letter = letters.find((l) => l.key === `bad-${i}`);
      expect(letter, `dead letter for bad-${i}`).toBeDefined();
      expect(letter?.headers["dlq.reason"]).toBe(event.reason);
      expect(letter?.headers["dlq.source.topic"]).toBe(harness.topics.input);
      expect(letter?.headers["dlq.source.offset"]).toMatch(/^\d+$/);
      expect(letter?.headers["dlq.detail"]?.length).toBeGreaterThan(0);
      expect(Date.parse(letter?.headers["dlq.failed.at"] ?? "")).not.toBeNaN();
      expect(letter?.value?.toString() ?? "").toBe(event.value);
    }

    const commits = await harness.waitForCommitsAtEnd();
    for (const row of commits) expect(row.committed).toBe(row.end);
    // Lag per owned partition, refreshed every 500 ms here: none left once everything is committed.
    await new Promise((r) => setTimeout(r, 1200));
    const lag = await harness.connector.metrics.consumerLag.get();
    expect(lag.values.map((v) => v.labels.partition).sort()).toEqual(["0", "1", "2"]);
    expect(lag.values.every((v) => v.value === 0)).toBe(true);

    const total = valid.length + avroRows.length + INVALID_EVENTS.length + 1;
    expect(await harness.metric("forecast_connector_events_consumed_total")).toBe(total);
    expect(await harness.metric("forecast_connector_predictions_published_total")).toBe(
      valid.length + avroRows.length,
    );
    expect(await harness.metric("forecast_connector_dead_letters_total")).toBe(INVALID_EVENTS.length + 1);
    expect(
      await harness.metric("forecast_connector_events_invalid_total", { reason: "malformed_json" }),
    ).toBe(1);
    expect(await harness.metric("forecast_connector_events_in_flight")).toBe(0);
    // No job was submitted twice: one emulator job per batch flushed.
    const jobs = harness.emulator.jobs();
    expect(jobs).toHaveLength(await harness.metric("forecast_connector_batches_flushed_total"));
    expect(await harness.metric("forecast_connector_jobs_submitted_total")).toBe(jobs.length);
    expect(jobs.every((j) => j.status === "Completed")).toBe(true);

    // The live /metrics a Prometheus would scrape: kept for CI's `promtool check metrics` (.ci/check-live-metrics).
    const exposition = await harness.scrape();
    expect(exposition).toContain(
      `forecast_connector_predictions_published_total ${valid.length + avroRows.length}`,
    );
    expect(exposition).toMatch(/^forecast_connector_process_resident_memory_bytes \d+/m);
    mkdirSync(".stack", { recursive: true });
    writeFileSync(".stack/live-metrics.prom", exposition);
  });
});
