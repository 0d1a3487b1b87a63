/**
 * Turns the URIs clients send into a place in the one storage account the emulator has. Clients address blobs the way
 * they would in Azure (`https://<account>.blob.core.windows.net/<container>/<path>`), the way Azurite does (path-style,
 * `http://127.0.0.1:10000/<account>/<container>/<path>`) or through a datastore (`azureml://datastores/<ds>/paths/<path>`);
 * all of them land in the emulator's storage, whatever account or host they name.
 */

export interface BlobLocation {
  readonly container: string;
  /** Blob name or folder prefix inside the container, decoded; "" means the whole container. */
  readonly path: string;
}

export interface BlobUriContext {
  /** Account of the emulator's storage: a path-style URI whose first segment is this account skips it. */
  readonly accountName: string;
  /** Container behind every datastore not named in `datastores` (the workspace's default datastore). */
  readonly datastoreContainer: string;
  /** Datastores registered for other containers, by name. */
  readonly datastores?: Readonly<Record<string, string>>;
}

/** Parses an input URI; throws an Error whose message says what is wrong (the server answers 400 with it). */
export function parseBlobUri(uri: string, context: BlobUriContext): BlobLocation {
  if (uri.startsWith("azureml://")) return parseDatastoreUri(uri, context);
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new Error(`${JSON.stringify(uri)} is not a valid URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`${JSON.stringify(uri)} must be an http(s) blob URL or an azureml://datastores/... URI`);
  }
  const segments = url.pathname.split("/").slice(1).map(decodeSegment);
  // Host-style (`<account>.blob.core.windows.net`): /<container>/<path>. Path-style (Azurite, IP hosts):
  // /<account>/<container>/<path>, where the first segment is skipped when it is the emulator's account.
  const hostStyle = url.hostname.includes(".blob.");
  if (!hostStyle && segments.length > 1 && segments[0] === context.accountName) segments.shift();
  const [container, ...rest] = segments;
  if (container === undefined || container === "") {
    throw new Error(`${JSON.stringify(uri)} names no container`);
  }
  return { container, path: rest.join("/") };
}

/**
 * Parses `azureml://datastores/<ds>/paths/<path>`. A datastore registered in `datastores` maps to its container;
 * any other name to the default datastore's, whatever name the client knows it by.
 */
export function parseDatastoreUri(uri: string, context: BlobUriContext): BlobLocation {
  const match = /^azureml:\/\/datastores\/([^/]+)\/paths\/(.*)$/.exec(uri);
  if (match === null) {
    throw new Error(`${JSON.stringify(uri)} must look like azureml://datastores/<datastore>/paths/<path>`);
  }
  const path = (match[2] ?? "").split("/").map(decodeSegment).join("/");
  const name = match[1] as string;
  const registered =
    context.datastores && Object.hasOwn(context.datastores, name) ? context.datastores[name] : undefined;
  return { container: registered ?? context.datastoreContainer, path };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new Error(`path segment ${JSON.stringify(segment)} is not valid percent-encoding`);
  }
}
