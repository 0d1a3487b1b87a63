/**
 * The prediction's synchronous wire encoder against avsc's own encoding of the same schema: the Confluent wire
 * format (magic byte 0, schema id as 4 bytes big-endian, Avro body), records larger than its scratch buffer
 * included, and each result a buffer of its own.
 */
import { readFileSync } from "node:fs";
import avro from "avsc";
import { describe, expect, it } from "vitest";
import {
  createWireEncoder,
  PREDICTION_SCHEMA_PATH,
  type PredictionRecord,
} from "../../src/producer/predictionRecord.ts";

const type = avro.Type.forSchema(JSON.parse(readFileSync(PREDICTION_SCHEMA_PATH, "utf8")));

function record(storeId: string, i: number): PredictionRecord {
  return {
    store_id: storeId,
    prediction: 100 + i / 3,
    file_name: `b-1-${i}.json`,
    job_id: "job-1",
    batch_id: "b-1",
    source_topic: "store-features",
    source_partition: i % 6,
    source_offset: 9_007_199_254_740_000 + i,
    source_timestamp: 1_735_689_600_000 + i,
    predicted_at: 1_735_690_000_000,
  };
}

describe("createWireEncoder", () => {
  it("writes the Confluent wire format: magic 0, schema id big-endian, then the Avro body", () => {
    const encode = createWireEncoder(0x01020304, type);
    const value = encode(record("CA_1", 1));
    expect([...value.subarray(0, 5)]).toEqual([0, 1, 2, 3, 4]);
    expect(type.fromBuffer(value.subarray(5))).toEqual(record("CA_1", 1));
  });

  it("gives the bytes avsc gives, record after record, each in a buffer of its own", () => {
    const encode = createWireEncoder(7, type);
    const header = Buffer.from([0, 0, 0, 0, 7]);
    const values = Array.from({ length: 50 }, (_, i) => encode(record(`S_${i}`, i)));
    values.forEach((value, i) => {
      expect(value).toEqual(Buffer.concat([header, type.toBuffer(record(`S_${i}`, i))]));
    });
    // Not views of one scratch buffer: the first record's bytes survive the 49 encoded after it.
    expect(type.fromBuffer((values[0] as Buffer).subarray(5))).toEqual(record("S_0", 0));
  });

  it("grows its scratch buffer for a record larger than it, and still encodes small ones after", () => {
    const encode = createWireEncoder(7, type);
    const big = record("X".repeat(20_000), 3);
    expect(type.fromBuffer(encode(big).subarray(5))).toEqual(big);
    expect(type.fromBuffer(encode(record("A", 4)).subarray(5))).toEqual(record("A", 4));
  });
});
