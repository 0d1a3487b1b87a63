/**
 * Parses the body of POST /jobs in either flavor. Sources disagree on key casing (the docs write PascalCase, the
 * SDK camelCase), so v2 keys are matched case-insensitively. Errors name the offending field; the server answers 400.
 */
import type { ApiFlavor, InputType } from "./jobs.ts";
import { type BlobUriContext, parseBlobUri, parseDatastoreUri } from "./uris.ts";

export interface SubmitRequest {
  readonly flavor: ApiFlavor;
  readonly inputUri: string;
  /** v2 only. */
  readonly inputType?: InputType;
  /** v2 with OutputData only: blob path of predictions.csv inside the datastore's container. */
  readonly outputBlobPath?: string;
}

export class SubmitBodyError extends Error {
  override readonly name = "SubmitBodyError";
}

export function parseSubmitBody(body: unknown, context: BlobUriContext): SubmitRequest {
  if (!isObject(body)) throw new SubmitBodyError("request body must be a JSON object");
  const guide = field(body, "input_data");
  const properties = field(body, "properties");
  if (guide !== undefined && properties !== undefined) {
    throw new SubmitBodyError("request body has both input_data (guide) and properties (v2): send one");
  }
  if (guide !== undefined) return parseGuide(guide, context);
  if (properties !== undefined) return parseV2(properties, context);
  throw new SubmitBodyError('request body needs "input_data" (guide) or "properties" (v2)');
}

function parseGuide(inputData: unknown, context: BlobUriContext): SubmitRequest {
  if (!isObject(inputData)) throw new SubmitBodyError("input_data must be an object");
  const uri = checkInputUri(field(inputData, "uri"), "input_data.uri", context);
  return { flavor: "guide", inputUri: uri };
}

function parseV2(properties: unknown, context: BlobUriContext): SubmitRequest {
  if (!isObject(properties)) throw new SubmitBodyError("properties must be an object");
  const inputData = field(properties, "InputData");
  if (!isObject(inputData)) throw new SubmitBodyError("properties.InputData must be an object");
  const [inputName, input] = single(inputData, "input", "properties.InputData");
  const inputPath = `properties.InputData.${inputName}`;
  if (!isObject(input)) throw new SubmitBodyError(`${inputPath} must be an object`);
  const inputType = normaliseType(field(input, "JobInputType"), `${inputPath}.JobInputType`);
  const inputUri = checkInputUri(field(input, "Uri"), `${inputPath}.Uri`, context);

  const outputData = field(properties, "OutputData");
  if (outputData === undefined || outputData === null) return { flavor: "v2", inputUri, inputType };
  if (!isObject(outputData)) throw new SubmitBodyError("properties.OutputData must be an object");
  const [outputName, output] = single(outputData, "score", "properties.OutputData");
  const outputPath = `properties.OutputData.${outputName}`;
  if (!isObject(output)) throw new SubmitBodyError(`${outputPath} must be an object`);
  const outputTypeValue = field(output, "JobOutputType");
  const outputType =
    outputTypeValue === undefined ? "UriFile" : normaliseType(outputTypeValue, `${outputPath}.JobOutputType`);
  const outputUri = field(output, "Uri");
  if (typeof outputUri !== "string" || outputUri === "") {
    throw new SubmitBodyError(
      `${outputPath}.Uri must be a non-empty azureml://datastores/<ds>/paths/<path> URI`,
    );
  }
  let path: string;
  try {
    path = parseDatastoreUri(outputUri, context).path;
  } catch (error) {
    throw new SubmitBodyError(`${outputPath}.Uri: ${(error as Error).message}`);
  }
  // A folder (declared, or a path ending in "/") receives predictions.csv inside it.
  if (outputType === "UriFolder" && path !== "" && !path.endsWith("/")) path += "/";
  if (path === "" || path.endsWith("/")) path += "predictions.csv";
  return { flavor: "v2", inputUri, inputType, outputBlobPath: path };
}

function checkInputUri(value: unknown, name: string, context: BlobUriContext): string {
  if (typeof value !== "string" || value === "")
    throw new SubmitBodyError(`${name} must be a non-empty string`);
  try {
    parseBlobUri(value, context);
  } catch (error) {
    throw new SubmitBodyError(`${name}: ${(error as Error).message}`);
  }
  return value;
}

/** "UriFolder", "uriFolder", "uri_folder" all mean the same. */
function normaliseType(value: unknown, name: string): InputType {
  const key = typeof value === "string" ? value.replaceAll("_", "").toLowerCase() : undefined;
  if (key === "urifile") return "UriFile";
  if (key === "urifolder") return "UriFolder";
  throw new SubmitBodyError(`${name} must be "UriFile" or "UriFolder", got ${JSON.stringify(value)}`);
}

/** The entry named `preferred`, else the only entry: deployments name their single input/output freely. */
function single(map: Record<string, unknown>, preferred: string, name: string): [string, unknown] {
  const exact = Object.keys(map).find((key) => key.toLowerCase() === preferred);
  if (exact !== undefined) return [exact, map[exact]];
  const entries = Object.entries(map);
  if (entries.length === 1) return entries[0] as [string, unknown];
  throw new SubmitBodyError(`${name} must hold one entry (named "${preferred}"), got ${entries.length}`);
}

/** Case-insensitive key lookup: InputData, inputData and inputdata are one key. */
function field(object: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  const key = Object.keys(object).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : object[key];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
