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
import { EndpointError } from "./errors.ts";
import type { ApiFlavor } from "./settings.ts";
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

export interface SubmitJobRequest {
  /** https URI of the input folder (or file) in Blob Storage. */
  readonly inputUri: string;
  readonly inputType: "UriFolder" | "UriFile";
  /** v2 flavor: azureml://datastores/<ds>/paths/<path> where the job writes predictions.csv. */
  readonly outputUri?: string;
  /**
   * Sent as repeatability_request-id. The same id must be used for every retry of one submission: the
   * service then returns the job it already created instead of a second one.
   */
  readonly repeatabilityId: string;
}

/** What the endpoint client reports: each HTTP retry, each token obtained. */
export type EndpointEvent =
  | { readonly type: "http_retry"; readonly operation: "submit" | "status" }
  | { readonly type: "token_renewed"; readonly cause: TokenRenewalCause };

/** Per-call options, as the Azure SDK has them. */
export interface EndpointCallOptions {
  readonly abortSignal?: AbortSignal;
}

export interface JobState {
  readonly jobId: string;
  /** As the service reports it; statuses this code does not know are non-terminal. */
  readonly status: string;
  readonly error?: { readonly code?: string; readonly message?: string };
  /** The service answered 404 for the job: just created and not yet visible, or lost (see the job poller). */
  readonly notFound?: boolean;
}

export interface EndpointClient {
  submitJob(request: SubmitJobRequest, options?: EndpointCallOptions): Promise<JobState>;
  getJob(jobId: string, options?: EndpointCallOptions): Promise<JobState>;
}

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
  const rawError = (object.error ?? properties.error) as Record<string, unknown> | undefined;
  const error =
    rawError && typeof rawError === "object"
      ? {
          ...(typeof rawError.code === "string" ? { code: rawError.code } : {}),
          ...(typeof rawError.message === "string" ? { message: rawError.message } : {}),
        }
      : undefined;
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

function failure(operation: string, response: PipelineResponse): EndpointError {
  const body = parseBody(response) as { error?: { code?: string; message?: string } } | undefined;
  const detail = body?.error?.message ?? response.bodyAsText?.slice(0, 200) ?? "";
  // Retries are exhausted by now for 429/5xx; they may succeed later. 4xx other than 408/429 will not.
  const retriable = response.status >= 500 || response.status === 408 || response.status === 429;
  return new EndpointError(`${operation} failed with HTTP ${response.status}${detail ? `: ${detail}` : ""}`, {
    status: response.status,
    ...(body?.error?.code ? { code: body.error.code } : {}),
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
  const allowInsecureConnection = isLoopback(new URL(scoringUri));
  const httpClient = options.httpClient ?? createDefaultHttpClient();
  const httpPipeline = createPipelineFromOptions({
    retryOptions: {
      maxRetries: options.maxRetries ?? 6,
      retryDelayInMs: options.retryDelayInMs ?? 1000,
      maxRetryDelayInMs: options.maxRetryDelayInMs ?? 60_000,
    },
    userAgentOptions: { userAgentPrefix: "forecast-connector" },
  });
  httpPipeline.addPolicy(
    entraTokenPolicy({
      credential: options.credential,
      scope: options.tokenScope ?? "https://ml.azure.com/.default",
      onRenewal: (cause) => options.onEvent?.({ type: "token_renewed", cause }),
    }),
    { phase: "Sign" },
  );
  // Sits after the retry policy, so it sees every attempt of a request: all but the first are retries.
  const attempts = new WeakMap<object, number>();
  const retryCounter: PipelinePolicy = {
    name: "retryCounter",
    async sendRequest(request, next) {
      const seen = (attempts.get(request) ?? 0) + 1;
      attempts.set(request, seen);
      if (seen > 1)
        options.onEvent?.({ type: "http_retry", operation: request.method === "POST" ? "submit" : "status" });
      return next(request);
    },
  };
  httpPipeline.addPolicy(retryCounter, { afterPhase: "Retry" });

  const send = (
    method: "GET" | "POST",
    url: string,
    body: unknown,
    extraHeaders: Record<string, string>,
    abortSignal?: AbortSignal,
  ) => {
    const headers = createHttpHeaders({ Accept: "application/json", ...extraHeaders });
    if (body !== undefined) headers.set("Content-Type", "application/json");
    if (options.deployment) headers.set("azureml-model-deployment", options.deployment);
    const request = createPipelineRequest({
      url,
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      timeout: options.requestTimeoutInMs ?? 30_000,
      allowInsecureConnection,
      ...(abortSignal ? { abortSignal } : {}),
    });
    return httpPipeline.sendRequest(httpClient, request);
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

  return {
    async submitJob(request, callOptions) {
      const response = await send(
        "POST",
        scoringUri,
        submitBody(request),
        { "repeatability_request-id": request.repeatabilityId },
        callOptions?.abortSignal,
      );
      if (response.status < 200 || response.status >= 300) throw failure("job submission", response);
      return readJobState(parseBody(response));
    },

    async getJob(jobId, getOptions) {
      const url = statusUrlTemplate
        .replaceAll("{scoringUri}", scoringUri)
        .replaceAll("{jobId}", encodeURIComponent(jobId));
      const response = await send("GET", url, undefined, {}, getOptions?.abortSignal);
      // A job just created can be briefly unknown to the status API: not terminal, the job timeout bounds it.
      if (response.status === 404) return { jobId, status: "Unknown", notFound: true };
      if (response.status < 200 || response.status >= 300) throw failure(`status of job ${jobId}`, response);
      return readJobState(parseBody(response), jobId);
    },
  };
}
