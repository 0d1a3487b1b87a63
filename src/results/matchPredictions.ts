import type { BatchFile, BatchMember, BatchResult, PredictionRow } from "../types.ts";

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
  const matcher = createFileMatcher(batch);
  return {
    add(row: PredictionRow): MatchedPrediction | undefined {
      if (matcher.finished()) throw new Error("prediction matcher is finished");
      if (baseFileName(row.fileName) !== fileName) {
        matcher.countUnmatched();
        return undefined;
      }
      return matcher.add(row);
    },
    finish: () => matcher.finish(),
  };
}

/** The matcher of one file, for rows already known to name it. */
function createFileMatcher(batch: BatchFile) {
  const members = batch.members;

  // Per store, the member positions in file order, and how many of them rows have claimed so far.
  const queues = new Map<string, StoreQueue>();
  members.forEach((member, index) => {
    const queue = queues.get(member.storeId);
    if (queue === undefined) queues.set(member.storeId, { memberIndexes: [index], next: 0 });
    else queue.memberIndexes.push(index);
  });

  // Per member, its prediction once a row claimed it: typed arrays, not a map entry per row.
  const predictionOf = new Float64Array(members.length);
  const predicted = new Uint8Array(members.length);
  let unmatchedRows = 0;
  let duplicateRows = 0;
  let finished = false;

  /** By position (MLflow): the member at that index, unless out of range or already predicted. */
  const claim = (memberIndex: number, prediction: number): MatchedPrediction | undefined => {
    const member = members[memberIndex];
    if (member === undefined || predicted[memberIndex] === 1) {
      unmatchedRows += 1;
      if (member !== undefined) duplicateRows += 1;
      return undefined;
    }
    predicted[memberIndex] = 1;
    predictionOf[memberIndex] = prediction;
    return { member, memberIndex, prediction };
  };

  return {
    finished: () => finished,
    countUnmatched(): void {
      unmatchedRows += 1;
    },
    add(row: PredictionRow): MatchedPrediction | undefined {
      if (finished) throw new Error("prediction matcher is finished");
      if ("rowIndex" in row) return claim(row.rowIndex, row.prediction);
      // Rows are trimmed by the parser; trim again so a hand-built row matches the same way.
      const queue = queues.get(row.storeId.trim());
      if (queue === undefined) {
        unmatchedRows += 1;
        return undefined;
      }
      const memberIndex = queue.memberIndexes[queue.next];
      if (memberIndex === undefined) {
        unmatchedRows += 1;
        duplicateRows += 1;
        return undefined;
      }
      queue.next += 1;
      predicted[memberIndex] = 1;
      predictionOf[memberIndex] = row.prediction;
      return { member: members[memberIndex] as BatchMember, memberIndex, prediction: row.prediction };
    },

    finish(): MatchResult {
      finished = true;
      const predictions: MatchedPrediction[] = [];
      const missing: MissingPrediction[] = [];
      members.forEach((member, memberIndex) => {
        if (predicted[memberIndex] === 1) {
          predictions.push({ member, memberIndex, prediction: predictionOf[memberIndex] as number });
        } else missing.push({ member, memberIndex });
      });
      return { predictions, missing, unmatchedRows, duplicateRows };
    },
  };
}

/** Matches a whole set of rows at once; see createPredictionMatcher for the incremental form. */
export function matchPredictions(batch: BatchFile, rows: Iterable<PredictionRow>): MatchResult {
  const matcher = createPredictionMatcher(batch);
  for (const row of rows) matcher.add(row);
  return matcher.finish();
}

export interface BatchMatchResult {
  readonly predictions: Extract<BatchResult, { kind: "scored" }>["predictions"];
  readonly missing: Extract<BatchResult, { kind: "scored" }>["missing"];
  readonly unmatchedRows: number;
  readonly duplicateRows: number;
}

/**
 * Matches the rows of a job's predictions.csv to the events of a batch laid out as several files (see
 * planBatchFiles): each row goes to the matcher of the file it names; a row naming no file of the batch
 * is unmatched.
 */
export function createBatchMatcher(files: readonly BatchFile[]) {
  const matchers = new Map<string, ReturnType<typeof createFileMatcher>>();
  for (const file of files) {
    const name = baseFileName(file.fileName);
    if (name === "") throw new TypeError("batch.fileName must name a file");
    matchers.set(name, createFileMatcher(file));
  }
  let rowsOfOtherFiles = 0;
  // Rows of one file mostly come together: the file name as written is looked up once per run of them.
  let lastName: string | undefined;
  let lastMatcher: ReturnType<typeof createFileMatcher> | undefined;
  return {
    add(row: PredictionRow): void {
      if (row.fileName !== lastName) {
        lastName = row.fileName;
        lastMatcher = matchers.get(baseFileName(row.fileName));
      }
      if (lastMatcher) lastMatcher.add(row);
      else rowsOfOtherFiles += 1;
    },
    finish(): BatchMatchResult {
      const predictions: Array<BatchMatchResult["predictions"][number]> = [];
      const missing: Array<BatchMatchResult["missing"][number]> = [];
      let unmatchedRows = rowsOfOtherFiles;
      let duplicateRows = 0;
      for (const [fileName, matcher] of matchers) {
        const result = matcher.finish();
        for (const p of result.predictions)
          predictions.push({ member: p.member, fileName, prediction: p.prediction });
        for (const m of result.missing) missing.push({ member: m.member, fileName });
        unmatchedRows += result.unmatchedRows;
        duplicateRows += result.duplicateRows;
      }
      return { predictions, missing, unmatchedRows, duplicateRows };
    },
  };
}
