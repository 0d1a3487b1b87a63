/**
 * The HTTP face of the emulator: the batch endpoint's data plane (POST /jobs, GET /jobs/{name}) in both API flavors,
 * plus an unauthenticated admin API for tests and the demo. It wires the pieces (options, faults, job store, scorer)
 * and holds no per-job timers: all timing is computed when a request arrives.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { BlobServiceClient } from "@azure/storage-blob";
import { bearerChallenge } from "./auth.ts";
import { apiOf, createFaultDecider, type RequestKind } from "./faults.ts";
import { createJobStore, type JobRecord, type JobSnapshot, type JobStatus } from "./jobs.ts";
import { type EmulatorFaults, type EmulatorOptions, resolveEmulatorOptions } from "./options.ts";
import { createScorer } from "./scoring.ts";
import { parseSubmitBody, SubmitBodyError } from "./submit.ts";

export interface Emulator {
  /** e.g. http://127.0.0.1:41234 */
  readonly baseUrl: string;
  /** `${baseUrl}/jobs`: what the connector is configured with as the scoring URI. */
  readonly scoringUri: string;
  /** Where the ARM routes are (FC_ARM_BASE_URL): the same server, `baseUrl`. */
  readonly armBaseUrl: string;
  /** The workspace the ARM routes serve (FC_ARM_SUBSCRIPTION_ID, FC_ARM_RESOURCE_GROUP, FC_ARM_WORKSPACE). */
  readonly armWorkspace: {
    readonly subscriptionId: string;
    readonly resourceGroup: string;
    readonly workspace: string;
  };
  /** Replaces all faults (validated; throws TypeError/RangeError), resetting their counters. */
  setFaults(faults: EmulatorFaults): void;
  jobs(): JobSnapshot[];
  /** Stops listening, drops open connections and waits for jobs being scored to finish writing. */
  close(): Promise<void>;
}

/**
 * The ARM routes of a workspace's jobs: GET .../jobs/{name} and POST .../jobs/{name}/cancel. ARM matches the
 * path's fixed segments and the resource group without regard to case; job names are case-sensitive.
 */
const ARM_JOB_ROUTE =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.MachineLearningServices\/workspaces\/([^/]+)\/jobs\/([^/]+)(\/cancel)?$/i;
/** Azure's name for a workspace's default blob datastore; every datastore name maps to outputContainer. */
const DEFAULT_DATASTORE = "workspaceblobstore";
const MAX_BODY_BYTES = 1024 * 1024;

class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(statusCode: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.headers = headers;
  }
}

export async function createEmulator(options: EmulatorOptions): Promise<Emulator> {
  const config = resolveEmulatorOptions(options);
  const service = BlobServiceClient.fromConnectionString(config.blobConnectionString);
  // The workspace's default datastore exists in Azure; here it is created on first start.
  await service.getContainerClient(config.outputContainer).createIfNotExists();
  const uriContext = {
    accountName: service.accountName,
    datastoreContainer: config.outputContainer,
    datastores: config.datastores,
  };
  const faults = createFaultDecider(config.faults, config.seed);
  const store = createJobStore({
    coldStartMs: config.coldStartMs,
    runMs: config.runMs,
    cancelMs: config.cancelMs,
  });
  const scorer = createScorer({
    service,
    outputContainer: config.outputContainer,
    datastores: config.datastores,
  });
  const workspace = config.armWorkspace;
  // ARM prefix of v2 job ids; the job name is the last segment, as in Azure.
  const armJobPrefix =
    `/subscriptions/${workspace.subscriptionId}/resourceGroups/${workspace.resourceGroup}/providers/` +
    `Microsoft.MachineLearningServices/workspaces/${workspace.workspace}/jobs/`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://emulator");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (path.startsWith("/_emulator/")) return admin(req, res, path);
    if (path === "/jobs") {
      if (req.method !== "POST")
        throw new HttpError(405, "MethodNotAllowed", `${req.method} /jobs: use POST`);
      return endpoint(req, res, "submit");
    }
    const arm = ARM_JOB_ROUTE.exec(path);
    if (arm !== null) return armRoute(req, res, url, arm);
    const match = /^\/jobs\/([^/]+)$/.exec(path);
    if (match !== null) {
      if (req.method !== "GET")
        throw new HttpError(405, "MethodNotAllowed", `${req.method} ${path}: use GET`);
      let jobName: string;
      try {
        jobName = decodeURIComponent(match[1] as string);
      } catch {
        throw new HttpError(400, "BadRequest", `job name in ${path} is not valid percent-encoding`);
      }
      return endpoint(req, res, "status", jobName);
    }
    throw new HttpError(404, "NotFound", `no route for ${req.method} ${path}`);
  }

  /**
   * ARM's checks before the token's: the api-version query parameter, then the workspace. An unknown job is
   * 404 after authentication, as on the data plane.
   */
  async function armRoute(req: IncomingMessage, res: ServerResponse, url: URL, match: RegExpExecArray) {
    const [, subscription, resourceGroup, workspaceName, rawName, cancel] = match as unknown as string[];
    const kind: RequestKind = cancel === undefined ? "arm_status" : "arm_cancel";
    const method = kind === "arm_status" ? "GET" : "POST";
    if (req.method !== method) {
      throw new HttpError(405, "MethodNotAllowed", `${req.method} ${url.pathname}: use ${method}`);
    }
    if (!url.searchParams.get("api-version")) {
      throw new HttpError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
      );
    }
    if (
      subscription !== workspace.subscriptionId ||
      resourceGroup?.toLowerCase() !== workspace.resourceGroup.toLowerCase() ||
      workspaceName?.toLowerCase() !== workspace.workspace.toLowerCase()
    ) {
      throw new HttpError(
        404,
        "ResourceNotFound",
        `The Resource 'Microsoft.MachineLearningServices/workspaces/${workspaceName}' under resource group '${resourceGroup}' was not found.`,
      );
    }
    let jobName: string;
    try {
      jobName = decodeURIComponent(rawName as string);
    } catch {
      throw new HttpError(400, "BadRequest", `job name ${rawName} is not valid percent-encoding`);
    }
    return endpoint(req, res, kind, jobName);
  }

  /**
   * Auth, then injected faults, then the real work: 401s do not use up fault counts. The token check is told
   * which API is asked (data-plane or arm): their tokens are issued for different audiences.
   */
  async function endpoint(
    req: IncomingMessage,
    res: ServerResponse,
    kind: RequestKind,
    jobName = "",
    api = apiOf(kind),
  ): Promise<void> {
    const token = /^Bearer\s+(\S.*)$/i.exec(req.headers.authorization ?? "")?.[1]?.trim();
    if (token === undefined || token === "") {
      throw new HttpError(401, "Unauthorized", "an Authorization: Bearer <token> header is required", {
        "WWW-Authenticate": bearerChallenge(config.authority),
      });
    }
    const decision = await config.authenticate(token, api);
    if (!decision.ok) {
      throw new HttpError(401, "Unauthorized", decision.description, {
        "WWW-Authenticate": bearerChallenge(config.authority, decision.description),
      });
    }

    const fault = faults.decideRequest(kind);
    if (fault?.type === "dropConnection") {
      req.socket.destroy();
      return;
    }
    if (fault?.type === "throttle") {
      send(res, 429, errorBody("TooManyRequests", "emulated throttling (throttle fault)"), {
        "Retry-After": String(fault.retryAfterSeconds),
        // ARM says how many reads are left in the window; 0 here since this one was refused.
        ...(apiOf(kind) === "arm" ? { "x-ms-ratelimit-remaining-subscription-reads": "0" } : {}),
      });
      return;
    }
    if (fault?.type === "serverError") {
      throw new HttpError(500, "InternalServerError", "emulated server error (serverError fault)");
    }
    if (kind === "submit") return submit(req, res);

    const job = store.get(jobName);
    if (job === undefined) {
      if (kind === "status") throw new HttpError(404, "NotFound", `job ${jobName} not found`);
      throw new HttpError(
        404,
        "ResourceNotFound",
        `The Resource 'Microsoft.MachineLearningServices/workspaces/${workspace.workspace}/jobs/${jobName}' was not found.`,
      );
    }
    if (kind === "arm_cancel") {
      // Asynchronous, as ARM does it: 202 now, CancelRequested for cancelMs, then Canceled. A job that has
      // ended is left as it is (a no-op, answered the same).
      store.cancel(job);
      const location = `${armJobPrefix}${job.id}?api-version=${new URL(req.url ?? "/", "http://emulator").searchParams.get("api-version")}`;
      res.writeHead(202, { Location: location, "Retry-After": "10", "Content-Length": 0 });
      res.end();
      return;
    }
    if (kind === "arm_status") job.armStatusPolls++;
    else job.statusPolls++;
    const status = await store.observe(job, scorer.finish);
    send(res, 200, kind === "arm_status" ? armJobBody(job, status) : jobBody(job, status));
  }

  async function submit(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    const repeatabilityId =
      header(req, "repeatability_request-id") ?? header(req, "repeatability-request-id") ?? null;
    // A repeated id is answered with the job it created, whatever the body says: retries never duplicate jobs.
    let job = repeatabilityId === null ? undefined : store.byRepeatabilityId(repeatabilityId);
    if (job !== undefined) {
      job.submitCount++;
    } else {
      let request: ReturnType<typeof parseSubmitBody>;
      try {
        request = parseSubmitBody(body, uriContext);
      } catch (error) {
        if (error instanceof SubmitBodyError) throw new HttpError(400, "BadRequest", error.message);
        throw error;
      }
      job = store.create({
        flavor: request.flavor,
        inputUri: request.inputUri,
        ...(request.inputType === undefined ? {} : { inputType: request.inputType }),
        outputContainer: config.outputContainer,
        outputBlobPath: request.outputBlobPath ?? config.outputPathTemplate,
        repeatabilityId,
        faults: faults.decideJob(),
      });
    }
    if (faults.decideLoseSubmitResponse()) {
      req.socket.destroy();
      return;
    }
    // 200 for new and repeated submits alike: a client cannot tell a retry's answer from the first one's.
    send(res, 200, jobBody(job, await store.observe(job, scorer.finish)));
  }

  async function admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === "/_emulator/health" && req.method === "GET") {
      send(res, 200, { status: "ok", jobs: store.snapshots().length });
    } else if (path === "/_emulator/jobs" && req.method === "GET") {
      send(res, 200, store.snapshots());
    } else if (path === "/_emulator/faults" && req.method === "GET") {
      send(res, 200, faults.current());
    } else if (path === "/_emulator/faults" && req.method === "PUT") {
      const body = await readJson(req);
      try {
        faults.set(body);
      } catch (error) {
        throw new HttpError(400, "BadRequest", (error as Error).message);
      }
      send(res, 200, faults.current());
    } else {
      throw new HttpError(404, "NotFound", `no admin route for ${req.method} ${path}`);
    }
  }

  /**
   * The job as ARM's jobs API shows it: the resource, with its status in properties and no error body (ARM
   * does not carry it; the data plane does).
   */
  function armJobBody(job: JobRecord, status: JobStatus): unknown {
    return {
      id: `${armJobPrefix}${job.id}`,
      name: job.id,
      type: "Microsoft.MachineLearningServices/workspaces/jobs",
      properties: {
        jobType: "Pipeline",
        status,
        experimentName: "batch-endpoint",
        inputs: { input: { jobInputType: job.inputType ?? "uri_folder", uri: job.inputUri } },
        outputs: {
          score: {
            jobOutputType: "uri_file",
            uri: `azureml://datastores/${DEFAULT_DATASTORE}/paths/${job.outputBlobPath}`,
          },
        },
      },
      systemData: { createdAt: new Date(job.createdAtMs).toISOString() },
    };
  }

  function jobBody(job: JobRecord, status: JobStatus): unknown {
    const error = job.outcome?.error;
    if (job.flavor === "guide") {
      return { id: job.id, status, ...(error === undefined ? {} : { error }) };
    }
    return {
      id: `${armJobPrefix}${job.id}`,
      name: job.id,
      properties: {
        status,
        inputData: { input: { jobInputType: job.inputType, uri: job.inputUri } },
        outputData: {
          score: {
            jobOutputType: "UriFile",
            uri: `azureml://datastores/${DEFAULT_DATASTORE}/paths/${job.outputBlobPath}`,
          },
        },
      },
      ...(error === undefined ? {} : { error: { ...error, details: error.details ?? [] } }),
    };
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent || res.destroyed) return;
      if (error instanceof HttpError) {
        send(res, error.statusCode, errorBody(error.code, error.message), error.headers);
      } else {
        send(res, 500, errorBody("InternalServerError", `emulator error: ${String(error)}`));
      }
    });
  });
  server.listen(config.port, config.host);
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const baseUrl = `http://${host}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    baseUrl,
    scoringUri: `${baseUrl}/jobs`,
    armBaseUrl: baseUrl,
    armWorkspace: workspace,
    setFaults: (next) => faults.set(next),
    jobs: () => store.snapshots(),
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await store.idle();
      })();
      return closing;
    },
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === "" ? undefined : text;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(413, "RequestEntityTooLarge", "request body exceeds 1 MiB");
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, "BadRequest", "request body is not valid JSON");
  }
}

function errorBody(code: string, message: string): unknown {
  return { error: { code, message, details: [] } };
}

function send(
  res: ServerResponse,
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(statusCode, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
