import { describe, expect, it } from "vitest";
import {
  type BatchFilePlan,
  planBatchFiles,
  planBatchFilesStepwise,
  runSteps,
  serializeBatch,
  serializeBatchFile,
  serializeBatchFileSlices,
  serializeRow,
} from "../../src/batcher/index.ts";
import type { BatchMember, FeatureRow } from "../../src/types.ts";

function members(...storeIds: string[]): BatchMember[] {
  return storeIds.map((storeId, i) => ({
    source: { topic: "t", partition: 0, offset: String(i), timestampMs: 0 },
    storeId,
  }));
}

describe("planBatchFiles", () => {
  it("puts each store at most once per file: file k holds every store's k-th event, in batch order", () => {
    const plan = planBatchFiles("b-1", members("CA_1", "TX_1", "CA_1", "WI_3", "CA_1", "TX_1"));
    expect(plan).toEqual([
      { fileName: "b-1-0.json", memberIndexes: [0, 1, 3] },
      { fileName: "b-1-1.json", memberIndexes: [2, 5] },
      { fileName: "b-1-2.json", memberIndexes: [4] },
    ]);
  });

  it("makes one file of a batch of distinct stores, and none of an empty batch", () => {
    expect(planBatchFiles("b-2", members("A", "B", "C"))).toEqual([
      { fileName: "b-2-0.json", memberIndexes: [0, 1, 2] },
    ]);
    expect(planBatchFiles("b-3", [])).toEqual([]);
  });

  it("covers every member exactly once", () => {
    const stores = Array.from({ length: 500 }, (_, i) => `S${(i * 7919) % 37}`);
    const plan = planBatchFiles("b-4", members(...stores));
    const covered = plan.flatMap((f) => f.memberIndexes).sort((a, b) => a - b);
    expect(covered).toEqual(stores.map((_, i) => i));
    for (const file of plan) {
      const inFile = file.memberIndexes.map((i) => stores[i]);
      expect(new Set(inFile).size).toBe(inFile.length);
    }
  });

  it("serializes a planned file from the batch's rows (as serialised) at its positions", () => {
    const rows: FeatureRow[] = [
      { store_id: "A", features: [1] },
      { store_id: "A", features: [2] },
      { store_id: "B", features: [3] },
    ];
    const json = rows.map(serializeRow);
    const [first, second] = planBatchFiles("b-5", members("A", "A", "B"));
    expect(JSON.parse(serializeBatchFile(json, first as BatchFilePlan).toString())).toEqual([
      rows[0],
      rows[2],
    ]);
    expect(JSON.parse(serializeBatchFile(json, second as BatchFilePlan).toString())).toEqual([rows[1]]);
  });

  it("writes the same bytes as serializeBatch of the file's rows, whole or a slice at a time, for any slice size", () => {
    const stores = ["A", "B", "A", "C", "A", "B", "é", "A"];
    const rows: FeatureRow[] = stores.map((store_id, i) => ({ store_id, features: [i, i / 3, -0] }));
    const json = rows.map((r) => JSON.stringify({ store_id: r.store_id, features: r.features }));
    for (const file of planBatchFiles("b-6", members(...stores))) {
      const whole = serializeBatch(file.memberIndexes.map((i) => rows[i] as FeatureRow));
      expect(serializeBatchFile(json, file)).toEqual(whole);
      for (const slice of [1, 2, 3, 100]) {
        expect(Buffer.concat([...serializeBatchFileSlices(json, file, slice)])).toEqual(whole);
      }
    }
    expect(
      Buffer.concat([...serializeBatchFileSlices(json, { fileName: "e", memberIndexes: [] }, 2)]).toString(),
    ).toBe("[]");
  });

  it("plans the same files a slice at a time, yielding between slices", () => {
    const list = members(...Array.from({ length: 50 }, (_, i) => `S_${i % 7}`));
    const steps = planBatchFilesStepwise("b-7", list, 8);
    let yields = 0;
    let step = steps.next();
    while (step.done !== true) {
      yields += 1;
      step = steps.next();
    }
    expect(yields).toBe(6); // after events 8, 16, ..., 48
    expect(step.value).toEqual(planBatchFiles("b-7", list));
    expect(runSteps(planBatchFilesStepwise("b-7", list, 1))).toEqual(planBatchFiles("b-7", list));
  });
});
