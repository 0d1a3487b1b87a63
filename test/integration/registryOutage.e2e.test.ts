import { createServer, request as httpRequest, type Server } from "node:http";
import { SchemaType } from "@kafkajs/confluent-schema-registry";
import { afterEach, describe, expect, inject, it } from "vitest";
import { expectedPrediction, features, startHarness } from "../helpers/connectorHarness.ts";

/** A pass-through to the real registry that can be switched to answer 503, as a registry outage would. */
async function switchableRegistry(
  target: string,
): Promise<{ url: string; down: boolean; close(): Promise<void> }> {
  const base = new URL(target);
  const state = { down: false };
  const server: Server = createServer((req, res) => {
    if (state.down) {
      res.writeHead(503).end("unavailable");
      return;
    }
    const upstream = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        path: `${base.pathname}${req.url}`,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    get down() {
      return state.down;
    },
    set down(value: boolean) {
      state.down = value;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

type Harness = Awaited<ReturnType<typeof startHarness>>;
let harness: Harness | undefined;
let proxy: Awaited<ReturnType<typeof switchableRegistry>> | undefined;
afterEach(async () => {
  await harness?.close();
  await proxy?.close();
  harness = undefined;
  proxy = undefined;
});

describe("schema registry outage", () => {
  it("leaves Avro events unconsumed while the registry is down, then scores them: no false dead letters", async () => {
    proxy = await switchableRegistry(inject("stack").registryUrl);
    const h = await startHarness({ partitions: 2, env: { FC_SCHEMA_REGISTRY_URL: proxy.url } });
    harness = h;
    // A writer schema the connector has never seen: decoding needs the registry.
    const { id } = await h.registry.register(
      {
        type: SchemaType.AVRO,
        schema: JSON.stringify({
          type: "record",
          name: "OutageFeatures",
          namespace: "com.retail.forecast.test",
          fields: [
            { name: "store_id", type: "string" },
            { name: "features", type: { type: "array", items: "double" } },
          ],
        }),
      },
      { subject: `${h.topics.input}-value` },
    );
    const rows = Array.from({ length: 24 }, (_, i) => ({
      store_id: `RO_${i % 5}`,
      features: features(i + 3),
    }));

    proxy.down = true;
    await h.produce(
      await Promise.all(
        rows.map(async (row) => ({ key: row.store_id, value: await h.registry.encode(id, row) })),
      ),
    );
    await new Promise((r) => setTimeout(r, 4000));
    expect(await h.metric("forecast_connector_dead_letters_total")).toBe(0);
    expect(await h.metric("forecast_connector_events_consumed_total")).toBe(0);

    proxy.down = false;
    const predictions = await h.readPredictions(rows.length);
    expect(predictions.map((p) => `${p.value.store_id}|${p.value.prediction}`).sort()).toEqual(
      rows.map((row) => `${row.store_id}|${expectedPrediction(row.features)}`).sort(),
    );
    expect(await h.metric("forecast_connector_dead_letters_total")).toBe(0);
    const commits = await h.waitForCommitsAtEnd();
    for (const row of commits) expect(row.committed).toBe(row.end);
  });
});
