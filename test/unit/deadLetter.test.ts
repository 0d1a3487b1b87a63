/**
 * Dead letters as Kafka records (src/producer/deadLetter.ts): a letter that fits goes out as it is; one that
 * does not loses the event's own headers first, then has its value cut, so that the whole record (key, value,
 * every header name and value, in bytes) fits in maxBytes.
 */
import type { IHeaders } from "kafkajs";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_DEAD_LETTER_MAX_BYTES,
  type DeadLetter,
  DLQ_HEADERS,
  deadLetterHeaders,
  deadLetterMessage,
} from "../../src/producer/deadLetter.ts";

const FAILED_AT = new Date("2026-03-04T05:06:07.089Z");

function letter(overrides: Partial<DeadLetter> = {}): DeadLetter {
  return {
    source: { topic: "feature-events", partition: 3, offset: "12345", timestampMs: 1_700_000_000_000 },
    reason: "malformed_json",
    detail: "Unexpected token } in JSON at position 7",
    key: Buffer.from("CA_1"),
    value: Buffer.from('{"store_id": "CA_1", "features": [1, 2,}'),
    ...overrides,
  };
}

function headerBytes(value: IHeaders[string]): number {
  const values = Array.isArray(value) ? value : [value];
  return values.reduce<number>(
    (sum, v) => sum + (v === undefined ? 0 : Buffer.isBuffer(v) ? v.length : Buffer.byteLength(String(v))),
    0,
  );
}

/** The record's size as the brief measures it: key + value + every header name and value, in bytes. */
function recordSize(record: { key: Buffer | null; value: Buffer | null; headers: IHeaders }): number {
  let size = (record.key?.length ?? 0) + (record.value?.length ?? 0);
  for (const [name, value] of Object.entries(record.headers))
    size += Buffer.byteLength(name) + headerBytes(value);
  return size;
}

describe("deadLetterMessage", () => {
  it("leaves a letter that fits as it is, with the headers deadLetterHeaders gives", () => {
    const fits = letter({
      jobId: "job-1",
      batchId: "b-1",
      originalHeaders: { "content-type": "application/json", trace: Buffer.from("abc") },
    });
    const record = deadLetterMessage(fits, FAILED_AT);
    expect(record).toEqual({
      key: fits.key,
      value: fits.value,
      headers: deadLetterHeaders(fits, FAILED_AT),
      timestamp: String(FAILED_AT.getTime()),
    });
    expect(record.headers).toEqual({
      "content-type": "application/json",
      trace: Buffer.from("abc"),
      "dlq.reason": "malformed_json",
      "dlq.detail": "Unexpected token } in JSON at position 7",
      "dlq.source.topic": "feature-events",
      "dlq.source.partition": "3",
      "dlq.source.offset": "12345",
      "dlq.source.timestamp": "1700000000000",
      "dlq.failed.at": "2026-03-04T05:06:07.089Z",
      "dlq.job.id": "job-1",
      "dlq.batch.id": "b-1",
    });
    expect(record.headers[DLQ_HEADERS.originalHeadersDropped]).toBeUndefined();
    expect(record.headers[DLQ_HEADERS.truncatedFromBytes]).toBeUndefined();
  });

  it("drops the event's own headers when they push the record over maxBytes, and counts them", () => {
    const big = letter({
      originalHeaders: { a: "x".repeat(3000), b: Buffer.alloc(2000, 1), c: ["y".repeat(100), "z"] },
    });
    const withoutOriginal = letter();
    const maxBytes = recordSize(deadLetterMessage(withoutOriginal, FAILED_AT)) + 1000;
    const record = deadLetterMessage(big, FAILED_AT, maxBytes);
    expect(record.key).toEqual(big.key);
    expect(record.value).toEqual(big.value); // the value is not cut: dropping the headers was enough
    expect(record.headers).toEqual({
      ...deadLetterHeaders(withoutOriginal, FAILED_AT),
      [DLQ_HEADERS.originalHeadersDropped]: "3",
    });
    expect(record.headers[DLQ_HEADERS.truncatedFromBytes]).toBeUndefined();
    expect(recordSize(record)).toBeLessThanOrEqual(maxBytes);
  });

  it("cuts a value too large on its own so that the whole record fits, and records the original size", () => {
    const value = Buffer.alloc(10_000, "v");
    const tooLarge = letter({ reason: "too_large", detail: "10000 bytes", value });
    for (const maxBytes of [2_000, 4_096, 9_999]) {
      const record = deadLetterMessage(tooLarge, FAILED_AT, maxBytes);
      expect(recordSize(record)).toBeLessThanOrEqual(maxBytes);
      expect(record.key).toEqual(tooLarge.key);
      expect(value.subarray(0, record.value?.length).equals(record.value as Buffer)).toBe(true);
      // Cut to fit, not emptied: what else the record holds is a few hundred bytes.
      expect(record.value?.length).toBeGreaterThan(maxBytes - recordSize({ ...record, value: null }) - 512);
      expect(record.headers).toEqual({
        ...deadLetterHeaders({ ...tooLarge, truncatedFromBytes: 10_000 }, FAILED_AT),
      });
      expect(record.headers[DLQ_HEADERS.truncatedFromBytes]).toBe("10000");
    }
  });

  it("drops the original headers and then cuts the value when both are needed", () => {
    const value = Buffer.alloc(8_000, "v");
    const both = letter({ reason: "too_large", value, originalHeaders: { a: "x".repeat(4000), b: "y" } });
    const maxBytes = 3_000;
    const record = deadLetterMessage(both, FAILED_AT, maxBytes);
    expect(recordSize(record)).toBeLessThanOrEqual(maxBytes);
    expect(record.headers.a).toBeUndefined();
    expect(record.headers.b).toBeUndefined();
    expect(record.headers[DLQ_HEADERS.originalHeadersDropped]).toBe("2");
    expect(record.headers[DLQ_HEADERS.truncatedFromBytes]).toBe("8000");
    expect(value.subarray(0, record.value?.length).equals(record.value as Buffer)).toBe(true);
  });

  it("says no headers were dropped when the event had none ({} as kafkajs gives a record without headers)", () => {
    const value = Buffer.alloc(5_000, "v");
    const noHeaders = letter({ reason: "too_large", value, originalHeaders: {} });
    const record = deadLetterMessage(noHeaders, FAILED_AT, 2_000);
    expect(recordSize(record)).toBeLessThanOrEqual(2_000);
    expect(record.headers[DLQ_HEADERS.truncatedFromBytes]).toBe("5000");
    // Nothing was dropped: no dlq.original.headers.dropped (it says "0" today).
    expect(record.headers).toEqual(deadLetterHeaders({ ...noHeaders, truncatedFromBytes: 5_000 }, FAILED_AT));
  });

  it("keeps the first truncatedFromBytes of a letter already truncated", () => {
    const cut = letter({ reason: "too_large", value: Buffer.alloc(6_000, "v"), truncatedFromBytes: 50_000 });
    const fits = deadLetterMessage(cut, FAILED_AT);
    expect(fits.value?.length).toBe(6_000);
    expect(fits.headers[DLQ_HEADERS.truncatedFromBytes]).toBe("50000");

    const cutAgain = deadLetterMessage(cut, FAILED_AT, 2_000);
    expect(recordSize(cutAgain)).toBeLessThanOrEqual(2_000);
    expect(cutAgain.value?.length).toBeLessThan(6_000);
    expect(cutAgain.headers[DLQ_HEADERS.truncatedFromBytes]).toBe("50000");
  });

  it("measures multi-byte UTF-8 header values in bytes, not characters", () => {
    const euro = "€".repeat(1000); // 1000 characters, 3000 bytes
    expect(Buffer.byteLength(euro)).toBe(3000);
    const multiByte = letter({ originalHeaders: { note: euro } });
    const base = recordSize(deadLetterMessage(letter(), FAILED_AT));
    // Room for 2500 more bytes: the header fits counted in characters (1004), not in bytes (3004).
    const maxBytes = base + 2500;
    const record = deadLetterMessage(multiByte, FAILED_AT, maxBytes);
    expect(record.headers.note).toBeUndefined();
    expect(record.headers[DLQ_HEADERS.originalHeadersDropped]).toBe("1");
    expect(record.value).toEqual(multiByte.value);
    expect(recordSize(record)).toBeLessThanOrEqual(maxBytes);

    // The same header in one-byte characters fits in that room and stays.
    const ascii = letter({ originalHeaders: { note: "e".repeat(1000) } });
    expect(deadLetterMessage(ascii, FAILED_AT, maxBytes).headers.note).toBe("e".repeat(1000));
  });

  it("measures multi-byte detail and key in bytes when cutting the value", () => {
    const value = Buffer.alloc(5_000, "v");
    const wide = letter({
      reason: "too_large",
      detail: "détails: ".repeat(40) + "ü".repeat(200),
      key: Buffer.from("店舗-".repeat(50)),
      value,
    });
    const record = deadLetterMessage(wide, FAILED_AT, 2_500);
    expect(recordSize(record)).toBeLessThanOrEqual(2_500);
    expect(record.headers[DLQ_HEADERS.truncatedFromBytes]).toBe("5000");
  });

  it("defaults maxBytes to the broker's 1 MiB less a margin", () => {
    expect(DEFAULT_DEAD_LETTER_MAX_BYTES).toBe(1024 * 1024 - 4096);
    const value = Buffer.alloc(2 * 1024 * 1024, "v");
    const record = deadLetterMessage(letter({ reason: "too_large", value }), FAILED_AT);
    expect(recordSize(record)).toBeLessThanOrEqual(DEFAULT_DEAD_LETTER_MAX_BYTES);
    expect(record.value?.length).toBeGreaterThan(DEFAULT_DEAD_LETTER_MAX_BYTES - 1024);
    expect(record.headers[DLQ_HEADERS.truncatedFromBytes]).toBe(String(2 * 1024 * 1024));
  });
});
