import type { BatchMember } from "../types.ts";
import { joinSerializedRows } from "./policy.ts";

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
  return runSteps(planBatchFilesStepwise(batchId, members, Number.POSITIVE_INFINITY));
}

/**
 * planBatchFiles a slice of `sliceSize` events at a time: the generator yields between slices (so its driver
 * can give the event loop a turn, src/pipeline/batchJob.ts) and returns the plan.
 */
export function* planBatchFilesStepwise(
  batchId: string,
  members: readonly BatchMember[],
  sliceSize: number,
): Generator<void, BatchFilePlan[]> {
  const files: number[][] = [];
  const seen = new Map<string, number>();
  for (let index = 0; index < members.length; index++) {
    if (index > 0 && index % sliceSize === 0) yield;
    const storeId = (members[index] as BatchMember).storeId;
    const k = seen.get(storeId) ?? 0;
    seen.set(storeId, k + 1);
    const file = files[k];
    if (file) file.push(index);
    else files[k] = [index];
  }
  return files.map((memberIndexes, k) => ({ fileName: `${batchId}-${k}.json`, memberIndexes }));
}

/** Runs a stepwise generator to its end at once. */
export function runSteps<T>(steps: Generator<void, T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/** The JSON file of one planned file: the rows (as serialised: SealedBatch.rowJson) at its member positions. */
export function serializeBatchFile(rowJson: readonly string[], file: BatchFilePlan): Buffer {
  return joinSerializedRows(file.memberIndexes.map((i) => rowJson[i] as string));
}

/**
 * The same bytes as serializeBatchFile, as pieces of at most `sliceRows` rows each (concatenated, they are the
 * file): a file of a million rows is written a slice at a time, the event loop getting turns in between.
 */
export function* serializeBatchFileSlices(
  rowJson: readonly string[],
  file: BatchFilePlan,
  sliceRows: number,
): Generator<Buffer> {
  const indexes = file.memberIndexes;
  if (indexes.length === 0) {
    yield Buffer.from("[]");
    return;
  }
  for (let from = 0; from < indexes.length; from += sliceRows) {
    const to = Math.min(indexes.length, from + sliceRows);
    const parts: string[] = [];
    for (let j = from; j < to; j++) parts.push(rowJson[indexes[j] as number] as string);
    yield Buffer.from(
      `${from === 0 ? "[" : ","}${parts.join(",")}${to === indexes.length ? "]" : ""}`,
      "utf8",
    );
  }
}
