/**
 * kafkajs's read_committed filter walks a fetch's aborted-transaction list as if sorted by first offset; the
 * broker does not sort it. With the fix loaded first, records of every aborted transaction are dropped,
 * whatever the list's order: two producers' aborted transactions interleaved on one partition here.
 */
import "../../src/kafka/abortedTransactionsOrder.ts";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { abortedTransactionsOrdered } from "../../src/kafka/abortedTransactionsOrder.ts";

const require = createRequire(import.meta.url);
const filter = require("kafkajs/src/consumer/filterAbortedMessages.js") as (input: {
  messages: unknown[];
  abortedTransactions: Array<{ firstOffset: string; producerId: string }>;
}) => Array<{ offset: string }>;

const ABORT_KEY = Buffer.from([0, 0, 0, 0]);
const record = (offset: number, producerId: string) => ({
  offset: String(offset),
  key: Buffer.from("k"),
  batchContext: { producerId, inTransaction: true },
});
const abortMarker = (offset: number, producerId: string) => ({
  offset: String(offset),
  key: ABORT_KEY,
  isControlRecord: true,
  batchContext: { producerId, inTransaction: true },
});

describe("kafkajs read_committed filter, fixed", () => {
  it("is in place when loaded before kafkajs", () => {
    expect(abortedTransactionsOrdered()).toBe(true);
  });

  it("drops every aborted transaction's records, however the broker ordered the list", () => {
    // X aborted over 10..50, Y aborted over 20..30; the broker lists Y first (it orders by last offset).
    const messages = [
      record(10, "X"),
      record(15, "Z"),
      record(20, "Y"),
      record(25, "X"),
      abortMarker(30, "Y"),
      record(40, "Z"),
      abortMarker(50, "X"),
      record(60, "X"),
    ];
    const kept = filter({
      messages,
      abortedTransactions: [
        { firstOffset: "20", producerId: "Y" },
        { firstOffset: "10", producerId: "X" },
      ],
    });
    expect(kept.map((m) => m.offset).filter((o) => o !== "30" && o !== "50")).toEqual(["15", "40", "60"]);
  });
});
