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

/**
 * Which requests a request-level fault applies to: POST /jobs ("submit"), GET /jobs/{name} ("status"), the
 * ARM job GET ("arm_status") or cancel ("arm_cancel"), both ARM routes ("arm"), or all ("any").
 */
export type FaultTarget = "submit" | "status" | "arm_status" | "arm_cancel" | "arm" | "any";

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

/** The service's error shape, as a failed job carries it. */
export interface JobErrorBody {
  readonly code: string;
  readonly message: string;
  readonly target?: string;
  readonly details?: readonly JobErrorBody[];
}

export interface FailJobsFault extends FaultFrequency {
  /** The failed job's error body. Default: a scoring script that exited with status 1 (UserError, with details). */
  readonly error?: JobErrorBody;
}

export interface StatusJourneyFault extends FaultFrequency {
  /**
   * Statuses the job reports, in order, sharing its cold start and run time evenly, before it ends as it
   * otherwise would. Any strings but the terminal ones (Completed, Failed, Canceled), so an unknown status
   * can be sent too. Default DEFAULT_STATUS_JOURNEY: every non-terminal status, NotResponding recovering.
   */
  readonly statuses?: readonly string[];
}

/**
 * Every non-terminal status of the service and SDK, NotResponding followed by Running again (it recovers),
 * and one status no documentation knows ("Hibernating"), which a client must treat as running.
 */
export const DEFAULT_STATUS_JOURNEY: readonly string[] = Object.freeze([
  "NotStarted",
  "Scheduled",
  "Starting",
  "Provisioning",
  "Preparing",
  "Queued",
  "Running",
  "NotResponding",
  "Running",
  "Paused",
  "Unknown",
  "Hibernating",
  "Running",
  "Finalizing",
]);

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
  readonly failJobs?: FailJobsFault;
  /** Jobs that pass through a list of statuses (default: every non-terminal one and an unknown one). */
  readonly statusJourney?: StatusJourneyFault;
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
  /** Time a cancelled job spends in CancelRequested before Canceled, in ms (minutes in Azure). Default 1000. */
  readonly cancelMs?: number;
  /**
   * The workspace the ARM routes serve (`/subscriptions/{s}/resourceGroups/{rg}/providers/
   * Microsoft.MachineLearningServices/workspaces/{ws}/jobs/...`); another one is 404. Default
   * 00000000-0000-0000-0000-000000000000 / emulator / emulator, the ids v2 answers carry.
   */
  readonly armWorkspace?: ArmWorkspace;
  /**
   * Datastore name -> container, for `azureml://datastores/<name>/paths/...` URIs (inputs and outputs). A
   * datastore not listed maps to outputContainer (the workspace's default datastore). Default {}.
   */
  readonly datastores?: Readonly<Record<string, string>>;
  /** Faults active from the start. Default none. */
  readonly faults?: EmulatorFaults;
  /** Seed of the PRNG behind rate faults, dropped rows and shuffles. Default 1. */
  readonly seed?: number;
  /**
   * Decides whether a bearer token is accepted (a rejected one gets 401), told which API the request is for
   * (the data plane or ARM). Default: any non-empty token. Exclusive with `auth`.
   */
  readonly acceptToken?: (token: string, api: EmulatorApi) => boolean;
  /**
   * Validate tokens as Entra-protected Azure APIs do (signature against the authority's keys, audience per API,
   * issuer, expiry): see auth.ts. Takes the place of acceptToken. Default: not set (any non-empty token).
   */
  readonly auth?: EntraAuthOptions;
}

export interface ArmWorkspace {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly workspace: string;
}

export interface ResolvedEmulatorOptions {
  readonly host: string;
  readonly port: number;
  readonly blobConnectionString: string;
  readonly outputContainer: string;
  readonly outputPathTemplate: string;
  readonly coldStartMs: number;
  readonly runMs: number;
  readonly cancelMs: number;
  readonly armWorkspace: ArmWorkspace;
  readonly datastores: Readonly<Record<string, string>>;
  readonly faults: EmulatorFaults;
  readonly seed: number;
  /** Checks a request's bearer token for the API it calls (from `auth`, or else `acceptToken`). */
  readonly authenticate: Authenticator["authenticate"];
  /** The authority named in 401 challenges, when `auth` is set. */
  readonly authority: string | undefined;
}

/** The two APIs the emulator serves: the endpoint's data plane and the workspace's ARM jobs API. */
export type EmulatorApi = "data-plane" | "arm";

export const EMULATOR_DEFAULTS = Object.freeze({
  host: "127.0.0.1",
  port: 0,
  outputContainer: "azureml-blobstore",
  outputPathTemplate: "artifacts/output/{jobId}/predictions.csv",
  coldStartMs: 200,
  runMs: 200,
  cancelMs: 1000,
  armWorkspace: Object.freeze({
    subscriptionId: "00000000-0000-0000-0000-000000000000",
    resourceGroup: "emulator",
    workspace: "emulator",
  }),
  seed: 1,
});

const CONTAINER_NAME = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;

const OPTION_KEYS = new Set([
  "host",
  "port",
  "blobConnectionString",
  "outputContainer",
  "outputPathTemplate",
  "coldStartMs",
  "runMs",
  "cancelMs",
  "armWorkspace",
  "datastores",
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
  if (typeof outputContainer !== "string" || !CONTAINER_NAME.test(outputContainer)) {
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
  const cancelMs = o.cancelMs ?? EMULATOR_DEFAULTS.cancelMs;
  checkNumber(cancelMs, "options.cancelMs", 0);
  const armWorkspace = o.armWorkspace ?? EMULATOR_DEFAULTS.armWorkspace;
  if (!isObject(armWorkspace)) throw new TypeError("options.armWorkspace must be an object");
  rejectUnknownKeys(
    armWorkspace,
    new Set(["subscriptionId", "resourceGroup", "workspace"]),
    "options.armWorkspace",
  );
  for (const key of ["subscriptionId", "resourceGroup", "workspace"] as const) {
    if (typeof armWorkspace[key] !== "string" || armWorkspace[key] === "")
      throw new TypeError(`options.armWorkspace.${key} must be a non-empty string`);
  }
  const datastores = o.datastores ?? {};
  if (!isObject(datastores)) throw new TypeError("options.datastores must be an object");
  for (const [name, container] of Object.entries(datastores)) {
    if (typeof container !== "string" || !CONTAINER_NAME.test(container)) {
      throw new RangeError(
        `options.datastores.${name} must be a valid container name, got ${JSON.stringify(container)}`,
      );
    }
  }
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
    cancelMs,
    armWorkspace: Object.freeze({ ...armWorkspace }),
    datastores: Object.freeze({ ...datastores }),
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
  failJobs: ["count", "rate", "error"],
  statusJourney: ["count", "rate", "statuses"],
  stuckJobs: ["count", "rate"],
  missingRows: ["every", "rate"],
  malformedRows: ["count"],
  outputShape: ["delimiter", "header", "bracketed", "quoted", "crlf", "shuffle", "mlflow"],
};

const TARGETS: ReadonlySet<string> = new Set(["submit", "status", "arm_status", "arm_cancel", "arm", "any"]);
const TERMINAL: ReadonlySet<string> = new Set(["Completed", "Failed", "Canceled"]);
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
            throw new RangeError(
              `${field} must be one of ${[...TARGETS].join(", ")}, got ${JSON.stringify(v)}`,
            );
          }
          break;
        case "statuses":
          if (
            !Array.isArray(v) ||
            v.length === 0 ||
            !v.every((status) => typeof status === "string" && status !== "" && !TERMINAL.has(status))
          ) {
            throw new TypeError(
              `${field} must be a non-empty array of statuses other than Completed, Failed and Canceled`,
            );
          }
          copy[key] = Object.freeze([...v]);
          continue;
        case "error":
          copy[key] = checkErrorBody(v, field, 0);
          continue;
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

function checkErrorBody(value: unknown, name: string, depth: number): JobErrorBody {
  if (!isObject(value)) throw new TypeError(`${name} must be an object {code, message, target?, details?}`);
  rejectUnknownKeys(value, new Set(["code", "message", "target", "details"]), name);
  if (typeof value.code !== "string" || value.code === "")
    throw new TypeError(`${name}.code must be a non-empty string`);
  if (typeof value.message !== "string") throw new TypeError(`${name}.message must be a string`);
  if (value.target !== undefined && typeof value.target !== "string")
    throw new TypeError(`${name}.target must be a string`);
  if (value.details !== undefined && (!Array.isArray(value.details) || depth >= 3))
    throw new TypeError(`${name}.details must be an array (nested at most 3 deep)`);
  const details = (value.details as unknown[] | undefined)?.map((d, i) =>
    checkErrorBody(d, `${name}.details[${i}]`, depth + 1),
  );
  return Object.freeze({
    code: value.code,
    message: value.message,
    ...(value.target === undefined ? {} : { target: value.target as string }),
    ...(details === undefined ? {} : { details: Object.freeze(details) }),
  });
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
