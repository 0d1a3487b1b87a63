/**
 * The small parsers the settings table (schema.ts) is built from. A parser turns one raw environment value
 * (never empty: an empty variable counts as unset) into a typed value, or says it is invalid. `expected`
 * completes "<VARIABLE> must be ..." in error messages and the README.
 */
import { accessSync, constants, statSync } from "node:fs";

export type ParseResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly detail?: string };

export interface Parser<T> {
  /** What a valid value looks like, phrased to follow "must be": "an integer between 1 and 10". */
  readonly expected: string;
  readonly parse: (raw: string) => ParseResult<T>;
}

function ok<T>(value: T): ParseResult<T> {
  return { ok: true, value };
}

function fail(detail?: string): ParseResult<never> {
  return detail === undefined ? { ok: false } : { ok: false, detail };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what it rejects
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Hosts a plain-http URL or the development credential may point at. */
export const LOOPBACK_HOSTS: readonly string[] = ["localhost", "127.0.0.1", "::1"];

/** `hostname` as WHATWG URL gives it (IPv6 in brackets) or bare. */
export function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  return LOOPBACK_HOSTS.includes(bare.toLowerCase());
}

export function integer(min: number, max: number): Parser<number> {
  return {
    expected: `an integer between ${min} and ${max}`,
    parse(raw) {
      if (!/^-?\d+$/.test(raw)) return fail();
      const n = Number(raw);
      return Number.isSafeInteger(n) && n >= min && n <= max ? ok(n) : fail();
    },
  };
}

const TRUE_WORDS = ["true", "1", "yes"];
const FALSE_WORDS = ["false", "0", "no"];

export const boolean: Parser<boolean> = {
  expected: "one of true, false, 1, 0, yes, no",
  parse(raw) {
    const word = raw.toLowerCase();
    if (TRUE_WORDS.includes(word)) return ok(true);
    if (FALSE_WORDS.includes(word)) return ok(false);
    return fail();
  },
};

/** One of a fixed set of words, matched case-insensitively and returned as listed. */
export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return {
    expected: `one of ${values.join(", ")}`,
    parse(raw) {
      const found = values.find((v) => v.toLowerCase() === raw.toLowerCase());
      return found === undefined ? fail() : ok(found);
    },
  };
}

/** Free text without control characters (client ids, group ids, user names, secrets). */
export function text(maxLength: number): Parser<string> {
  return {
    expected: `text of at most ${maxLength} characters without control characters`,
    parse: (raw) => (raw.length <= maxLength && !CONTROL_CHARS.test(raw) ? ok(raw) : fail()),
  };
}

/**
 * The path of a file that exists and this process may read, checked when the configuration is loaded (so
 * check-config catches a missing mount). Only checked: the file is never read here, so its content (a key)
 * cannot reach a message; the path itself is shown.
 */
export const readableFile: Parser<string> = {
  expected: "the path of an existing file this process can read (checked when the configuration is loaded)",
  parse(raw) {
    if (CONTROL_CHARS.test(raw)) return fail("contains a control character");
    try {
      if (!statSync(raw).isFile()) return fail("not a regular file");
      accessSync(raw, constants.R_OK);
      return ok(raw);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return fail("no such file");
      if (code === "EACCES" || code === "EPERM") return fail("not readable by this process");
      return fail(code === undefined ? "cannot be checked" : `cannot be checked: ${code}`);
    }
  },
};

export const kafkaTopic: Parser<string> = {
  expected: "a Kafka topic name (1 to 249 characters of a-z A-Z 0-9 . _ -, not . or ..)",
  parse: (raw) => (/^[a-zA-Z0-9._-]{1,249}$/.test(raw) && raw !== "." && raw !== ".." ? ok(raw) : fail()),
};

const HOST_LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?";
const HOST_PORT = new RegExp(`^${HOST_LABEL}(?:\\.${HOST_LABEL})*:(\\d{1,5})$`);

/** Comma-separated host:port list. kafkajs splits on ":", so IPv6 literals are not accepted. */
export const brokerList: Parser<readonly string[]> = {
  expected: "a comma-separated list of host:port (host name or IPv4 address, port 1 to 65535)",
  parse(raw) {
    const items = raw.split(",").map((item) => item.trim());
    const bad = items.filter((item) => {
      const port = HOST_PORT.exec(item)?.[1];
      return port === undefined || Number(port) < 1 || Number(port) > 65535;
    });
    if (bad.length > 0) return fail(`not host:port: ${bad.map((b) => JSON.stringify(b)).join(", ")}`);
    return ok(items);
  },
};

export function parseUrl(raw: string): URL | undefined {
  try {
    return new URL(raw);
  } catch {
    return undefined;
  }
}

/**
 * Problems with a URL that any of our URL settings refuses: not http(s), credentials in it (they belong in
 * their own secret variables), a query (could hold a SAS token) or a fragment.
 */
function urlShapeProblem(url: URL): string | undefined {
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return `scheme ${url.protocol} is not http or https`;
  if (url.username !== "" || url.password !== "") return "credentials in the URL are not allowed";
  if (url.search !== "") return "a query string is not allowed";
  if (url.hash !== "") return "a fragment is not allowed";
  return undefined;
}

function withoutTrailingSlashes(raw: string): string {
  return raw.replace(/\/+$/, "");
}

/** An http or https URL without credentials, query or fragment; trailing slashes removed. */
export const httpUrl: Parser<string> = {
  expected: "an http or https URL without credentials, query or fragment",
  parse(raw) {
    const url = parseUrl(raw);
    if (url === undefined) return fail("not a URL");
    const problem = urlShapeProblem(url);
    return problem === undefined ? ok(withoutTrailingSlashes(raw)) : fail(problem);
  },
};

/**
 * A URL a bearer token is sent to: https, or plain http only when the host is loopback (a token must never
 * travel in clear over a network). No credentials, query or fragment; trailing slashes removed.
 */
export const tokenUrl: Parser<string> = {
  expected: `an https URL (http only for a loopback host: ${LOOPBACK_HOSTS.join(", ")}) without credentials, query or fragment`,
  parse(raw) {
    const url = parseUrl(raw);
    if (url === undefined) return fail("not a URL");
    const problem = urlShapeProblem(url) ?? tokenUrlSchemeProblem(url);
    return problem === undefined ? ok(withoutTrailingSlashes(raw)) : fail(problem);
  },
};

/** Plain http to a host that is not loopback would carry the bearer token in clear. */
export function tokenUrlSchemeProblem(url: URL): string | undefined {
  return url.protocol === "http:" && !isLoopbackHost(url.hostname)
    ? "plain http is refused for a host that is not loopback: the bearer token would travel in clear"
    : undefined;
}

/** Azure Blob container name: 3 to 63 of a-z 0-9 -, each - between letters or digits. */
export const containerName: Parser<string> = {
  expected:
    "a blob container name (3 to 63 characters of a-z 0-9 -, starting and ending with a letter or digit, no --)",
  parse: (raw) =>
    raw.length >= 3 && raw.length <= 63 && /^[a-z0-9]+(-[a-z0-9]+)*$/.test(raw) ? ok(raw) : fail(),
};

/** Problems with a relative blob path: segments separated by single slashes, none of them . or .. */
export function blobPathProblem(path: string): string | undefined {
  if (path.length > 1024) return "longer than 1024 characters";
  if (CONTROL_CHARS.test(path) || path.includes("\\")) return "contains a control character or a backslash";
  const segments = path.split("/");
  if (segments.some((s) => s === "")) return "empty segment (leading, trailing or double slash)";
  if (segments.some((s) => s === "." || s === "..")) return "a segment is . or ..";
  return undefined;
}

export const blobPath: Parser<string> = {
  expected: "a relative blob path (segments separated by /, no leading or trailing /, no . or .. segments)",
  parse(raw) {
    const problem = blobPathProblem(raw);
    return problem === undefined ? ok(raw) : fail(problem);
  },
};

/** Placeholder names used in a template, `{name}`. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1] ?? "");
}

/** Replaces every `{name}` in the template by `values[name]`; unknown placeholders are left as they are. */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{([^{}]*)\}/g, (whole, name: string) => values[name] ?? whole);
}

interface TemplateOptions {
  /** Placeholders the template may use. */
  readonly allowed: readonly string[];
  /** At least one of these must appear. */
  readonly requireOneOf: readonly string[];
  /** Checks the template once its placeholders are filled with sample values; returns a problem or undefined. */
  readonly checkFilled?: (filled: string) => string | undefined;
  readonly what: string;
}

export function template(options: TemplateOptions): Parser<string> {
  const names = (list: readonly string[]) => list.map((n) => `{${n}}`).join(" or ");
  return {
    expected: `${options.what} containing ${names(options.requireOneOf)} (placeholders: ${options.allowed.map((n) => `{${n}}`).join(", ")})`,
    parse(raw) {
      const used = placeholders(raw);
      const unknown = used.filter((n) => !options.allowed.includes(n));
      if (unknown.length > 0) return fail(`unknown placeholder ${unknown.map((n) => `{${n}}`).join(", ")}`);
      if (!used.some((n) => options.requireOneOf.includes(n)))
        return fail(`${names(options.requireOneOf)} missing`);
      const sample = Object.fromEntries(options.allowed.map((n) => [n, `sample-${n}`]));
      const problem = options.checkFilled?.(fillTemplate(raw, sample));
      return problem === undefined ? ok(raw) : fail(problem);
    },
  };
}

/**
 * An Azure Storage connection string: `Key=value` pairs separated by `;`, with an AccountName, a BlobEndpoint
 * or UseDevelopmentStorage=true. Problems name keys only, never values.
 */
export const storageConnectionString: Parser<string> = {
  expected:
    "an Azure Storage connection string (Key=value;... with AccountName, BlobEndpoint or UseDevelopmentStorage=true)",
  parse(raw) {
    const pairs = raw.split(";").filter((p) => p.trim() !== "");
    const keys = new Map<string, string>();
    for (const pair of pairs) {
      const eq = pair.indexOf("=");
      if (eq <= 0) return fail("a part is not Key=value");
      keys.set(pair.slice(0, eq).trim().toLowerCase(), pair.slice(eq + 1).trim());
    }
    const devStorage = keys.get("usedevelopmentstorage")?.toLowerCase() === "true";
    if (!devStorage && !keys.has("accountname") && !keys.has("blobendpoint")) {
      return fail("no AccountName, BlobEndpoint or UseDevelopmentStorage=true");
    }
    return ok(raw);
  },
};

/** An Entra token scope for the client-credentials style flows DefaultAzureCredential uses. */
export const tokenScope: Parser<string> = {
  expected: "a single token scope ending in /.default (e.g. https://ml.azure.com/.default)",
  parse: (raw) => (/^\S+\/\.default$/.test(raw) ? ok(raw) : fail()),
};

/** A name safe to send as an HTTP header value (deployment names). */
export const headerSafeName: Parser<string> = {
  expected: "a name of 1 to 255 characters of a-z A-Z 0-9 . _ - starting with a letter or digit",
  parse: (raw) => (/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(raw) ? ok(raw) : fail()),
};

/** An Azure ML datastore name (letters, digits, underscores). */
export const datastoreName: Parser<string> = {
  expected: "a datastore name (1 to 255 characters of a-z A-Z 0-9 _)",
  parse: (raw) => (/^[A-Za-z0-9_]{1,255}$/.test(raw) ? ok(raw) : fail()),
};
