/**
 * A batch's members in columns (src/batcher/members.ts): what packMembers keeps is what comes back out,
 * offsets exactly (int64), store ids each once.
 */
import { describe, expect, it } from "vitest";
import { memberAt, packMembers, sourceAt, storeIdAt, unpackMembers } from "../../src/batcher/members.ts";
import type { BatchMember } from "../../src/types.ts";

const member = (partition: number, offset: string, storeId: string, timestampMs = 1_735_689_600_000) =>
  ({ source: { topic: "features", partition, offset, timestampMs }, storeId }) satisfies BatchMember;

describe("packMembers", () => {
  it("gives every member back, in order, offsets beyond 2^53 exactly", () => {
    const list = [
      member(0, "0", "CA_1"),
      member(5, "9223372036854775807", "TX_2", 1),
      member(2, "9007199254740993", "CA_1", 1_735_689_600_123),
    ];
    const packed = packMembers(list);
    expect(packed.length).toBe(3);
    expect(packed.topic).toBe("features");
    expect(unpackMembers(packed)).toEqual(list);
    expect(memberAt(packed, 1)).toEqual(list[1]);
    expect(sourceAt(packed, 2)).toEqual(list[2]?.source);
    expect(storeIdAt(packed, 2)).toBe("CA_1");
  });

  it("keeps each store id once, however many events name it", () => {
    const list = Array.from({ length: 1_000 }, (_, i) => member(i % 3, String(i), `S_${i % 7}`));
    const packed = packMembers(list);
    expect(packed.storeIds).toEqual(["S_0", "S_1", "S_2", "S_3", "S_4", "S_5", "S_6"]);
    expect(Array.from(packed.storeIndexes.subarray(0, 8))).toEqual([0, 1, 2, 3, 4, 5, 6, 0]);
    expect(unpackMembers(packed)).toEqual(list);
  });

  it("packs an empty batch, and refuses members of two topics", () => {
    expect(packMembers([]).length).toBe(0);
    expect(unpackMembers(packMembers([]))).toEqual([]);
    const other = { source: { ...member(0, "1", "A").source, topic: "other" }, storeId: "A" };
    expect(() => packMembers([member(0, "0", "A"), other])).toThrow(RangeError);
  });
});
