/**
 * How a v2 job names its input (docs/endpoint-contract.md, "Azure ML v2 flavor"): the batch's folder, or its
 * one file when it has only one and FC_ENDPOINT_INPUT_TYPE=auto; as the blob's https URL or through a
 * workspace datastore registered for the input container (`azureml://datastores/<ds>/paths/<path>`), which
 * lets the workspace reach the container by the datastore's identity rather than its own.
 */
import type { JobInputType } from "./endpointClient.ts";
import type { EndpointSettings } from "./settings.ts";

export type JobInputOptions = Partial<
  Pick<EndpointSettings, "inputUriForm" | "inputDatastore" | "inputType">
>;

export interface JobInputSource {
  /** https URL of the batch's folder. */
  readonly folderUri: string;
  /** The batch's files: each blob path (inside the input container) and its name. */
  readonly files: ReadonlyArray<{ readonly fileName: string; readonly blobPath: string }>;
}

export interface JobInput {
  readonly uri: string;
  readonly type: JobInputType;
}

/** The folder's blob path: its files' parent (every file of a batch is directly in its folder). */
function folderPath(source: JobInputSource): string {
  const first = source.files[0];
  if (first === undefined) throw new Error("a batch without files has no job input");
  return first.blobPath.slice(0, first.blobPath.lastIndexOf("/"));
}

const encodePath = (path: string) => path.split("/").map(encodeURIComponent).join("/");

export function jobInput(source: JobInputSource, options: JobInputOptions = {}): JobInput {
  const single = options.inputType === "auto" && source.files.length === 1 ? source.files[0] : undefined;
  if ((options.inputUriForm ?? "https") === "azureml") {
    if (!options.inputDatastore) throw new Error("an azureml:// input needs the input datastore's name");
    const base = `azureml://datastores/${options.inputDatastore}/paths/`;
    return single
      ? { uri: `${base}${encodePath(single.blobPath)}`, type: "UriFile" }
      : { uri: `${base}${encodePath(folderPath(source))}/`, type: "UriFolder" };
  }
  return single
    ? { uri: `${source.folderUri}/${encodeURIComponent(single.fileName)}`, type: "UriFile" }
    : { uri: source.folderUri, type: "UriFolder" };
}
