import { parse as parseCsv } from "csv-parse/sync";
import type { PredictionRow } from "../types.ts";

/**
 * Streaming parser for a batch job's predictions.csv.
 *
 * The file is whatever the scoring script's `append_row` produced, so its shape is detected, not assumed
 * (docs/endpoint-contract.md, "Outputs: predictions.csv"): space, comma or tab separated; with or without
 * a header; fields quoted or not; values as Python reprs (`[2.33394885]`); LF, CRLF or CR line ends; blank
 * lines. Every non-blank line yields one result, ok or not, so a bad line costs one prediction and never the
 * rest of the file.
 *
 * The input is split into physical lines here and each line is read on its own: lines whose quotes
 * wrap whole fields by a plain split that gives what csv-parse gives them (splitPlain), the others by csv-parse. Feeding the
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
 * Candidates, in order of preference on a tie (see detectFormat for what is compared first). A padded comma
 * file (`b.json, CA_1, 2.3`) splits into three fields by space too, but its space reading has file names
 * ending in a comma, which ours never have, so it loses before the tie. What is still tied after that is a
 * line both readings make valid rows of, such as `b.json ,A, 2.3`: a space file whose store id `,A,` holds
 * commas (the validator allows them, but not whitespace), or a comma file padded on one side of its first
 * comma and the other side of its second, which no writer does; so space goes before comma.
 */
const DELIMITERS: readonly PredictionDelimiter[] = ["\t", " ", ","];

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

/** Called for each physical line: its number (from 1, blank lines included), its text, whether it was cut. */
type LineSink = (line: number, text: string, tooLong: boolean) => void;

interface LineSplitter {
  /** Splits more text; complete lines go to the sink at once. */
  feed(text: string): void;
  /** The input ended: a last line without a line end goes to the sink. */
  end(): void;
}

/**
 * Splits text fed in pieces into lines. LF, CRLF and a lone CR each end a line, wherever the pieces break (a
 * CR at the end of a piece and an LF at the start of the next are one line end). A line's length is counted
 * without its line end; one leading BOM of the stream is dropped and never counts either. What comes out does
 * not depend on where the pieces break. Synchronous and callback-driven, so a line costs no promise.
 */
function createLineSplitter(maxLineLength: number, maxRawLength: number, sink: LineSink): LineSplitter {
  /** What an over-long line keeps: enough for its `raw` (maxRawLength and the one that says it goes on). */
  const keep = maxRawLength + 1;
  let atStart = true;
  let pending = "";
  let tooLong = false;
  /** The last piece ended with a CR: an LF starting the next one belongs to it. */
  let skipLF = false;
  let lineNumber = 0;

  function emit(): void {
    lineNumber += 1;
    const text = pending;
    const cut = tooLong;
    pending = "";
    tooLong = false;
    sink(lineNumber, text, cut);
  }

  /** Adds text[from, to) to the current line. An over-long line keeps only its first `keep` characters. */
  function append(text: string, from: number, to: number): void {
    if (from === to) return;
    if (!tooLong && pending.length + (to - from) <= maxLineLength) {
      pending = pending.length === 0 ? text.slice(from, to) : pending + text.slice(from, to);
      return;
    }
    // Keep just what the report shows, the same characters however the line arrived; drop the rest.
    tooLong = true;
    if (pending.length >= keep) {
      if (pending.length > keep) pending = pending.slice(0, keep);
      return;
    }
    pending += text.slice(from, Math.min(to, from + keep - pending.length));
  }

  return {
    feed(text: string): void {
      const length = text.length;
      if (length === 0) return;
      let start = 0;
      if (atStart) {
        atStart = false;
        if (text.charCodeAt(0) === 0xfeff) start = 1;
      }
      if (skipLF) {
        skipLF = false;
        if (text.charCodeAt(start) === 0x0a) start += 1;
      }
      let lf = text.indexOf("\n", start);
      let cr = text.indexOf("\r", start);
      while (lf !== -1 || cr !== -1) {
        const lineStart = start;
        let end: number;
        if (cr !== -1 && (lf === -1 || cr < lf)) {
          end = cr;
          if (cr + 1 === length) skipLF = true;
          start = text.charCodeAt(cr + 1) === 0x0a ? cr + 2 : cr + 1;
        } else {
          end = lf;
          start = lf + 1;
        }
        if (lf !== -1 && lf < start) lf = text.indexOf("\n", start);
        if (cr !== -1 && cr < start) cr = text.indexOf("\r", start);
        append(text, lineStart, end);
        emit();
      }
      append(text, start, length);
    },
    end(): void {
      if (pending.length > 0 || tooLong) emit();
    },
  };
}

/**
 * A non-ASCII character splitPlain leaves to csv-parse: Unicode whitespace (which both trims remove, csv-parse
 * by its bytes) and UTF-16 surrogates (csv-parse reads the line as UTF-8 bytes, where a lone one becomes
 * U+FFFD). Any other character is an ordinary one to both.
 */
function needsCsvParse(code: number): boolean {
  return (
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000 ||
    code === 0xfeff ||
    (code >= 0xd800 && code <= 0xdfff)
  );
}

/** ASCII whitespace: what String.prototype.trim and csv-parse's trim both remove, within ASCII. */
function isAsciiSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13);
}

/**
 * The fields of a line, split exactly as csv-parse splits it in tokenize (the line trimmed; with spaces,
 * runs of spaces are one separator and empty fields dropped; around commas and tabs, padding trimmed; a field
 * wholly in double quotes keeps what is inside them, delimiters included). Undefined for any other line, which
 * goes through csv-parse: a doubled or stray quote, a quote left open, Unicode whitespace and surrogates
 * (needsCsvParse) are its business. Checked against csv-parse on random
 * lines of these characters; the property tests hold both paths to the same results.
 */
function splitPlain(text: string, delimiter: PredictionDelimiter): string[] | undefined {
  let end = text.length;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code > 126 && needsCsvParse(code)) return undefined;
  }
  let p = 0;
  while (p < end && isAsciiSpace(text.charCodeAt(p))) p++;
  while (end > p && isAsciiSpace(text.charCodeAt(end - 1))) end--;
  const fields: string[] = [];
  if (p === end) return fields;
  const separator = delimiter.charCodeAt(0);
  const bySpace = separator === 32;
  for (;;) {
    if (bySpace) {
      while (p < end && text.charCodeAt(p) === 32) p++;
    } else {
      while (p < end && text.charCodeAt(p) !== separator && isAsciiSpace(text.charCodeAt(p))) p++;
    }
    if (p < end && text.charCodeAt(p) === 34) {
      const close = text.indexOf('"', p + 1);
      if (close === -1 || close >= end) return undefined;
      const value = text.slice(p + 1, close);
      p = close + 1;
      if (!bySpace) {
        while (p < end && text.charCodeAt(p) !== separator && isAsciiSpace(text.charCodeAt(p))) p++;
      }
      if (p < end && text.charCodeAt(p) !== separator) return undefined;
      if (!bySpace || value !== "") fields.push(value);
    } else {
      let q = p;
      while (q < end && text.charCodeAt(q) !== separator) {
        if (text.charCodeAt(q) === 34) return undefined;
        q++;
      }
      let b = q;
      if (!bySpace) while (b > p && isAsciiSpace(text.charCodeAt(b - 1))) b--;
      if (!bySpace || b > p) fields.push(text.slice(p, b));
      p = q;
    }
    if (p === end) return fields;
    p++;
    if (p === end) {
      if (!bySpace) fields.push("");
      return fields;
    }
  }
}

/**
 * One line's fields. csv-parse handles the quoting; with the space delimiter, runs of spaces count as one
 * separator (empty fields dropped). A bracketed repr split by the delimiter (`[ 2.3]`) comes out in pieces:
 * joinPrediction puts the prediction's pieces together once it is known which field that is.
 */
function tokenize(text: string, delimiter: PredictionDelimiter): string[] | { error: string } {
  const simple = splitPlain(text, delimiter);
  if (simple !== undefined) return simple;
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
  return fields;
}

/**
 * Joins the pieces of a bracketed prediction split by the delimiter (`[ 2.3]` in a space file, `(2.3,)` in a
 * comma file), when the line has more than `width` fields: the field at `at`, opening a bracket it does not
 * close, through the next field that closes it. Only the prediction is a repr: a store id may well open a
 * bracket it never closes (`[` or `(A` are valid store ids), and it is never joined with its neighbours.
 */
function joinPrediction(
  fields: string[],
  width: number,
  at: number,
  delimiter: PredictionDelimiter,
): string[] {
  if (fields.length <= width) return fields;
  const field = fields[at];
  if (field === undefined) return fields;
  const close = field.startsWith("[") ? "]" : field.startsWith("(") ? ")" : undefined;
  if (close === undefined || field.includes(close)) return fields;
  for (let j = at + 1; j < fields.length; j++) {
    if ((fields[j] ?? "").includes(close)) {
      return [...fields.slice(0, at), fields.slice(at, j + 1).join(delimiter), ...fields.slice(j + 1)];
    }
  }
  return fields;
}

/**
 * The number in a prediction field: `2.33`, `[2.33]`, `[[2.33]]`, `(2.33,)`, `np.float64(2.33)`,
 * `'2.33'`. Undefined for anything else, including several values, `nan` and `inf`.
 */
export function parsePredictionValue(field: string): number | undefined {
  let text = field.trim();
  // A bare number, the common case: none of the wrappers below starts with a digit, a sign or a dot.
  const first = text.charCodeAt(0);
  if ((first >= 48 && first <= 57) || first === 45 || first === 43 || first === 46) {
    if (!DECIMAL.test(text)) return undefined;
    const value = Number(text);
    return Number.isFinite(value) ? value : undefined;
  }
  for (let depth = 0; depth < 8; depth++) {
    if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
    else if (text.startsWith("(") && text.endsWith(")")) text = text.slice(1, -1).replace(/,\s*$/, "");
    else if (/^(["']).*\1$/s.test(text) && text.length >= 2) text = text.slice(1, -1);
    else {
      const call = CALL_REPR.exec(text);
      if (call === null) break;
      text = call[1] ?? "";
    }
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

/** No whitespace and no comma: our file names (`<batchId>-<k>.json`, maybe under a folder) never hold either. */
const IMPLAUSIBLE_IN_FILE_NAME = /[\s,]/;
const WHITESPACE = /\s/;
const ROW_INDEX = /^\d{1,9}$/;

/**
 * Whether a data line read with these columns gives a row that could match an event: a file name that could
 * be ours, a store id the validator could have accepted (non-empty, no whitespace) or a row index, and a
 * number for the prediction. Used only to choose between readings, on the sniffed lines.
 */
function isPlausibleRow(fields: readonly string[], columns: PredictionColumns): boolean {
  const fileName = (fields[columns.fileName] ?? "").trim();
  if (fileName === "" || IMPLAUSIBLE_IN_FILE_NAME.test(fileName)) return false;
  if (parsePredictionValue(fields[columns.prediction] ?? "") === undefined) return false;
  if ("rowIndex" in columns) return ROW_INDEX.test((fields[columns.rowIndex] ?? "").trim());
  const storeId = (fields[columns.storeId] ?? "").trim();
  return storeId !== "" && !WHITESPACE.test(storeId);
}

function detectFormat(sample: readonly string[], forced: PredictionDelimiter | undefined): PredictionsFormat {
  interface Candidate {
    readonly delimiter: PredictionDelimiter;
    readonly header: string[] | undefined;
    readonly rows: string[][];
    /** What is compared, most significant first (see below). */
    readonly score: readonly number[];
  }
  const candidates: Candidate[] = [];
  for (const delimiter of forced !== undefined ? [forced] : DELIMITERS) {
    const parsed = sample.map((text) => tokenize(text, delimiter)).filter((f) => Array.isArray(f));
    const first = parsed[0];
    const header =
      first !== undefined && looksLikeHeader(joinPrediction(first, 3, POSITIONAL.prediction, delimiter))
        ? first.map(normaliseName)
        : undefined;
    const rows = header !== undefined ? parsed.slice(1) : parsed;
    let headerClass = 0;
    let headerQuality = 0;
    let plausible = 0;
    let agreeing = 0;
    if (header !== undefined) {
      const columns = columnsFromHeader(header);
      headerClass = header.length > 1 ? (typeof columns === "string" ? 1 : 2) : 0;
      // A padded comma header read by space (`file , store , pred`) has names that are only a comma.
      for (const name of header) headerQuality += KNOWN_HEADER_NAMES.has(name) ? 1 : -1;
      for (const row of rows) {
        const fields =
          typeof columns === "string"
            ? row
            : joinPrediction(row, header.length, columns.prediction, delimiter);
        if (fields.length !== header.length) continue;
        agreeing += 1;
        if (typeof columns !== "string" && isPlausibleRow(fields, columns)) plausible += 1;
      }
    } else {
      for (const row of rows) {
        const positional = joinPrediction(row, 3, POSITIONAL.prediction, delimiter);
        const mlflow = joinPrediction(row, 3, MLFLOW_POSITIONAL.prediction, delimiter);
        if (positional.length !== 3 && mlflow.length !== 3) continue;
        agreeing += 1;
        if (
          (positional.length === 3 && isPlausibleRow(positional, POSITIONAL)) ||
          (mlflow.length === 3 && isPlausibleRow(mlflow, MLFLOW_POSITIONAL))
        ) {
          plausible += 1;
        }
      }
    }
    candidates.push({ delimiter, header, rows, score: [headerClass, headerQuality, plausible, agreeing] });
  }
  // A recognised header is the strongest evidence (one whose columns can be matched first, then the one with
  // fewer names it does not know), then how many lines make plausible rows, then how many have the expected
  // width. Ties go to the order of DELIMITERS. With no evidence at all, space: the guide's format.
  const compare = (a: Candidate, b: Candidate): number => {
    for (let i = 0; i < a.score.length; i++) {
      const d = (a.score[i] ?? 0) - (b.score[i] ?? 0);
      if (d !== 0) return d;
    }
    return 0;
  };
  const best = candidates.reduce((a, b) => (compare(b, a) > 0 ? b : a));
  if (best.score.every((n) => n === 0) && forced === undefined) {
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
  const mlflowLike = best.rows.filter((row) => {
    const f = joinPrediction(row, 3, MLFLOW_POSITIONAL.prediction, best.delimiter);
    return (
      f.length === 3 &&
      /^\d+$/.test(f[0] ?? "") &&
      parsePredictionValue(f[1] ?? "") !== undefined &&
      parsePredictionValue(f[2] ?? "") === undefined
    );
  }).length;
  if (mlflowLike > 0 && mlflowLike * 2 > best.rows.length) {
    return { ...shape, columns: MLFLOW_POSITIONAL, problem: undefined };
  }
  return { ...shape, columns: POSITIONAL, problem: undefined };
}

function interpret(
  line: number,
  text: string,
  tooLong: boolean,
  format: PredictionsFormat,
  maxLineLength: number,
  maxRawLength: number,
): ParsedPredictionLine | undefined {
  const fail = (reason: string): ParsedPredictionLine => ({
    ok: false,
    line,
    reason,
    raw: truncate(text, maxRawLength),
  });
  if (tooLong) return fail(`line longer than ${maxLineLength} characters`);

  const tokens = tokenize(text, format.delimiter);
  if (!Array.isArray(tokens)) return fail(tokens.error);
  // Only a line without fields can be blank (tokenize trims it first); `""` in a space file is not blank.
  if (tokens.length === 0 && text.trim() === "") return undefined;
  const columns = format.columns;
  if (columns === undefined) {
    // The header itself, or a header repeated by a script that writes one per mini-batch: not a row.
    if (looksLikeHeader(tokens)) return undefined;
    return fail(format.problem ?? "rows cannot be matched to events");
  }
  const fields = joinPrediction(tokens, format.fieldCount, columns.prediction, format.delimiter);
  const predictionField = fields[columns.prediction] ?? "";
  const prediction = parsePredictionValue(predictionField);
  // A header never holds a number, so only a line without a prediction can be one (looksLikeHeader).
  if (prediction === undefined && looksLikeHeader(fields)) return undefined;
  if (fields.length !== format.fieldCount) {
    const expected = format.header?.join(format.delimiter) ?? "file_name store_id prediction";
    return fail(`expected ${format.fieldCount} fields (${expected}), got ${fields.length}`);
  }
  const fileName = (fields[columns.fileName] ?? "").trim();
  if (fileName === "") return fail("file_name is empty");
  if (prediction === undefined) {
    return fail(`prediction ${JSON.stringify(truncate(predictionField, 40))} is not a finite number`);
  }
  if ("rowIndex" in columns) {
    const rowField = (fields[columns.rowIndex] ?? "").trim();
    if (!ROW_INDEX.test(rowField))
      return fail(`row ${JSON.stringify(truncate(rowField, 40))} is not an index`);
    return { ok: true, line, row: { fileName, rowIndex: Number(rowField), prediction } };
  }
  const storeId = (fields[columns.storeId] ?? "").trim();
  if (storeId === "") return fail("store_id is empty");
  return { ok: true, line, row: { fileName, storeId, prediction } };
}

/** Lines parsed in one go before the event loop gets a turn, when the input comes in very large pieces. */
const LINES_PER_TURN = 16_384;
/** Text split in one go, likewise: a piece of input larger than this is split in slices of this size. */
const SLICE_CHARS = 256 * 1024;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Parses predictions.csv as it streams in, and yields the results of each piece of input as one array, in
 * file order: one result per non-blank, non-header line. The form for hot paths: no promise per row. Never
 * throws because of the content; errors of the input stream itself propagate.
 */
export async function* parsePredictionChunks(
  input: AsyncIterable<Buffer | string | Uint8Array> | NodeJS.ReadableStream,
  options: ParsePredictionsOptions = {},
): AsyncGenerator<ParsedPredictionLine[], void, undefined> {
  if (options.delimiter !== undefined && !DELIMITERS.includes(options.delimiter)) {
    throw new RangeError(`delimiter must be " ", "," or "\\t", got ${JSON.stringify(options.delimiter)}`);
  }
  const sniffLines = positiveInteger("sniffLines", options.sniffLines, 20);
  const maxLineLength = positiveInteger("maxLineLength", options.maxLineLength, 65_536);
  const maxRawLength = positiveInteger("maxRawLength", options.maxRawLength, 256);

  // Lines are read ahead until the format is decided, then those lines are interpreted before the rest.
  let format: PredictionsFormat | undefined;
  const sample: Array<{ readonly line: number; readonly text: string; readonly tooLong: boolean }> = [];
  let nonBlank = 0;
  let out: ParsedPredictionLine[] = [];
  let linesThisTurn = 0;

  const decide = (): PredictionsFormat => {
    const decided = detectFormat(
      sample.filter((l) => !l.tooLong && l.text.trim() !== "").map((l) => l.text),
      options.delimiter,
    );
    format = decided;
    options.onFormat?.(decided);
    for (const l of sample) {
      const result = interpret(l.line, l.text, l.tooLong, decided, maxLineLength, maxRawLength);
      if (result !== undefined) out.push(result);
    }
    sample.length = 0;
    return decided;
  };

  const splitter = createLineSplitter(maxLineLength, maxRawLength, (line, text, tooLong) => {
    linesThisTurn += 1;
    if (format !== undefined) {
      const result = interpret(line, text, tooLong, format, maxLineLength, maxRawLength);
      if (result !== undefined) out.push(result);
      return;
    }
    sample.push({ line, text, tooLong });
    if (!tooLong && text.trim() !== "") nonBlank += 1;
    // Bounded in physical lines too, so a file of blank or over-long lines is not buffered whole.
    if (nonBlank >= sniffLines || sample.length >= sniffLines + 1_000) decide();
  });

  function* flush(): Generator<ParsedPredictionLine[]> {
    if (out.length === 0) return;
    const done = out;
    out = [];
    yield done;
  }

  // ignoreBOM: the decoder passes every BOM through, and the parser drops one leading BOM itself, for bytes
  // and strings alike. Left to the decoder, how many leading BOMs go depends on the chunking (Node 24 drops
  // two when the first one's bytes are split across chunks). Bytes are decoded incrementally, so a character
  // split across chunks survives; invalid bytes become U+FFFD in their line only.
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  for await (const chunk of input as AsyncIterable<Buffer | string | Uint8Array>) {
    const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    for (let from = 0; from < text.length; from += SLICE_CHARS) {
      splitter.feed(from === 0 && text.length <= SLICE_CHARS ? text : text.slice(from, from + SLICE_CHARS));
      yield* flush();
      if (linesThisTurn >= LINES_PER_TURN) {
        linesThisTurn = 0;
        await nextTurn();
      }
    }
  }
  splitter.feed(decoder.decode());
  splitter.end();
  if (format === undefined) decide();
  yield* flush();
}

/**
 * Parses predictions.csv as it streams in. Yields one result per non-blank, non-header line, in file order.
 * Never throws because of the content; errors of the input stream itself propagate. Stops reading (and, for a
 * Node stream, destroys it) when the caller breaks out early.
 */
export async function* parsePredictions(
  input: AsyncIterable<Buffer | string> | NodeJS.ReadableStream,
  options: ParsePredictionsOptions = {},
): AsyncGenerator<ParsedPredictionLine, void, undefined> {
  for await (const results of parsePredictionChunks(input, options)) yield* results;
}
