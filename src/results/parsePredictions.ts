import { parse as parseCsv } from "csv-parse/sync";
import type { PredictionRow } from "../types.ts";

/**
 * Streaming parser for a batch job's predictions.csv.
 *
 * The file is whatever the scoring script's `append_row` produced, so its shape is detected, not assumed
 * (docs/endpoint-contract.md, "Outputs: predictions.csv"): space, comma or tab separated; with or without
 * a header; fields quoted or not; values as Python reprs (`[2.33394885]`); CRLF or LF; blank lines. Every non-blank line
 * yields one result, ok or not, so a bad line costs one prediction and never the rest of the file.
 *
 * The input is split into physical lines here and csv-parse reads each line on its own. Feeding the
 * whole stream to one csv-parse stream instead lets a single stray quote open a field that swallows the
 * following lines (tried: `b.json "CA_2 2.2` ate the next three rows and came out as one "valid" row).
 * No legitimate row spans lines: store ids reject control characters and file names are ours.
 */

export type ParsedPredictionLine =
  | { readonly ok: true; readonly row: PredictionRow; readonly line: number }
  /** `raw` is the line as read, cut to maxRawLength; `line` counts from 1 and includes blank lines. */
  | { readonly ok: false; readonly line: number; readonly reason: string; readonly raw: string };

export type PredictionDelimiter = " " | "," | "\t";

/** Where the three values sit in a line, by field index. */
/** Column positions. A row is identified by storeId, or, in MLflow output, by rowIndex (its position in the file). */
export type PredictionColumns =
  | { readonly fileName: number; readonly storeId: number; readonly prediction: number }
  | { readonly fileName: number; readonly rowIndex: number; readonly prediction: number };

/** What the sniffer decided; handed to onFormat so it can be logged once per file. */
export interface PredictionsFormat {
  readonly delimiter: PredictionDelimiter;
  /** Column names of the header line (lower-cased), or undefined for a headerless file. */
  readonly header: readonly string[] | undefined;
  /** Fields per data line: the header's width, or 3 (file_name store_id prediction) without one. */
  readonly fieldCount: number;
  /** Undefined when rows cannot be matched to events; `problem` then says why. */
  readonly columns: PredictionColumns | undefined;
  readonly problem: string | undefined;
}

export interface ParsePredictionsOptions {
  /** Skip delimiter detection. Default: detected from the first lines. */
  readonly delimiter?: PredictionDelimiter;
  /** Non-blank lines read before deciding the format. Default 20. */
  readonly sniffLines?: number;
  /**
   * Longest line accepted, in characters. A longer line is reported not ok and the rest of it is dropped
   * as it streams by, so a file without newlines cannot grow memory. Default 65536.
   */
  readonly maxLineLength?: number;
  /** Longest `raw` kept in a not-ok result (it ends up in logs and dead letters). Default 256. */
  readonly maxRawLength?: number;
  /** Called once, before the first result, with the detected format. */
  readonly onFormat?: (format: PredictionsFormat) => void;
}

/**
 * Candidates in order of preference on a tie: a file whose lines split into the same fields by comma and
 * by space is a comma file with padding (`b.json, CA_1, 2.3`), since commas and tabs never pad.
 */
const DELIMITERS: readonly PredictionDelimiter[] = ["\t", ",", " "];

/** Header names seen in the wild for each value, lower-cased. MLflow writes `file`, scripts `file_name`. */
const COLUMN_ALIASES = {
  fileName: ["file_name", "filename", "file"],
  storeId: ["store_id", "storeid", "store"],
  rowIndex: ["row", "row_index", "index"],
  prediction: ["prediction", "predictions", "pred"],
} as const satisfies Record<string, readonly string[]>;
const KNOWN_HEADER_NAMES = new Set(["row", ...Object.values(COLUMN_ALIASES).flat()]);

/** A plain decimal number, as Python prints floats and ints (no hex, no `inf`, no `nan`, no empty string). */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Python reprs that wrap a scalar in a call: `np.float64(2.3)`, `array([2.3])`, `tensor([2.3])`. */
const CALL_REPR = /^[A-Za-z_][\w.]*\((.*)\)$/s;

interface PhysicalLine {
  readonly line: number;
  readonly text: string;
  readonly tooLong: boolean;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/**
 * Splits a byte or string stream into lines: LF, CRLF, or a lone CR. Bytes are decoded as UTF-8
 * incrementally, so a character split across chunks survives; invalid bytes become U+FFFD in their line only.
 */
async function* splitLines(
  input: AsyncIterable<Buffer | string | Uint8Array>,
  maxLineLength: number,
): AsyncGenerator<PhysicalLine> {
  const decoder = new TextDecoder("utf-8");
  let pending = "";
  let tooLong = false;
  let lineNumber = 0;

  function* emit(): Generator<PhysicalLine> {
    let text = pending;
    pending = "";
    const wasTooLong = tooLong;
    tooLong = false;
    if (lineNumber === 0 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith("\r")) text = text.slice(0, -1);
    // After CRLF is handled, any CR left is a line break of its own (classic Mac files).
    const parts = wasTooLong ? [text] : text.split("\r");
    for (const part of parts) {
      lineNumber += 1;
      yield { line: lineNumber, text: part, tooLong: wasTooLong };
    }
  }

  function append(segment: string): void {
    if (tooLong) return;
    pending += segment;
    if (pending.length > maxLineLength) {
      // Keep just enough to show in the report; drop the rest of the line as it arrives.
      pending = pending.slice(0, 1024);
      tooLong = true;
    }
  }

  function* consume(text: string): Generator<PhysicalLine> {
    let start = 0;
    for (let newline = text.indexOf("\n"); newline !== -1; newline = text.indexOf("\n", start)) {
      append(text.slice(start, newline));
      yield* emit();
      start = newline + 1;
    }
    append(text.slice(start));
  }

  for await (const chunk of input) {
    yield* consume(typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }));
  }
  yield* consume(decoder.decode());
  if (pending.length > 0 || tooLong) yield* emit();
}

/**
 * One line's fields. csv-parse handles the quoting; with the space delimiter, runs of spaces count as one
 * separator (empty fields dropped). Bracketed reprs split by the delimiter (`[ 2.3]`) are joined again.
 */
function tokenize(text: string, delimiter: PredictionDelimiter): string[] | { error: string } {
  let fields: string[];
  try {
    const records = parseCsv(text.trim(), {
      delimiter,
      quote: '"',
      escape: '"',
      record_delimiter: "\n",
      relax_quotes: true,
      relax_column_count: true,
      skip_empty_lines: true,
      // Space is the delimiter itself in space mode, so only trim around commas and tabs.
      trim: delimiter !== " ",
      bom: false,
    });
    fields = records[0] ?? [];
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    return { error: `malformed quoting${typeof code === "string" ? ` (${code})` : ""}` };
  }
  if (delimiter === " ") fields = fields.filter((field) => field !== "");
  return joinBrackets(fields, delimiter);
}

function joinBrackets(fields: string[], delimiter: PredictionDelimiter): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] ?? "";
    const open = field.startsWith("[") ? "]" : field.startsWith("(") ? ")" : undefined;
    if (open !== undefined && !field.includes(open)) {
      const close = fields.findIndex((candidate, j) => j > i && candidate.includes(open));
      if (close !== -1) {
        out.push(fields.slice(i, close + 1).join(delimiter));
        i = close;
        continue;
      }
    }
    out.push(field);
  }
  return out;
}

/**
 * The number in a prediction field: `2.33`, `[2.33]`, `[[2.33]]`, `(2.33,)`, `np.float64(2.33)`,
 * `'2.33'`. Undefined for anything else, including several values, `nan` and `inf`.
 */
export function parsePredictionValue(field: string): number | undefined {
  let text = field.trim();
  for (let depth = 0; depth < 8; depth++) {
    const call = CALL_REPR.exec(text);
    if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
    else if (text.startsWith("(") && text.endsWith(")")) text = text.slice(1, -1).replace(/,\s*$/, "");
    else if (/^(["']).*\1$/s.test(text) && text.length >= 2) text = text.slice(1, -1);
    else if (call !== null) text = call[1] ?? "";
    else break;
    text = text.trim();
  }
  if (!DECIMAL.test(text)) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

function normaliseName(field: string): string {
  return field.trim().toLowerCase();
}

/** A header line: names we know and no number among them (a data row always carries its prediction). */
function looksLikeHeader(fields: readonly string[]): boolean {
  return (
    fields.some((field) => KNOWN_HEADER_NAMES.has(normaliseName(field))) &&
    fields.every((field) => parsePredictionValue(field) === undefined)
  );
}

function columnsFromHeader(header: readonly string[]): PredictionColumns | string {
  const find = (key: keyof typeof COLUMN_ALIASES) =>
    header.findIndex((name) => (COLUMN_ALIASES[key] as readonly string[]).includes(name));
  const fileName = find("fileName");
  const storeId = find("storeId");
  const rowIndex = find("rowIndex");
  const prediction = find("prediction");
  // MLflow: no store_id, but the row's position in the input file.
  if (storeId === -1 && rowIndex !== -1 && fileName !== -1 && prediction !== -1) {
    return { fileName, rowIndex, prediction };
  }
  const absent = [
    storeId === -1 ? "store_id (or row)" : undefined,
    fileName === -1 ? "file_name" : undefined,
    prediction === -1 ? "prediction" : undefined,
  ].filter((name) => name !== undefined);
  if (absent.length > 0) {
    return `header (${header.join(", ")}) has no ${absent.join(" or ")} column: rows cannot be matched to events`;
  }
  return { fileName, storeId, prediction };
}

const POSITIONAL: PredictionColumns = Object.freeze({ fileName: 0, storeId: 1, prediction: 2 });
const MLFLOW_POSITIONAL: PredictionColumns = Object.freeze({ rowIndex: 0, prediction: 1, fileName: 2 });

function detectFormat(sample: readonly string[], forced: PredictionDelimiter | undefined): PredictionsFormat {
  interface Candidate {
    readonly delimiter: PredictionDelimiter;
    readonly header: string[] | undefined;
    readonly rows: string[][];
    readonly agreeing: number;
  }
  const candidates: Candidate[] = [];
  for (const delimiter of forced !== undefined ? [forced] : DELIMITERS) {
    const parsed = sample.map((text) => tokenize(text, delimiter)).filter((f) => Array.isArray(f));
    const first = parsed[0];
    const header = first !== undefined && looksLikeHeader(first) ? first.map(normaliseName) : undefined;
    const rows = header !== undefined ? parsed.slice(1) : parsed;
    const width = header?.length ?? 3;
    const agreeing = rows.filter((fields) => fields.length === width).length;
    candidates.push({ delimiter, header, rows, agreeing });
  }
  // A recognised header is the strongest evidence, then how many lines have the expected width; ties go
  // to the order of DELIMITERS. With no evidence at all, space: the guide's format.
  const rank = (c: Candidate) => (c.header !== undefined && c.header.length > 1 ? 1e9 : 0) + c.agreeing;
  const best = candidates.reduce((a, b) => (rank(b) > rank(a) ? b : a));
  if (rank(best) === 0 && forced === undefined) {
    return { delimiter: " ", header: undefined, fieldCount: 3, columns: POSITIONAL, problem: undefined };
  }

  if (best.header !== undefined) {
    const shape = { delimiter: best.delimiter, header: best.header, fieldCount: best.header.length };
    const columns = columnsFromHeader(best.header);
    return typeof columns === "string"
      ? { ...shape, columns: undefined, problem: columns }
      : { ...shape, columns, problem: undefined };
  }
  const shape = { delimiter: best.delimiter, header: undefined, fieldCount: 3 };
  // Headerless MLflow output is `row prediction file`: an index, a number, a name.
  const mlflowLike = best.rows.filter(
    (f) =>
      f.length === 3 &&
      /^\d+$/.test(f[0] ?? "") &&
      parsePredictionValue(f[1] ?? "") !== undefined &&
      parsePredictionValue(f[2] ?? "") === undefined,
  ).length;
  if (mlflowLike > 0 && mlflowLike * 2 > best.rows.length) {
    return { ...shape, columns: MLFLOW_POSITIONAL, problem: undefined };
  }
  return { ...shape, columns: POSITIONAL, problem: undefined };
}

function interpret(
  physical: PhysicalLine,
  format: PredictionsFormat,
  maxLineLength: number,
  maxRawLength: number,
): ParsedPredictionLine | undefined {
  const { line, text } = physical;
  const fail = (reason: string): ParsedPredictionLine => ({
    ok: false,
    line,
    reason,
    raw: truncate(text, maxRawLength),
  });
  if (physical.tooLong) return fail(`line longer than ${maxLineLength} characters`);
  if (text.trim() === "") return undefined;

  const fields = tokenize(text, format.delimiter);
  if (!Array.isArray(fields)) return fail(fields.error);
  // The header itself, or a header repeated by a script that writes one per mini-batch: not a row.
  if (looksLikeHeader(fields)) return undefined;
  if (format.columns === undefined) return fail(format.problem ?? "rows cannot be matched to events");
  if (fields.length !== format.fieldCount) {
    const expected = format.header?.join(format.delimiter) ?? "file_name store_id prediction";
    return fail(`expected ${format.fieldCount} fields (${expected}), got ${fields.length}`);
  }
  const columns = format.columns;
  const fileName = (fields[columns.fileName] ?? "").trim();
  const predictionField = fields[columns.prediction] ?? "";
  if (fileName === "") return fail("file_name is empty");
  const prediction = parsePredictionValue(predictionField);
  if (prediction === undefined) {
    return fail(`prediction ${JSON.stringify(truncate(predictionField, 40))} is not a finite number`);
  }
  if ("rowIndex" in columns) {
    const rowField = (fields[columns.rowIndex] ?? "").trim();
    if (!/^\d{1,9}$/.test(rowField))
      return fail(`row ${JSON.stringify(truncate(rowField, 40))} is not an index`);
    return { ok: true, line, row: { fileName, rowIndex: Number(rowField), prediction } };
  }
  const storeId = (fields[columns.storeId] ?? "").trim();
  if (storeId === "") return fail("store_id is empty");
  return { ok: true, line, row: { fileName, storeId, prediction } };
}

/**
 * Parses predictions.csv as it streams in. Yields one result per non-blank, non-header line, in file order.
 * Never throws because of the content; errors of the input stream itself propagate.
 */
export async function* parsePredictions(
  input: AsyncIterable<Buffer | string> | NodeJS.ReadableStream,
  options: ParsePredictionsOptions = {},
): AsyncGenerator<ParsedPredictionLine, void, undefined> {
  if (options.delimiter !== undefined && !DELIMITERS.includes(options.delimiter)) {
    throw new RangeError(`delimiter must be " ", "," or "\\t", got ${JSON.stringify(options.delimiter)}`);
  }
  const sniffLines = positiveInteger("sniffLines", options.sniffLines, 20);
  const maxLineLength = positiveInteger("maxLineLength", options.maxLineLength, 65_536);
  const maxRawLength = positiveInteger("maxRawLength", options.maxRawLength, 256);

  const lines = splitLines(input as AsyncIterable<Buffer | string>, maxLineLength);
  try {
    // Read ahead far enough to decide the format, then replay those lines before streaming the rest.
    const sample: PhysicalLine[] = [];
    let nonBlank = 0;
    let exhausted = false;
    // Bounded in physical lines too, so a file of blank or over-long lines is not buffered whole.
    while (nonBlank < sniffLines && sample.length < sniffLines + 1_000) {
      const next = await lines.next();
      if (next.done === true) {
        exhausted = true;
        break;
      }
      sample.push(next.value);
      if (!next.value.tooLong && next.value.text.trim() !== "") nonBlank += 1;
    }
    const format = detectFormat(
      sample.filter((l) => !l.tooLong && l.text.trim() !== "").map((l) => l.text),
      options.delimiter,
    );
    options.onFormat?.(format);

    for (const physical of sample) {
      const result = interpret(physical, format, maxLineLength, maxRawLength);
      if (result !== undefined) yield result;
    }
    while (!exhausted) {
      const next = await lines.next();
      if (next.done === true) break;
      const result = interpret(next.value, format, maxLineLength, maxRawLength);
      if (result !== undefined) yield result;
    }
  } finally {
    // Stops reading (and, for a Node stream, destroys it) when the caller breaks out early.
    await lines.return(undefined);
  }
}
