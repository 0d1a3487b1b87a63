/**
 * Settings of the Azure side: the two blob containers (blobStore.ts), the batch endpoint (endpointClient.ts),
 * the Entra credential (credential.ts) and the job poller (jobPoller.ts).
 */
import {
  blobPath,
  blobPathProblem,
  boolean,
  containerName,
  headerSafeName,
  integer,
  oneOf,
  storageConnectionString,
  template,
  tokenScope,
  tokenUrl,
} from "../config/parsers.ts";
import { defineSettings, type OptionsOf } from "../config/spec.ts";

/** Placeholders of FC_OUTPUT_PATH_TEMPLATE and FC_ENDPOINT_STATUS_URL_TEMPLATE. */
export const OUTPUT_PATH_PLACEHOLDERS = ["jobId", "batchId"] as const;
export const STATUS_URL_PLACEHOLDERS = ["scoringUri", "jobId"] as const;

/** Where batch files are uploaded: the jobs' input. */
export const INPUT_STORAGE_SETTINGS = defineSettings({
  connectionString: {
    env: "FC_INPUT_STORAGE_CONNECTION_STRING",
    secret: true,
    description:
      "Connection string of the storage account batch files are uploaded to (or FC_INPUT_STORAGE_ACCOUNT_URL)",
    parser: storageConnectionString,
  },
  accountUrl: {
    env: "FC_INPUT_STORAGE_ACCOUNT_URL",
    description: "Blob service URL of that account, used with the Entra credential (or a connection string)",
    parser: tokenUrl,
  },
  container: {
    env: "FC_INPUT_CONTAINER",
    required: true,
    description: "Container batch files are uploaded to; the workspace must be able to read it",
    parser: containerName,
  },
  prefix: {
    env: "FC_INPUT_PREFIX",
    default: "forecast-connector/batches",
    description: "Blob path prefix of uploaded batch files",
    parser: blobPath,
  },
});
export type InputStorageSettings = OptionsOf<typeof INPUT_STORAGE_SETTINGS>;

/** Where jobs write predictions.csv: the workspace's default datastore. */
export const OUTPUT_STORAGE_SETTINGS = defineSettings({
  connectionString: {
    env: "FC_OUTPUT_STORAGE_CONNECTION_STRING",
    secret: true,
    description:
      "Connection string of the account jobs write predictions to; when no output storage is set, the input's is used",
    parser: storageConnectionString,
  },
  accountUrl: {
    env: "FC_OUTPUT_STORAGE_ACCOUNT_URL",
    description: "Blob service URL of that account, used with the Entra credential (or a connection string)",
    parser: tokenUrl,
  },
  container: {
    env: "FC_OUTPUT_CONTAINER",
    default: "azureml-blobstore",
    description: "The workspace's default datastore container, where jobs write predictions.csv",
    parser: containerName,
  },
  pathTemplate: {
    env: "FC_OUTPUT_PATH_TEMPLATE",
    default: "artifacts/output/{jobId}/predictions.csv",
    description:
      "Blob path of a job's predictions.csv; {jobId} and {batchId} are replaced (every job needs its own path)",
    parser: template({
      what: "a relative blob path template",
      allowed: OUTPUT_PATH_PLACEHOLDERS,
      requireOneOf: OUTPUT_PATH_PLACEHOLDERS,
      checkFilled: blobPathProblem,
    }),
  },
});
export type OutputStorageSettings = OptionsOf<typeof OUTPUT_STORAGE_SETTINGS>;

/** The batch endpoint client; option names are the client's own (SDK style, `InMs`). */
export const ENDPOINT_SETTINGS = defineSettings({
  scoringUri: {
    env: "FC_ENDPOINT_SCORING_URI",
    required: true,
    description: "URL of the batch endpoint's /jobs, where jobs are submitted",
    parser: tokenUrl,
  },
  apiFlavor: {
    env: "FC_ENDPOINT_API_FLAVOR",
    default: "guide",
    description: "guide (the endpoint owners' contract) or v2 (Azure ML v2 REST)",
    parser: oneOf(["guide", "v2"]),
  },
  statusUrlTemplate: {
    env: "FC_ENDPOINT_STATUS_URL_TEMPLATE",
    default: "{scoringUri}/{jobId}",
    description: "URL a job's status is polled at; {scoringUri} and {jobId} are replaced",
    parser: template({ what: "a URL template", allowed: STATUS_URL_PLACEHOLDERS, requireOneOf: ["jobId"] }),
  },
  deployment: {
    env: "FC_ENDPOINT_DEPLOYMENT",
    description:
      "Sent as azureml-model-deployment to target a non-default deployment; unset: the default one",
    parser: headerSafeName,
  },
  tokenScope: {
    env: "FC_ENDPOINT_TOKEN_SCOPE",
    default: "https://ml.azure.com/.default",
    description: "Entra token scope for submitting and polling jobs",
    parser: tokenScope,
  },
  maxRetries: {
    env: "FC_HTTP_MAX_RETRIES",
    default: "6",
    description: "Retries of a failed endpoint request (throttling, 5xx, network)",
    parser: integer(0, 100),
  },
  retryDelayInMs: {
    env: "FC_HTTP_RETRY_DELAY_MS",
    default: "1000",
    description: "First retry delay of an endpoint request; it grows exponentially with jitter",
    parser: integer(1, 600000),
  },
  maxRetryDelayInMs: {
    env: "FC_HTTP_MAX_RETRY_DELAY_MS",
    default: "60000",
    description: "Longest retry delay of an endpoint request (must be >= FC_HTTP_RETRY_DELAY_MS)",
    parser: integer(1, 3600000),
  },
  requestTimeoutInMs: {
    env: "FC_HTTP_REQUEST_TIMEOUT_MS",
    default: "30000",
    description: "Timeout of one endpoint request",
    parser: integer(100, 600000),
  },
});
export type EndpointSettings = OptionsOf<typeof ENDPOINT_SETTINGS>;
export type ApiFlavor = EndpointSettings["apiFlavor"];

/** The Entra credential for the endpoint and, with an account URL, for Blob Storage. */
export const CREDENTIAL_SETTINGS = defineSettings({
  kind: {
    env: "FC_AZURE_CREDENTIAL",
    default: "default",
    description:
      "default (DefaultAzureCredential: workload identity, managed identity, environment, Azure CLI ...) or local-dev (unsigned development token, accepted only by the local emulator on loopback)",
    parser: oneOf(["default", "local-dev"]),
  },
  disableInstanceDiscovery: {
    env: "FC_AZURE_DISABLE_INSTANCE_DISCOVERY",
    default: "false",
    description:
      "Trust AZURE_AUTHORITY_HOST as it is, without asking the public cloud's instance discovery about it: for a private or disconnected authority (Azure Stack Hub, ADFS, an air-gapped cloud); leave false for the public and national clouds",
    parser: boolean,
  },
});
export type CredentialSettings = OptionsOf<typeof CREDENTIAL_SETTINGS>;

/** The one scheduler that polls every running job. */
export const POLLER_SETTINGS = defineSettings({
  pollIntervalMs: {
    env: "FC_JOB_POLL_INTERVAL_MS",
    default: "30000",
    description: "How often a running job's status is polled",
    parser: integer(10, 3600000),
  },
});
export type PollerSettings = OptionsOf<typeof POLLER_SETTINGS>;
