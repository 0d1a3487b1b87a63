import type { TokenCredential } from "@azure/core-auth";
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest,
  type HttpClient,
  type PipelinePolicy,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";
import { describeServiceError, EndpointError, readServiceError, type ServiceErrorBody } from "./errors.ts";
import { isTerminalJobStatus } from "./jobStatus.ts";
import type { ApiFlavor, StatusApi } from "./settings.ts";
import { entraTokenPolicy, type TokenRenewalCause } from "./tokenPolicy.ts";

export interface EndpointClientOptions {
  /** The batch endpoint's jobs URL, e.g. https://<endpoint>.<region>.inference.ml.azure.com/jobs */
  readonly scoringUri: string;
  /** Body shape: "guide" (the endpoint owners' contract, default) or "v2" (Azure ML v2 REST). */
  readonly apiFlavor?: ApiFlavor;
  /** Where a job's status is read; {scoringUri} and {jobId} are replaced. Default "{scoringUri}/{jobId}". */
  readonly statusUrlTemplate?: string;
  /** Sent as azureml-model-deployment to target a non-default deployment. */
  readonly deployment?: string;
  /**
   * Where getJob reads a status: "data-plane" (statusUrlTemplate, default) or "arm" (the workspace's jobs
   * API; needs `arm`).
   */
  readonly statusApi?: StatusApi;
  /** The workspace on Azure Resource Manager: ARM status reads and cancelJob. Absent: neither is possible. */
  readonly arm?: ArmOptions;
  readonly credential: TokenCredential;
  /** Default "https://ml.azure.com/.default". */
  readonly tokenScope?: string;
  /** Retries of 429 (honouring Retry-After), 5xx and network errors, with exponential backoff and jitter. */
  readonly maxRetries?: number;
  readonly retryDelayInMs?: number;
  readonly maxRetryDelayInMs?: number;
  /** Per-attempt timeout. Default 30 s. */
  readonly requestTimeoutInMs?: number;
  /** Instrumentation (src/observability/instrumentation.ts); never given a token. */
  readonly onEvent?: (event: EndpointEvent) => void;
  /** Injected in tests; default the SDK's Node HTTP client. */
  readonly httpClient?: HttpClient;
}

/** Where the workspace's jobs API is; option names as in ARM_SETTINGS (src/azure/settings.ts). */
export interface ArmOptions {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly workspace: string;
  /** Default "https://management.azure.com". */
  readonly baseUrl?: string;
  /** Default "2024-04-01". */
  readonly apiVersion?: string;
  /** Default "https://management.azure.com/.default": ARM takes its own token, apart from the endpoint's. */
  readonly tokenScope?: string;
}

export interface SubmitJobRequest {
  /** https URI of the input folder (or file) in Blob Storage. */
  readonly inputUri: string;
  readonly inputType: JobInputType;
  /** v2 flavor: azureml://datastores/<ds>/paths/<path> where the job writes predictions.csv. */
  readonly outputUri?: string;
  /**
   * Sent as repeatability_request-id. The same id must be used for every retry of one submission: the
   * service then returns the job it already created instead of a second one.
   */
  readonly repeatabilityId: string;
}

export type JobInputType = "UriFolder" | "UriFile";

/** What a request is for: the label of endpoint_http_retries_total. */
export type EndpointOperation = "submit" | "status" | "cancel";

/** What the endpoint client reports: each HTTP retry, each token obtained. */
export type EndpointEvent =
  | { readonly type: "http_retry"; readonly operation: EndpointOperation }
  | { readonly type: "token_renewed"; readonly cause: TokenRenewalCause };

/** Per-call options, as the Azure SDK has them. */
export interface EndpointCallOptions {
  readonly abortSignal?: AbortSignal;
}

export interface JobState {
  readonly jobId: string;
  /** As the service reports it; statuses this code does not know are non-terminal. */
  readonly status: string;
  /** The service's error body (code, message, details), when it gave one. */
  readonly error?: ServiceErrorBody;
  /** The service answered 404 for the job: just created and not yet visible, or lost (see the job poller). */
  readonly notFound?: boolean;
}

/**
 * What a cancel request got: accepted (202: the job goes through CancelRequested to Canceled, in minutes),
 * not_found (404), or rejected (another 4xx, e.g. a job that already ended) with the service's error.
 */
export interface CancelResult {
  readonly outcome: "accepted" | "not_found" | "rejected";
  readonly status: number;
  readonly error?: ServiceErrorBody;
}

export interface EndpointClient {
  submitJob(request: SubmitJobRequest, options?: EndpointCallOptions): Promise<JobState>;
  getJob(jobId: string, options?: EndpointCallOptions): Promise<JobState>;
  /** Asks ARM to cancel the job and returns once ARM answered; it never waits for the job to end. */
  cancelJob(jobId: string, options?: EndpointCallOptions): Promise<CancelResult>;
  /** Whether cancelJob can be used (the ARM workspace is configured). */
  readonly canCancel: boolean;
}

export const ARM_DEFAULTS = Object.freeze({
  baseUrl: "https://management.azure.com",
  apiVersion: "2024-04-01",
  tokenScope: "https://management.azure.com/.default",
});

function isLoopback(url: URL): boolean {
  return ["127.0.0.1", "localhost", "[::1]", "::1"].includes(url.hostname);
}

/** The job name: `name` in v2 answers, else the last path segment of `id` (v2 ids are ARM resource ids). */
function readJobState(body: unknown, fallbackId?: string): JobState {
  const object = (body ?? {}) as Record<string, unknown>;
  const properties = (object.properties ?? {}) as Record<string, unknown>;
  const idField = typeof object.id === "string" ? object.id : undefined;
  const jobId =
    (typeof object.name === "string" && object.name) ||
    (idField ? (idField.split("/").filter(Boolean).pop() ?? idField) : undefined) ||
    fallbackId;
  if (!jobId) throw new EndpointError("the endpoint's answer has no job id", { retriable: false });
  const status =
    (typeof object.status === "string" && object.status) ||
    (typeof properties.status === "string" && properties.status) ||
    "Unknown";
  const error = readServiceError(object.error ?? properties.error);
  return { jobId, status, ...(error ? { error } : {}) };
}

function parseBody(response: PipelineResponse): unknown {
  if (!response.bodyAsText) return undefined;
  try {
    return JSON.parse(response.bodyAsText);
  } catch {
    return undefined;
  }
}

function errorOf(response: PipelineResponse): ServiceErrorBody | undefined {
  return readServiceError((parseBody(response) as { error?: unknown } | undefined)?.error);
}

function failure(operation: string, response: PipelineResponse): EndpointError {
  const serviceError = errorOf(response);
  const detail = serviceError
    ? describeServiceError(serviceError)
    : (response.bodyAsText?.slice(0, 200) ?? "");
  // Retries are exhausted by now for 429/5xx; they may succeed later. 4xx other than 408/429 will not.
  const retriable = response.status >= 500 || response.status === 408 || response.status === 429;
  return new EndpointError(`${operation} failed with HTTP ${response.status}${detail ? `: ${detail}` : ""}`, {
    status: response.status,
    ...(serviceError?.code ? { code: serviceError.code } : {}),
    ...(serviceError ? { serviceError } : {}),
    retriable,
  });
}

/**
 * A thin, typed client for an Azure ML batch endpoint, in either api flavor, over the Azure SDK's HTTP
 * pipeline: retries, Retry-After and backoff are the pipeline's policies, the token is the Entra policy's.
 */
export function createEndpointClient(options: EndpointClientOptions): EndpointClient {
  const scoringUri = options.scoringUri.replace(/\/+$/, "");
  const flavor = options.apiFlavor ?? "guide";
  const statusUrlTemplate = options.statusUrlTemplate ?? "{scoringUri}/{jobId}";
  const statusApi = options.statusApi ?? "data-plane";
  const arm = options.arm;
  if (statusApi === "arm" && arm === undefined) {
    throw new TypeError('statusApi "arm" needs the arm options (subscription, resource group, workspace)');
  }
  const armBaseUrl = (arm?.baseUrl ?? ARM_DEFAULTS.baseUrl).replace(/\/+$/, "");
  const armApiVersion = arm?.apiVersion ?? ARM_DEFAULTS.apiVersion;
  const armJobsUrl = arm
    ? `${armBaseUrl}/subscriptions/${encodeURIComponent(arm.subscriptionId)}/resourceGroups/${encodeURIComponent(arm.resourceGroup)}` +
      `/providers/Microsoft.MachineLearningServices/workspaces/${encodeURIComponent(arm.workspace)}/jobs`
    : undefined;
  const httpClient = options.httpClient ?? createDefaultHttpClient();

  // Sits after the retry policy, so it sees every attempt of a request: all but the first are retries.
  const attempts = new WeakMap<object, number>();
  const operations = new WeakMap<object, EndpointOperation>();
  const retryCounter: PipelinePolicy = {
    name: "retryCounter",
    async sendRequest(request, next) {
      const seen = (attempts.get(request) ?? 0) + 1;
      attempts.set(request, seen);
      if (seen > 1) options.onEvent?.({ type: "http_retry", operation: operations.get(request) ?? "status" });
      return next(request);
    },
  };

  /**
   * One SDK pipeline per audience: the endpoint's data plane and ARM each get their own token policy (a token
   * is issued for one scope), the same retry policy (429 with Retry-After, 5xx, network) and retry counter.
   */
  const pipelineFor = (scope: string) => {
    const pipeline = createPipelineFromOptions({
      retryOptions: {
        maxRetries: options.maxRetries ?? 6,
        retryDelayInMs: options.retryDelayInMs ?? 1000,
        maxRetryDelayInMs: options.maxRetryDelayInMs ?? 60_000,
      },
      userAgentOptions: { userAgentPrefix: "forecast-connector" },
    });
    pipeline.addPolicy(
      entraTokenPolicy({
        credential: options.credential,
        scope,
        onRenewal: (cause) => options.onEvent?.({ type: "token_renewed", cause }),
      }),
      { phase: "Sign" },
    );
    pipeline.addPolicy(retryCounter, { afterPhase: "Retry" });
    return pipeline;
  };
  const dataPlane = {
    pipeline: pipelineFor(options.tokenScope ?? "https://ml.azure.com/.default"),
    allowInsecureConnection: isLoopback(new URL(scoringUri)),
    deploymentHeader: true,
  };
  const management = arm
    ? {
        pipeline: pipelineFor(arm.tokenScope ?? ARM_DEFAULTS.tokenScope),
        allowInsecureConnection: isLoopback(new URL(armBaseUrl)),
        // The deployment header routes scoring traffic; ARM addresses the job by its name alone.
        deploymentHeader: false,
      }
    : undefined;

  const send = (
    target: NonNullable<typeof management>,
    operation: EndpointOperation,
    method: "GET" | "POST",
    url: string,
    body: unknown,
    extraHeaders: Record<string, string>,
    abortSignal?: AbortSignal,
  ) => {
    const headers = createHttpHeaders({ Accept: "application/json", ...extraHeaders });
    if (body !== undefined) headers.set("Content-Type", "application/json");
    if (target.deploymentHeader && options.deployment)
      headers.set("azureml-model-deployment", options.deployment);
    const request = createPipelineRequest({
      url,
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      timeout: options.requestTimeoutInMs ?? 30_000,
      allowInsecureConnection: target.allowInsecureConnection,
      ...(abortSignal ? { abortSignal } : {}),
    });
    operations.set(request, operation);
    return target.pipeline.sendRequest(httpClient, request);
  };

  const submitBody = (request: SubmitJobRequest): unknown => {
    if (flavor === "guide") return { input_data: { uri: request.inputUri } };
    return {
      properties: {
        InputData: { input: { JobInputType: request.inputType, Uri: request.inputUri } },
        ...(request.outputUri
          ? { OutputData: { score: { JobOutputType: "UriFile", Uri: request.outputUri } } }
          : {}),
      },
    };
  };

  const dataPlaneJob = async (jobId: string, abortSignal?: AbortSignal): Promise<JobState> => {
    const url = statusUrlTemplate
      .replaceAll("{scoringUri}", scoringUri)
      .replaceAll("{jobId}", encodeURIComponent(jobId));
    const response = await send(dataPlane, "status", "GET", url, undefined, {}, abortSignal);
    // A job just created can be briefly unknown to the status API: not terminal, the job timeout bounds it.
    if (response.status === 404) return { jobId, status: "Unknown", notFound: true };
    if (response.status < 200 || response.status >= 300) throw failure(`status of job ${jobId}`, response);
    return readJobState(parseBody(response), jobId);
  };

  const armJobUrl = (jobId: string, suffix = "") =>
    `${armJobsUrl}/${encodeURIComponent(jobId)}${suffix}?api-version=${encodeURIComponent(armApiVersion)}`;

  const armJob = async (jobId: string, abortSignal?: AbortSignal): Promise<JobState> => {
    const target = management as NonNullable<typeof management>;
    const response = await send(target, "status", "GET", armJobUrl(jobId), undefined, {}, abortSignal);
    if (response.status === 404) return { jobId, status: "Unknown", notFound: true };
    if (response.status < 200 || response.status >= 300)
      throw failure(`ARM status of job ${jobId}`, response);
    const state = readJobState(parseBody(response), jobId);
    if (state.status !== "Failed" || state.error !== undefined) return state;
    // ARM's job resource says Failed but not why; the data plane keeps the error body. Best effort: the
    // status stands whatever this read does.
    try {
      const detailed = await dataPlaneJob(jobId, abortSignal);
      return detailed.error && isTerminalJobStatus(detailed.status)
        ? { ...state, error: detailed.error }
        : state;
    } catch {
      return state;
    }
  };

  return {
    canCancel: management !== undefined,

    async submitJob(request, callOptions) {
      const response = await send(
        dataPlane,
        "submit",
        "POST",
        scoringUri,
        submitBody(request),
        { "repeatability_request-id": request.repeatabilityId },
        callOptions?.abortSignal,
      );
      if (response.status < 200 || response.status >= 300) throw failure("job submission", response);
      return readJobState(parseBody(response));
    },

    getJob(jobId, getOptions) {
      return statusApi === "arm"
        ? armJob(jobId, getOptions?.abortSignal)
        : dataPlaneJob(jobId, getOptions?.abortSignal);
    },

    async cancelJob(jobId, cancelOptions) {
      if (management === undefined) {
        throw new EndpointError("cancelling a job needs the ARM workspace settings", { retriable: false });
      }
      const response = await send(
        management,
        "cancel",
        "POST",
        armJobUrl(jobId, "/cancel"),
        undefined,
        {},
        cancelOptions?.abortSignal,
      );
      const error = errorOf(response);
      if (response.status >= 200 && response.status < 300)
        return { outcome: "accepted", status: response.status };
      if (response.status === 404) return { outcome: "not_found", status: 404, ...(error ? { error } : {}) };
      // 5xx and 429 have outlasted the pipeline's retries: that is a failure, not the service's answer.
      if (response.status >= 500 || response.status === 429 || response.status === 408)
        throw failure(`cancel of job ${jobId}`, response);
      return { outcome: "rejected", status: response.status, ...(error ? { error } : {}) };
    },
  };
}
