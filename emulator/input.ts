/**
 * Reads a job's input the way the batch endpoint does: a URI naming a single file, or a folder whose .json and .csv
 * blobs are all scored. Invalid rows are skipped and counted (a failing mini-batch loses rows, it does not fail the
 * job); input that is missing, empty or cannot be parsed at all fails the job with a UserError.
 */
import type { BlobServiceClient, ContainerClient } from "@azure/storage-blob";
import { parse as parseCsv } from "csv-parse/sync";
import type { InputType } from "./jobs.ts";
import type { BlobLocation } from "./uris.ts";

/** One valid input row, with where it came from (predictions.csv echoes the file; MLflow output the index). */
export interface InputRow {
  readonly fileName: string;
  /** Position of the row in its input file, counting invalid rows too (0-based). */
  readonly indexInFile: number;
  readonly storeId: string;
  readonly features: readonly number[];
}

export interface InputData {
  readonly rows: readonly InputRow[];
  readonly rowsSkipped: number;
  /** Blob names read, in order. */
  readonly files: readonly string[];
}

/** The input cannot be scored at all; the job ends Failed with code UserError and this message. */
export class InputError extends Error {
  override readonly name = "InputError";
}

const SCORED_EXTENSIONS = /\.(json|csv)$/i;

export async function readInput(
  service: BlobServiceClient,
  location: BlobLocation,
  inputType: InputType | undefined,
): Promise<InputData> {
  const container = service.getContainerClient(location.container);
  const blobNames = await resolveBlobs(container, location, inputType);
  const rows: InputRow[] = [];
  let rowsSkipped = 0;
  let rowsSeen = 0;
  for (const blobName of blobNames) {
    let text: string;
    try {
      text = (await container.getBlobClient(blobName).downloadToBuffer()).toString("utf8");
    } catch (error) {
      throw new InputError(`cannot read input blob ${location.container}/${blobName}: ${describe(error)}`);
    }
    const parsed = parseInputFile(baseName(blobName), text);
    // Not push(...rows): spreading a file of a million rows overflows the call stack.
    for (const row of parsed.rows) rows.push(row);
    rowsSkipped += parsed.rowsSkipped;
    rowsSeen += parsed.rows.length + parsed.rowsSkipped;
  }
  if (rowsSeen === 0) throw new InputError(`input ${describeLocation(location)} is empty: no rows to score`);
  return { rows, rowsSkipped, files: blobNames };
}

/**
 * A file URI must name an existing blob; a folder URI must hold at least one .json or .csv blob. Without a declared
 * type (guide flavor) an existing blob at the exact path is a file, anything else a folder.
 */
async function resolveBlobs(
  container: ContainerClient,
  location: BlobLocation,
  inputType: InputType | undefined,
): Promise<string[]> {
  const isFolderPath = location.path === "" || location.path.endsWith("/");
  if (inputType === "UriFile" || (inputType === undefined && !isFolderPath)) {
    if (location.path !== "" && (await blobExists(container, location.path))) return [location.path];
    if (inputType === "UriFile") throw new InputError(`input file ${describeLocation(location)} not found`);
  }
  const prefix = isFolderPath ? location.path : `${location.path}/`;
  const names: string[] = [];
  try {
    for await (const blob of container.listBlobsFlat(prefix === "" ? {} : { prefix })) {
      if (SCORED_EXTENSIONS.test(blob.name)) names.push(blob.name);
    }
  } catch (error) {
    throw new InputError(`cannot list input ${describeLocation(location)}: ${describe(error)}`);
  }
  if (names.length === 0) {
    throw new InputError(`input ${describeLocation(location)} not found: no .json or .csv blobs there`);
  }
  return names.sort();
}

async function blobExists(container: ContainerClient, name: string): Promise<boolean> {
  try {
    return await container.getBlobClient(name).exists();
  } catch (error) {
    throw new InputError(`cannot read input blob ${container.containerName}/${name}: ${describe(error)}`);
  }
}

/**
 * Parses one input file. JSON: an array of `{"store_id": string, "features": number[]}`. CSV: a header row naming
 * `store_id` and `features`, features written as a JSON array (`CA_1,"[0.5,0.5]"`). Throws InputError when the file
 * as a whole cannot be read; returns invalid rows as skipped.
 */
export function parseInputFile(fileName: string, text: string): { rows: InputRow[]; rowsSkipped: number } {
  const body = text.replace(/^\uFEFF/, "");
  const records = looksLikeJson(fileName, body)
    ? parseJsonRecords(fileName, body)
    : parseCsvRecords(fileName, body);
  const rows: InputRow[] = [];
  let rowsSkipped = 0;
  records.forEach((record, indexInFile) => {
    const row = toRow(record);
    if (row === undefined) rowsSkipped++;
    else rows.push({ fileName, indexInFile, ...row });
  });
  return { rows, rowsSkipped };
}

function looksLikeJson(fileName: string, body: string): boolean {
  if (/\.json$/i.test(fileName)) return true;
  if (/\.csv$/i.test(fileName)) return false;
  return body.trimStart().startsWith("[");
}

function parseJsonRecords(fileName: string, body: string): unknown[] {
  if (body.trim() === "") return [];
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (error) {
    throw new InputError(`input file ${fileName} is not valid JSON: ${describe(error)}`);
  }
  if (!Array.isArray(value)) throw new InputError(`input file ${fileName} must hold a JSON array of rows`);
  return value;
}

function parseCsvRecords(fileName: string, body: string): unknown[] {
  if (body.trim() === "") return [];
  let table: string[][];
  try {
    table = parseCsv(body, { skip_empty_lines: true, trim: true, relax_column_count: true });
  } catch (error) {
    throw new InputError(`input file ${fileName} is not valid CSV: ${describe(error)}`);
  }
  const [header = [], ...lines] = table;
  const storeIdColumn = header.indexOf("store_id");
  const featuresColumn = header.indexOf("features");
  if (storeIdColumn < 0 || featuresColumn < 0) {
    throw new InputError(`input file ${fileName} needs a header row with store_id and features columns`);
  }
  return lines.map((line) => {
    let features: unknown;
    try {
      features = JSON.parse(line[featuresColumn] ?? "");
    } catch {
      features = undefined;
    }
    return { store_id: line[storeIdColumn], features };
  });
}

function toRow(record: unknown): { storeId: string; features: number[] } | undefined {
  if (typeof record !== "object" || record === null) return undefined;
  const { store_id: storeId, features } = record as { store_id?: unknown; features?: unknown };
  if (typeof storeId !== "string" || storeId === "") return undefined;
  if (!Array.isArray(features) || features.length === 0) return undefined;
  if (!features.every((f) => typeof f === "number" && Number.isFinite(f))) return undefined;
  return { storeId, features: features as number[] };
}

function baseName(blobName: string): string {
  return blobName.slice(blobName.lastIndexOf("/") + 1);
}

function describeLocation(location: BlobLocation): string {
  return `${location.container}/${location.path}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
