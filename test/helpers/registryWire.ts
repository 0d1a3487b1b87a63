/**
 * What the schema registry client speaks, for tests: its errors, the wire format, and the input events' Avro
 * schema as producers register it.
 */
import type avro from "avsc";

/** The guide's feature event as an Avro record: what upstream services register for the input topic. */
export const FEATURE_EVENT_SCHEMA: Parameters<typeof avro.Type.forSchema>[0] = {
  type: "record",
  name: "FeatureEvent",
  namespace: "com.retail.forecast",
  fields: [
    { name: "store_id", type: "string" },
    { name: "features", type: { type: "array", items: "double" } },
  ],
};

/** Shaped like the registry client's ResponseError (mappersmith's error middleware): a name and a status. */
export class ResponseError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(`Confluent_Schema_Registry - ${message}`);
    this.name = "ResponseError";
    this.status = status;
  }
}

/** The Confluent wire format: magic byte 0, the schema id as a 4-byte big-endian int, then the Avro body. */
export function wire(schemaId: number, body: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}
