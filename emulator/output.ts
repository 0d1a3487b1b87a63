/**
 * Renders predictions.csv. The default is the guide's shape (`file_name store_id prediction`, space-separated, no
 * header, \n endings); a job's fault plan can drop rows (failed mini-batches), append junk lines, or change the shape
 * to the other shapes seen in the wild (comma or tab, header, Python reprs, quotes, CRLF, shuffled, MLflow columns).
 * Pure: the same rows and plan always give the same text.
 */
import type { JobFaultPlan } from "./faults.ts";
import { formatPrediction } from "./formula.ts";
import { createRandom, deriveSeed, type Random } from "./prng.ts";

export interface ScoredRow {
  readonly fileName: string;
  readonly indexInFile: number;
  readonly storeId: string;
  readonly prediction: number;
}

export interface RenderedPredictions {
  readonly text: string;
  /** Prediction rows written (junk lines and header not included). */
  readonly rowsWritten: number;
}

export function renderPredictions(
  rows: readonly ScoredRow[],
  plan: Pick<JobFaultPlan, "missingRows" | "malformedRows" | "outputShape" | "rowSeed">,
): RenderedPredictions {
  const shape = plan.outputShape ?? {};
  const mlflow = shape.mlflow === true;
  const delimiter = shape.delimiter ?? (mlflow ? "," : " ");
  const header = shape.header ?? mlflow;
  const eol = shape.crlf === true ? "\r\n" : "\n";
  const field = (value: string): string =>
    shape.quoted === true ? `"${value.replaceAll('"', '""')}"` : value;
  const predictionText = (value: number): string =>
    shape.bracketed === true ? `[${formatPrediction(value)}]` : formatPrediction(value);
  const line = (fields: readonly string[]): string => fields.map(field).join(delimiter) + eol;

  let kept = dropRows(rows, plan.missingRows, createRandom(deriveSeed(plan.rowSeed, "missingRows")));
  if (shape.shuffle === true) kept = shuffle(kept, createRandom(deriveSeed(plan.rowSeed, "shuffle")));

  let text = "";
  if (header)
    text += line(mlflow ? ["row", "prediction", "file_name"] : ["file_name", "store_id", "prediction"]);
  for (const row of kept) {
    text += line(
      mlflow
        ? [String(row.indexInFile), predictionText(row.prediction), row.fileName]
        : [row.fileName, row.storeId, predictionText(row.prediction)],
    );
  }
  const junkFile = rows[0]?.fileName ?? "unknown.json";
  for (let k = 0; k < (plan.malformedRows ?? 0); k++) {
    text += junkLine(k, junkFile, mlflow, delimiter, field) + eol;
  }
  return { text, rowsWritten: kept.length };
}

/** Rows N, 2N, ... (1-based, across the whole file) and/or each row with probability `rate`. */
function dropRows(
  rows: readonly ScoredRow[],
  missing: JobFaultPlan["missingRows"],
  random: Random,
): readonly ScoredRow[] {
  if (missing === undefined) return rows;
  return rows.filter((_, i) => {
    const everyHit = missing.every !== undefined && (i + 1) % missing.every === 0;
    // Draw for every row, hit or not, so the rate's choices do not depend on `every`.
    const rateHit = missing.rate !== undefined && missing.rate > 0 && random() < missing.rate;
    return !(everyHit || rateHit);
  });
}

/** Fisher-Yates; if the draw happens to keep the order, rotate by one so a shuffle is always observable. */
function shuffle(rows: readonly ScoredRow[], random: Random): readonly ScoredRow[] {
  const out = [...rows];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as ScoredRow, out[i] as ScoredRow];
  }
  if (out.length > 1 && out.every((row, i) => row === rows[i])) out.push(out.shift() as ScoredRow);
  return out;
}

/** Junk in turn: a bare word, a row whose prediction is not a number, a row with too few fields. */
function junkLine(
  k: number,
  fileName: string,
  mlflow: boolean,
  delimiter: string,
  field: (value: string) => string,
): string {
  const join = (fields: string[]): string => fields.map(field).join(delimiter);
  switch (k % 3) {
    case 0:
      return "garbage";
    case 1:
      return join(
        mlflow ? [`junk-${k}`, "not-a-number", fileName] : [fileName, `MALFORMED_${k}`, "not-a-number"],
      );
    default:
      return join(mlflow ? [`junk-${k}`] : [fileName, `MALFORMED_${k}`]);
  }
}
