import { describe, expect, it } from "vitest";
import {
  baseFileName,
  createPredictionMatcher,
  matchPredictions,
} from "../../src/results/matchPredictions.ts";
import type { BatchMember, PredictionRow } from "../../src/types.ts";

function members(...storeIds: string[]): BatchMember[] {
  return storeIds.map((storeId, i) => ({
    storeId,
    source: { topic: "features", partition: i % 2, offset: String(100 + i), timestampMs: 0 },
  }));
}

function row(storeId: string, prediction: number, fileName = "b-1.json"): PredictionRow {
  return { fileName, storeId, prediction };
}

/** [memberIndex, prediction] pairs: the whole outcome at a glance. */
function pairs(result: ReturnType<typeof matchPredictions>) {
  return result.predictions.map((p) => [p.memberIndex, p.prediction]);
}

describe("matchPredictions", () => {
  const batch = { fileName: "b-1.json", members: members("CA_1", "TX_1", "CA_1", "WI_3", "CA_1") };

  it("maps the k-th row of a store to the k-th member of that store", () => {
    const result = matchPredictions(batch, [
      row("CA_1", 1),
      row("TX_1", 2),
      row("CA_1", 3),
      row("WI_3", 4),
      row("CA_1", 5),
    ]);
    expect(pairs(result)).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 5],
    ]);
    expect(result.predictions[2]?.member).toBe(batch.members[2]);
    expect(result).toMatchObject({ missing: [], unmatchedRows: 0, duplicateRows: 0 });
  });

  it("tolerates rows reordered across stores", () => {
    const result = matchPredictions(batch, [
      row("WI_3", 4),
      row("CA_1", 1),
      row("CA_1", 3),
      row("TX_1", 2),
      row("CA_1", 5),
    ]);
    expect(pairs(result)).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 5],
    ]);
  });

  it("reports members without a row as missing, in member order", () => {
    const result = matchPredictions(batch, [row("CA_1", 1), row("WI_3", 4)]);
    expect(pairs(result)).toEqual([
      [0, 1],
      [3, 4],
    ]);
    expect(result.missing.map((m) => [m.memberIndex, m.member.storeId])).toEqual([
      [1, "TX_1"],
      [2, "CA_1"],
      [4, "CA_1"],
    ]);
    expect(result.missing[0]?.member).toBe(batch.members[1]);
  });

  it("counts rows of another file, unknown stores and extra occurrences as unmatched", () => {
    const result = matchPredictions(batch, [
      row("CA_1", 1),
      row("CA_1", 9, "b-2.json"), // another batch's file
      row("NY_9", 9), // not in this batch
      row("TX_1", 2),
      row("TX_1", 8), // TX_1 has one member only
      row("WI_3", 4),
      row("WI_3", 7),
    ]);
    expect(pairs(result)).toEqual([
      [0, 1],
      [1, 2],
      [3, 4],
    ]);
    expect(result.unmatchedRows).toBe(4);
    expect(result.duplicateRows).toBe(2);
    expect(result.missing.map((m) => m.memberIndex)).toEqual([2, 4]);
  });

  it("keeps the first row when a mini-batch's rows were appended twice", () => {
    const twice = [row("CA_1", 1), row("TX_1", 2), row("CA_1", 3), row("WI_3", 4), row("CA_1", 5)];
    const result = matchPredictions(batch, [...twice, ...twice.map((r) => ({ ...r, prediction: -1 }))]);
    expect(pairs(result).map((p) => p[1])).toEqual([1, 2, 3, 4, 5]);
    expect(result.unmatchedRows).toBe(5);
    expect(result.duplicateRows).toBe(5);
  });

  it("compares file names without their folder", () => {
    const result = matchPredictions(batch, [
      row("CA_1", 1, "inputs/2024/b-1.json"),
      row("TX_1", 2, "C:\\mnt\\batch\\b-1.json"),
      row("CA_1", 3, "azureml://datastores/in/paths/b-1.json"),
      row("WI_3", 4, "b-1.json.bak"),
      row("CA_1", 5, "xb-1.json"),
    ]);
    expect(pairs(result)).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    expect(result.unmatchedRows).toBe(2);
    expect(
      matchPredictions({ fileName: "some/dir/b-1.json", members: members("A") }, [row("A", 1)]).missing,
    ).toEqual([]);
  });

  it("matches store ids exactly (case-sensitive), ignoring surrounding whitespace", () => {
    const result = matchPredictions({ fileName: "b-1.json", members: members("CA_1") }, [
      row("ca_1", 1),
      row(" CA_1 ", 2),
    ]);
    expect(pairs(result)).toEqual([[0, 2]]);
    expect(result.unmatchedRows).toBe(1);
  });

  it("handles an empty batch and an empty file", () => {
    expect(matchPredictions({ fileName: "b.json", members: [] }, [row("A", 1, "b.json")])).toEqual({
      predictions: [],
      missing: [],
      unmatchedRows: 1,
      duplicateRows: 0,
    });
    const all = matchPredictions(batch, []);
    expect(all.missing).toHaveLength(5);
    expect(all.predictions).toEqual([]);
  });

  it("keeps a prediction of zero (not mistaken for missing)", () => {
    const result = matchPredictions({ fileName: "b.json", members: members("A") }, [row("A", 0, "b.json")]);
    expect(pairs(result)).toEqual([[0, 0]]);
    expect(result.missing).toEqual([]);
  });
});

describe("createPredictionMatcher", () => {
  it("matches incrementally, returning each match as it happens", () => {
    const batch = { fileName: "b-7.json", members: members("A", "B", "A") };
    const matcher = createPredictionMatcher(batch);
    expect(matcher.add(row("A", 1, "b-7.json"))).toEqual({
      member: batch.members[0],
      memberIndex: 0,
      prediction: 1,
    });
    expect(matcher.add(row("A", 2, "b-7.json"))?.memberIndex).toBe(2);
    expect(matcher.add(row("A", 3, "b-7.json"))).toBeUndefined();
    expect(matcher.add(row("B", 4, "other.json"))).toBeUndefined();
    const result = matcher.finish();
    expect(result.missing.map((m) => m.memberIndex)).toEqual([1]);
    expect(result.unmatchedRows).toBe(2);
    expect(result.duplicateRows).toBe(1);
    expect(() => matcher.add(row("B", 5, "b-7.json"))).toThrow("finished");
  });

  it("rejects a batch without a file name", () => {
    expect(() => createPredictionMatcher({ fileName: "dir/", members: [] })).toThrow(TypeError);
  });

  it("scales to large batches", () => {
    const storeIds = Array.from({ length: 20_000 }, (_, i) => `S${i % 500}`);
    const batch = { fileName: "b.json", members: members(...storeIds) };
    // Stores in reverse order, each store's rows in file order: reordered the way mini-batches reorder.
    const byStore = new Map<string, PredictionRow[]>();
    storeIds.forEach((s, i) => {
      byStore.set(s, [...(byStore.get(s) ?? []), row(s, i, "b.json")]);
    });
    const rows = [...byStore.values()].reverse().flat();
    const result = matchPredictions(batch, rows);
    expect(result.predictions).toHaveLength(20_000);
    expect(result.predictions.every((p) => p.prediction === p.memberIndex)).toBe(true);
  });
});

describe("baseFileName", () => {
  it.each([
    ["b-1.json", "b-1.json"],
    ["a/b/b-1.json", "b-1.json"],
    ["a\\b-1.json", "b-1.json"],
    [" b-1.json ", "b-1.json"],
    ["dir/", ""],
  ])("%j -> %j", (input, output) => {
    expect(baseFileName(input)).toBe(output);
  });

  it("matches MLflow rows by their position in the input file", () => {
    const batch = { fileName: "b-9.json", members: members("CA_1", "CA_1", "TX_1") };
    const result = matchPredictions(batch, [
      { fileName: "b-9.json", rowIndex: 2, prediction: 3 },
      { fileName: "b-9.json", rowIndex: 0, prediction: 1 },
      { fileName: "b-9.json", rowIndex: 0, prediction: 9 },
      { fileName: "b-9.json", rowIndex: 7, prediction: 9 },
      { fileName: "other.json", rowIndex: 1, prediction: 9 },
    ]);
    expect(result.predictions.map((p) => [p.memberIndex, p.prediction])).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(result.missing.map((m) => m.memberIndex)).toEqual([1]);
    expect(result.unmatchedRows).toBe(3);
    expect(result.duplicateRows).toBe(1);
  });
});
