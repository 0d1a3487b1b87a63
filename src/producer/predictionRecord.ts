import { readFileSync } from "node:fs";
import { type SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";

/** The Avro value of one record on the results topic (schemas/forecast-prediction.avsc). */
export interface PredictionRecord {
  readonly store_id: string;
  readonly prediction: number;
  readonly file_name: string;
  readonly job_id: string;
  readonly batch_id: string;
  readonly source_topic: string;
  readonly source_partition: number;
  readonly source_offset: number;
  /**
   * timestamp-millis on the wire: milliseconds since the epoch. The registry client builds plain avsc types
   * (no logical-type hooks), so the value is the long itself; consumers with logical types read a timestamp.
   */
  readonly source_timestamp: number;
  readonly predicted_at: number;
}

export const PREDICTION_SCHEMA_PATH = new URL("../../schemas/forecast-prediction.avsc", import.meta.url);

export interface PredictionEncoder {
  readonly schemaId: number;
  /** The record in the Confluent wire format; synchronous once the schema is known (createPredictionEncoder). */
  encode(record: PredictionRecord): Buffer | Promise<Buffer>;
}

/** What is used of an avsc Type: writing a value into a buffer at a position (avsc's Type#encode). */
interface AvroWriter {
  encode(value: unknown, buffer: Buffer, position: number): number;
}

function isAvroWriter(schema: unknown): schema is AvroWriter {
  return typeof (schema as { encode?: unknown } | null)?.encode === "function";
}

/**
 * Encodes synchronously with the schema's avsc type: the Confluent wire format is a zero magic byte, the
 * schema id as a 4-byte big-endian integer, then the Avro body. Written into one scratch buffer, then copied
 * out once: no promise and no concatenation per record. A record larger than the scratch grows it.
 */
export function createWireEncoder(schemaId: number, type: AvroWriter): (record: PredictionRecord) => Buffer {
  let scratch = Buffer.alloc(4096);
  return (record) => {
    for (;;) {
      scratch[0] = 0;
      scratch.writeInt32BE(schemaId, 1);
      const end = type.encode(record, scratch, 5);
      // avsc returns a negative position, by how much the buffer was short, when the value did not fit.
      if (end >= 0) return Buffer.from(scratch.subarray(0, end));
      scratch = Buffer.alloc(Math.max(scratch.length * 2, 5 - end + scratch.length));
    }
  };
}

/**
 * Registers the prediction schema under `<resultsTopic>-value` (the Confluent TopicNameStrategy, which
 * downstream deserializers expect) and encodes records in the Confluent wire format.
 */
export async function createPredictionEncoder(
  registry: SchemaRegistry,
  resultsTopic: string,
): Promise<PredictionEncoder> {
  const schema = readFileSync(PREDICTION_SCHEMA_PATH, "utf8");
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema },
    { subject: `${resultsTopic}-value` },
  );
  // The registry client validates and encodes behind a promise and concatenates per record; once the
  // schema is known, its avsc type does the same synchronously.
  const type: unknown = typeof registry.getSchema === "function" ? await registry.getSchema(id) : undefined;
  const encodeSync = isAvroWriter(type) ? createWireEncoder(id, type) : undefined;
  return {
    schemaId: id,
    encode: encodeSync ?? ((record) => registry.encode(id, record)),
  };
}
