import type { BatchMember, FeatureRow } from "../types.ts";
import { joinSerializedRows, serializeBatch } from "./policy.ts";

/** One input file of a batch: its name and the positions, in the batch, of the events it holds. */
export interface BatchFilePlan {
  readonly fileName: string;
  readonly memberIndexes: readonly number[];
}

/**
 * Lays a batch out as input files in which each store appears at most once: file k holds every store's
 * k-th event, in batch order. predictions.csv names a row only by (file_name, store_id), so this makes a
 * row point at exactly one event, however the endpoint reorders or drops rows. All files go in the batch's
 * own folder, which is the job's input: still one job per batch. A batch of distinct stores is one file.
 */
export function planBatchFiles(batchId: string, members: readonly BatchMember[]): BatchFilePlan[] {
  const files: number[][] = [];
  const seen = new Map<string, number>();
  members.forEach((member, index) => {
    const k = seen.get(member.storeId) ?? 0;
    seen.set(member.storeId, k + 1);
    const file = files[k];
    if (file) file.push(index);
    else files[k] = [index];
  });
  return files.map((memberIndexes, k) => ({ fileName: `${batchId}-${k}.json`, memberIndexes }));
}

/** The JSON file of one planned file: the rows at its member positions. */
export function serializeBatchFile(
  rows: readonly FeatureRow[],
  file: BatchFilePlan,
  rowJson?: readonly string[],
): Buffer {
  if (rowJson !== undefined) return joinSerializedRows(file.memberIndexes.map((i) => rowJson[i] as string));
  return serializeBatch(file.memberIndexes.map((i) => rows[i] as FeatureRow));
}
