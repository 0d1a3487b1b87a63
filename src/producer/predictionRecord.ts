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
  encode(record: PredictionRecord): Promise<Buffer>;
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
  return {
    schemaId: id,
    encode: (record) => registry.encode(id, record),
  };
}
