import { COMPATIBILITY, SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { describe, expect, inject, it } from "vitest";
import { uniqueName } from "../../helpers/kafka.ts";

const schema = {
  type: "record",
  name: "SmokeForecast",
  namespace: "forecast.smoke",
  fields: [
    { name: "store_id", type: "string" },
    { name: "prediction", type: "double" },
  ],
};

describe("schema registry (Confluent API)", () => {
  it("registers an Avro schema, encodes in the Confluent wire format and decodes back", async () => {
    const registry = new SchemaRegistry({ host: inject("stack").registryUrl });
    const subject = uniqueName("smoke-value");
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject, compatibility: COMPATIBILITY.BACKWARD },
    );
    expect(id).toBeGreaterThan(0);
    expect(await registry.getLatestSchemaId(subject)).toBe(id);

    const record = { store_id: "CA_1", prediction: 2.33394885 };
    const encoded = await registry.encode(id, record);
    // Wire format: magic byte 0, then the schema id as a big-endian int32, then the Avro body.
    expect(encoded[0]).toBe(0);
    expect(encoded.readInt32BE(1)).toBe(id);
    expect(await registry.decode(encoded)).toEqual(record);

    // A fresh client (empty cache) must resolve the id through the registry to decode.
    const fresh = new SchemaRegistry({ host: inject("stack").registryUrl });
    expect(await fresh.decode(encoded)).toEqual(record);
  });

  it("answers the same id when the same schema is registered again", async () => {
    const registry = new SchemaRegistry({ host: inject("stack").registryUrl });
    const subject = uniqueName("smoke-again");
    const first = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject },
    );
    const second = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject },
    );
    expect(second.id).toBe(first.id);
  });

  it("is reachable at the URL the stack advertises", async () => {
    const response = await fetch(`${inject("stack").registryUrl}/subjects`);
    expect(response.status).toBe(200);
    expect(Array.isArray(await response.json())).toBe(true);
  });
});
