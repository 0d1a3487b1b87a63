/**
 * The emulator's options and faults: one options bag with documented defaults, validated once at start (every error
 * names the bad option), then frozen. Faults are validated the same way whether they come from the options, from
 * `setFaults` or from the admin API.
 */

import {
  type Authenticator,
  createEntraAuthenticator,
  type EntraAuthOptions,
  predicateAuthenticator,
  type TokenApi,
} from "./auth.ts";

/** Which requests a request-level fault applies to: POST /jobs, GET /jobs/{name}, or both. */
export type FaultTarget = "submit" | "status" | "any";

/**
 * How often a fault fires. `count`: the next N matching requests (or jobs), deterministic. `rate`: after the count is
 * used up, each further one with this probability, drawn from the seeded PRNG.
 */
export interface FaultFrequency {
  readonly count?: number;
  readonly rate?: number;
}

export interface RequestFault extends FaultFrequency {
  /** Default "any". */
  readonly on?: FaultTarget;
}

export interface ThrottleFault extends RequestFault {
  /** Value of the Retry-After header, in whole seconds. Default 1. */
  readonly retryAfterSeconds?: number;
}

export interface MissingRowsFault {
  /** Omit every Nth row of predictions.csv (rows N, 2N, ... counting from 1 across the whole file). */
  readonly every?: number;
  /** Omit each row with this probability (seeded). */
  readonly rate?: number;
}

export interface MalformedRowsFault {
  /** Number of junk lines appended to predictions.csv. */
  readonly count?: number;
}

export type OutputDelimiter = " " | "," | "\t";

/** How predictions.csv is written. The default is the guide's shape: `file_name store_id prediction`, no header. */
export interface OutputShape {
  readonly delimiter?: OutputDelimiter;
  /** Write a header line first. Default false, except with `mlflow`, whose header is on unless this is false. */
  readonly header?: boolean;
  /** Write predictions like Python reprs: `[2.33394885]`. */
  readonly bracketed?: boolean;
  /** Wrap every field in double quotes. */
  readonly quoted?: boolean;
  /** End lines with \r\n instead of \n. */
  readonly crlf?: boolean;
  /** Reorder the rows (seeded; always a different order when there are 2 rows or more). */
  readonly shuffle?: boolean;
  /** MLflow deployments' columns: `row,prediction,file_name` (row = index in its input file), comma by default. */
  readonly mlflow?: boolean;
}

/** Every fault the emulator can inject. All optional and combinable; `{}` means a well-behaved endpoint. */
export interface EmulatorFaults {
  /** 429 with a Retry-After header. */
  readonly throttle?: ThrottleFault;
  /** 500 with an error body. */
  readonly serverError?: RequestFault;
  /** The socket is destroyed without any response (nothing else happens: no job is created). */
  readonly dropConnection?: RequestFault;
  /** The next N successful submits: the job exists, then the socket is destroyed before the response. */
  readonly loseSubmitResponse?: { readonly count?: number };
  /** Jobs that end Failed instead of Completed, writing no output. */
  readonly failJobs?: FaultFrequency;
  /** Jobs that stay Running forever. */
  readonly stuckJobs?: FaultFrequency;
  /** Rows left out of predictions.csv, like failed mini-batches. Applies to every job created while set. */
  readonly missingRows?: MissingRowsFault;
  /** Junk lines appended to predictions.csv. Applies to every job created while set. */
  readonly malformedRows?: MalformedRowsFault;
  /** Shape of predictions.csv. Applies to every job created while set. */
  readonly outputShape?: OutputShape;
}

export interface EmulatorOptions {
  /** Interface to listen on. Default "127.0.0.1". */
  readonly host?: string;
  /** Port to listen on; 0 picks a free port. Default 0. */
  readonly port?: number;
  /** Storage where inputs are read and outputs written (Azurite locally). Required. */
  readonly blobConnectionString: string;
  /** Container of the workspace's default datastore, created if missing. Default "azureml-blobstore". */
  readonly outputContainer?: string;
  /**
   * Where a job writes predictions.csv when the request names no output (guide flavor, or v2 without OutputData).
   * `{jobId}` is replaced by the job name; it is required because the real service fails a job whose output exists.
   * Default "artifacts/output/{jobId}/predictions.csv".
   */
  readonly outputPathTemplate?: string;
  /** Time a job spends in NotStarted then Queued (half each), in ms. Default 200. */
  readonly coldStartMs?: number;
  /** Time a job spends Running, in ms. Default 200. */
  readonly runMs?: number;
  /** Faults active from the start. Default none. */
  readonly faults?: EmulatorFaults;
  /** Seed of the PRNG behind rate faults, dropped rows and shuffles. Default 1. */
  readonly seed?: number;
  /** Decides whether a bearer token is accepted (a rejected one gets 401). Default: any non-empty token. */
  readonly acceptToken?: (token: string) => boolean;
  /**
   * Validate tokens as Entra-protected Azure APIs do (signature against the authority's keys, audience per API,
   * issuer, expiry): see auth.ts. Takes the place of acceptToken. Default: not set (any non-empty token).
   */
  readonly auth?: EntraAuthOptions;
}

export interface ResolvedEmulatorOptions {
  readonly host: string;
  readonly port: number;
  readonly blobConnectionString: string;
  readonly outputContainer: string;
  readonly outputPathTemplate: string;
  readonly coldStartMs: number;
  readonly runMs: number;
  readonly faults: EmulatorFaults;
  readonly seed: number;
  /** Checks a request's bearer token for the API it calls (from `auth`, or else `acceptToken`). */
  readonly authenticate: Authenticator["authenticate"];
  /** The authority named in 401 challenges, when `auth` is set. */
  readonly authority: string | undefined;
}

export const EMULATOR_DEFAULTS = Object.freeze({
  host: "127.0.0.1",
  port: 0,
  outputContainer: "azureml-blobstore",
  outputPathTemplate: "artifacts/output/{jobId}/predictions.csv",
  coldStartMs: 200,
  runMs: 200,
  seed: 1,
});

const OPTION_KEYS = new Set([
  "host",
  "port",
  "blobConnectionString",
  "outputContainer",
  "outputPathTemplate",
  "coldStartMs",
  "runMs",
  "faults",
  "seed",
  "acceptToken",
  "auth",
]);

/** Validates the options once, fills in the defaults and freezes the result. Throws TypeError/RangeError naming the option. */
export function resolveEmulatorOptions(options: EmulatorOptions): ResolvedEmulatorOptions {
  if (!isObject(options)) throw new TypeError("emulator options must be an object");
  rejectUnknownKeys(options, OPTION_KEYS, "options");
  const o = options as EmulatorOptions;
  if (typeof o.blobConnectionString !== "string" || o.blobConnectionString.trim() === "") {
    throw new TypeError(
      "options.blobConnectionString is required (a non-empty Azure Storage connection string)",
    );
  }
  const host = o.host ?? EMULATOR_DEFAULTS.host;
  if (typeof host !== "string" || host === "") throw new TypeError("options.host must be a non-empty string");
  const port = o.port ?? EMULATOR_DEFAULTS.port;
  checkInteger(port, "options.port", 0, 65535);
  const outputContainer = o.outputContainer ?? EMULATOR_DEFAULTS.outputContainer;
  // Azure's container naming rules; Azurite in --loose mode would accept more, the real service would not.
  if (
    typeof outputContainer !== "string" ||
    !/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(outputContainer)
  ) {
    throw new RangeError(
      `options.outputContainer must be a valid container name (3-63 lowercase letters, digits, single hyphens), got ${JSON.stringify(outputContainer)}`,
    );
  }
  const outputPathTemplate = o.outputPathTemplate ?? EMULATOR_DEFAULTS.outputPathTemplate;
  if (typeof outputPathTemplate !== "string" || outputPathTemplate === "") {
    throw new TypeError("options.outputPathTemplate must be a non-empty string");
  }
  if (!outputPathTemplate.includes("{jobId}")) {
    throw new RangeError(
      "options.outputPathTemplate must contain {jobId}: every job needs its own output path",
    );
  }
  const coldStartMs = o.coldStartMs ?? EMULATOR_DEFAULTS.coldStartMs;
  checkNumber(coldStartMs, "options.coldStartMs", 0);
  const runMs = o.runMs ?? EMULATOR_DEFAULTS.runMs;
  checkNumber(runMs, "options.runMs", 0);
  const seed = o.seed ?? EMULATOR_DEFAULTS.seed;
  checkInteger(seed, "options.seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const acceptToken = o.acceptToken ?? (() => true);
  if (typeof acceptToken !== "function") throw new TypeError("options.acceptToken must be a function");
  if (o.auth !== undefined && o.acceptToken !== undefined) {
    throw new TypeError("options.auth and options.acceptToken are exclusive: give one");
  }
  if (
    o.auth !== undefined &&
    (!isObject(o.auth) || typeof o.auth.authority !== "string" || typeof o.auth.tenantId !== "string")
  ) {
    throw new TypeError("options.auth must be an object with an authority URL and a tenantId");
  }
  const authenticator =
    o.auth === undefined ? predicateAuthenticator(acceptToken) : createEntraAuthenticator(o.auth);
  const faults = validateFaults(o.faults ?? {}, "options.faults");
  return Object.freeze({
    host,
    port,
    blobConnectionString: o.blobConnectionString,
    outputContainer,
    outputPathTemplate,
    coldStartMs,
    runMs,
    faults,
    seed,
    authenticate: (token: string, api: TokenApi) => authenticator.authenticate(token, api),
    authority: o.auth?.authority.replace(/\/+$/, ""),
  });
}

const FAULT_KEYS: Readonly<Record<keyof EmulatorFaults, readonly string[]>> = {
  throttle: ["count", "rate", "retryAfterSeconds", "on"],
  serverError: ["count", "rate", "on"],
  dropConnection: ["count", "rate", "on"],
  loseSubmitResponse: ["count"],
  failJobs: ["count", "rate"],
  stuckJobs: ["count", "rate"],
  missingRows: ["every", "rate"],
  malformedRows: ["count"],
  outputShape: ["delimiter", "header", "bracketed", "quoted", "crlf", "shuffle", "mlflow"],
};

const TARGETS: ReadonlySet<string> = new Set(["submit", "status", "any"]);
const DELIMITERS: ReadonlySet<string> = new Set([" ", ",", "\t"]);

/**
 * Validates faults from any source (options, setFaults, the admin API's JSON) and returns a frozen deep copy.
 * Unknown keys are errors: a misspelt fault that silently does nothing would make a test pass for the wrong reason.
 */
export function validateFaults(faults: unknown, name = "faults"): EmulatorFaults {
  if (!isObject(faults)) throw new TypeError(`${name} must be an object`);
  rejectUnknownKeys(faults, new Set(Object.keys(FAULT_KEYS)), name);
  const result: Record<string, Readonly<Record<string, unknown>>> = {};
  for (const [kind, value] of Object.entries(faults)) {
    if (value === undefined || value === null) continue;
    const path = `${name}.${kind}`;
    if (!isObject(value)) throw new TypeError(`${path} must be an object`);
    rejectUnknownKeys(value, new Set(FAULT_KEYS[kind as keyof EmulatorFaults]), path);
    const copy: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      if (v === undefined) continue;
      const field = `${path}.${key}`;
      switch (key) {
        case "count":
          checkInteger(v, field, 0, Number.MAX_SAFE_INTEGER);
          break;
        case "rate":
          checkNumber(v, field, 0, 1);
          break;
        case "retryAfterSeconds":
          checkInteger(v, field, 0, 86_400);
          break;
        case "every":
          checkInteger(v, field, 1, Number.MAX_SAFE_INTEGER);
          break;
        case "on":
          if (typeof v !== "string" || !TARGETS.has(v)) {
            throw new RangeError(`${field} must be "submit", "status" or "any", got ${JSON.stringify(v)}`);
          }
          break;
        case "delimiter":
          if (typeof v !== "string" || !DELIMITERS.has(v)) {
            throw new RangeError(`${field} must be " ", "," or "\\t", got ${JSON.stringify(v)}`);
          }
          break;
        default:
          if (typeof v !== "boolean") throw new TypeError(`${field} must be a boolean`);
      }
      copy[key] = v;
    }
    result[kind] = Object.freeze(copy);
  }
  return Object.freeze(result) as EmulatorFaults;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function rejectUnknownKeys(value: object, known: ReadonlySet<string>, name: string): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw new TypeError(`${name}.${key} is not a known option (known: ${[...known].join(", ")})`);
    }
  }
}

function checkNumber(value: unknown, name: string, min: number, max = Number.POSITIVE_INFINITY): void {
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${name} must be in [${min}, ${max}], got ${value}`);
  }
}

function checkInteger(value: unknown, name: string, min: number, max: number): void {
  checkNumber(value, name, min, max);
  if (!Number.isInteger(value)) throw new RangeError(`${name} must be an integer, got ${value}`);
}
