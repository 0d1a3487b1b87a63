import { storeIdAt } from "../batcher/members.ts";
import type {
  BatchFile,
  BatchMember,
  BatchMembers,
  BatchResult,
  PredictionRow,
  UploadedFile,
} from "../types.ts";

/**
 * Maps predictions.csv rows back to the events of one batch.
 *
 * Rule: the k-th row for store X in file F is the prediction of the k-th event of store X in the batch
 * whose file is F. Rows of different stores may come in any order (mini-batches finish in any order);
 * rows of one store keep the input file's order, which is what the endpoint promises per file.
 * MLflow output names no store but the row's position in file F: that position is the member's index.
 */

export interface MatchedPrediction {
  readonly member: BatchMember;
  /** Position of the member in the batch (and of its row in the input file). */
  readonly memberIndex: number;
  readonly prediction: number;
}

export interface MissingPrediction {
  readonly member: BatchMember;
  readonly memberIndex: number;
}

export interface MatchResult {
  /** In member order, which is partition-and-offset order within each partition. */
  readonly predictions: MatchedPrediction[];
  /** Members no row was found for, in member order: they become "missing prediction" dead letters. */
  readonly missing: MissingPrediction[];
  /** Rows that matched no member: another file, a store not in the batch, or more rows than members. */
  readonly unmatchedRows: number;
  /**
   * How many of unmatchedRows were extra rows for a store of this batch whose members were all matched
   * already: usually a retried mini-batch that appended its rows twice. The first row wins.
   */
  readonly duplicateRows: number;
}

export interface PredictionMatcher {
  /** Matches one row; returns the match, or undefined when the row matched no member. */
  add(row: PredictionRow): MatchedPrediction | undefined;
  /** Ends the matching: every member not matched by now is missing. Later add() calls throw. */
  finish(): MatchResult;
}

/**
 * The last path segment: predictions.csv may name the file with the folder it was read from
 * (`folder/b-1.json`, or a Windows path on a Windows compute node).
 */
export function baseFileName(fileName: string): string {
  const trimmed = fileName.trim();
  return trimmed.slice(Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\")) + 1);
}

interface StoreQueue {
  readonly memberIndexes: number[];
  next: number;
}

export function createPredictionMatcher(batch: BatchFile): PredictionMatcher {
  const fileName = baseFileName(batch.fileName);
  if (fileName === "") throw new TypeError("batch.fileName must name a file");
  const members = batch.members;
  const matcher = createFileMatcher(members.length, (k) => (members[k] as BatchMember).storeId);
  const matched = (k: number, prediction: number): MatchedPrediction => ({
    member: members[k] as BatchMember,
    memberIndex: k,
    prediction,
  });
  let finished = false;
  return {
    add(row: PredictionRow): MatchedPrediction | undefined {
      if (finished) throw new Error("prediction matcher is finished");
      if (baseFileName(row.fileName) !== fileName) {
        matcher.unmatchedRows += 1;
        return undefined;
      }
      const k = matcher.add(row);
      return k === -1 ? undefined : matched(k, row.prediction);
    },
    finish(): MatchResult {
      finished = true;
      const predictions: MatchedPrediction[] = [];
      const missing: MissingPrediction[] = [];
      for (let k = 0; k < members.length; k++) {
        if (matcher.predicted[k] === 1) predictions.push(matched(k, matcher.values[k] as number));
        else missing.push({ member: members[k] as BatchMember, memberIndex: k });
      }
      return {
        predictions,
        missing,
        unmatchedRows: matcher.unmatchedRows,
        duplicateRows: matcher.duplicateRows,
      };
    },
  };
}

/**
 * The matching of one file's rows, by position in the file (row k of the input file is event k of the file):
 * rows already known to name this file go in, the position each claims comes out (-1: none). Predictions
 * are kept in typed arrays, not an object per row.
 */
function createFileMatcher(count: number, storeIdOf: (k: number) => string) {
  // Per store, the positions in file order, and how many of them rows have claimed so far.
  const queues = new Map<string, StoreQueue>();
  for (let k = 0; k < count; k++) {
    const storeId = storeIdOf(k);
    const queue = queues.get(storeId);
    if (queue === undefined) queues.set(storeId, { memberIndexes: [k], next: 0 });
    else queue.memberIndexes.push(k);
  }
  const state = {
    values: new Float64Array(count),
    predicted: new Uint8Array(count),
    unmatchedRows: 0,
    duplicateRows: 0,
    /** Matches one row; returns the position it claimed, or -1. */
    add(row: PredictionRow): number {
      let k: number | undefined;
      if ("rowIndex" in row) {
        // By position (MLflow): unless out of range or already predicted.
        k = row.rowIndex;
        if (!(k >= 0 && k < count && Number.isInteger(k)) || state.predicted[k] === 1) {
          state.unmatchedRows += 1;
          if (k >= 0 && k < count && Number.isInteger(k)) state.duplicateRows += 1;
          return -1;
        }
      } else {
        // Rows are trimmed by the parser; trim again so a hand-built row matches the same way.
        const queue = queues.get(row.storeId.trim());
        if (queue === undefined) {
          state.unmatchedRows += 1;
          return -1;
        }
        k = queue.memberIndexes[queue.next];
        if (k === undefined) {
          state.unmatchedRows += 1;
          state.duplicateRows += 1;
          return -1;
        }
        queue.next += 1;
      }
      state.predicted[k] = 1;
      state.values[k] = row.prediction;
      return k;
    },
  };
  return state;
}

/** Matches a whole set of rows at once; see createPredictionMatcher for the incremental form. */
export function matchPredictions(batch: BatchFile, rows: Iterable<PredictionRow>): MatchResult {
  const matcher = createPredictionMatcher(batch);
  for (const row of rows) matcher.add(row);
  return matcher.finish();
}

export interface BatchMatchResult {
  /** In member order within each file, file after file. */
  readonly predictions: Extract<BatchResult, { kind: "scored" }>["predictions"];
  readonly missing: Extract<BatchResult, { kind: "scored" }>["missing"];
  readonly unmatchedRows: number;
  readonly duplicateRows: number;
}

/**
 * Matches the rows of a job's predictions.csv to the events of a batch laid out as several files (see
 * planBatchFiles): each row goes to the matcher of the file it names; a row naming no file of the batch
 * is unmatched. Events are named by their index in the batch's members.
 */
export function createBatchMatcher(members: BatchMembers, files: readonly UploadedFile[]) {
  type FileMatcher = ReturnType<typeof createFileMatcher>;
  // A file's matcher is built when its first row comes: a large batch's are not all built in one go.
  const matchers = new Map<string, { readonly file: UploadedFile; matcher?: FileMatcher }>();
  for (const file of files) {
    const name = baseFileName(file.fileName);
    if (name === "") throw new TypeError("batch.fileName must name a file");
    matchers.set(name, { file });
  }
  const matcherOf = (entry: { readonly file: UploadedFile; matcher?: FileMatcher }): FileMatcher => {
    if (entry.matcher === undefined) {
      const indexes = entry.file.memberIndexes;
      entry.matcher = createFileMatcher(indexes.length, (k) => storeIdAt(members, indexes[k] as number));
    }
    return entry.matcher;
  };
  let rowsOfOtherFiles = 0;
  // Rows of one file mostly come together: the file name as written is looked up once per run of them.
  let lastName: string | undefined;
  let lastMatcher: FileMatcher | undefined;
  return {
    add(row: PredictionRow): void {
      if (row.fileName !== lastName) {
        lastName = row.fileName;
        const entry = matchers.get(baseFileName(row.fileName));
        lastMatcher = entry === undefined ? undefined : matcherOf(entry);
      }
      if (lastMatcher) lastMatcher.add(row);
      else rowsOfOtherFiles += 1;
    },
    finish(): BatchMatchResult {
      const predictions: Array<BatchMatchResult["predictions"][number]> = [];
      const missing: Array<BatchMatchResult["missing"][number]> = [];
      let unmatchedRows = rowsOfOtherFiles;
      let duplicateRows = 0;
      for (const [fileName, { file, matcher }] of matchers) {
        const indexes = file.memberIndexes;
        for (let k = 0; k < indexes.length; k++) {
          const memberIndex = indexes[k] as number;
          if (matcher !== undefined && matcher.predicted[k] === 1)
            predictions.push({ memberIndex, fileName, prediction: matcher.values[k] as number });
          else missing.push({ memberIndex, fileName });
        }
        unmatchedRows += matcher?.unmatchedRows ?? 0;
        duplicateRows += matcher?.duplicateRows ?? 0;
      }
      return { predictions, missing, unmatchedRows, duplicateRows };
    },
  };
}
