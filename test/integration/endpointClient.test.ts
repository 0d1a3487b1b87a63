/**
 * The endpoint client over the real Azure SDK pipeline, against the in-process batch-endpoint emulator (which
 * reads inputs from the stack's Azurite) and, for what the emulator does not record (request headers), a tiny
 * node:http server. Each retry, renewal and failure is shown through the emulator's job snapshots or counters.
 */
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { BlobServiceClient, type ContainerClient } from "@azure/storage-blob";
import { Registry } from "prom-client";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import {
  createEmulator,
  DEFAULT_JOB_ERROR,
  DEFAULT_STATUS_JOURNEY,
  type Emulator,
  type EmulatorApi,
  type JobSnapshot,
} from "../../emulator/index.ts";
import {
  createEndpointClient,
  type EndpointClient,
  type EndpointClientOptions,
  type EndpointOperation,
  type JobState,
} from "../../src/azure/endpointClient.ts";
import { EndpointError } from "../../src/azure/errors.ts";
import { createJobPoller } from "../../src/azure/jobPoller.ts";
import type { TokenRenewalCause } from "../../src/azure/tokenPolicy.ts";
import { createInstrumentation } from "../../src/observability/instrumentation.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createMetrics } from "../../src/observability/metrics.ts";

const stack = inject("stack");
const INPUT_CONTAINER = "endpoint-client-test-in";
const OUTPUT_CONTAINER = "endpoint-client-test-out";
const LIFECYCLE = ["NotStarted", "Queued", "Running", "Completed"];

/** Tokens tok-1, tok-2, ... counted, so renewals can be seen. */
function countingCredential() {
  const issued: string[] = [];
  const credential: TokenCredential = {
    async getToken(): Promise<AccessToken> {
      const token = `tok-${issued.length + 1}-${randomUUID()}`;
      issued.push(token);
      return { token, expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };
  return { credential, issued };
}

/** A client with fast retries, recording its hooks. */
function client(scoringUri: string, options: Partial<EndpointClientOptions> = {}) {
  const retries: EndpointOperation[] = [];
  const renewals: TokenRenewalCause[] = [];
  const creds = countingCredential();
  const endpoint: EndpointClient = createEndpointClient({
    scoringUri,
    credential: creds.credential,
    retryDelayInMs: 10,
    maxRetryDelayInMs: 50,
    requestTimeoutInMs: 5000,
    onEvent: (event) => {
      if (event.type === "http_retry") retries.push(event.operation);
      else renewals.push(event.cause);
    },
    ...options,
  });
  return { endpoint, retries, renewals, issued: creds.issued };
}

let inputs: ContainerClient;
let outputs: ContainerClient;
let emulator: Emulator;

beforeAll(async () => {
  const service = BlobServiceClient.fromConnectionString(stack.blobConnectionString);
  inputs = service.getContainerClient(INPUT_CONTAINER);
  await inputs.createIfNotExists();
  outputs = service.getContainerClient(OUTPUT_CONTAINER);
  emulator = await createEmulator({
    blobConnectionString: stack.blobConnectionString,
    outputContainer: OUTPUT_CONTAINER,
    coldStartMs: 40,
    runMs: 40,
  });
});
afterAll(async () => {
  await emulator?.close();
});
beforeEach(() => {
  emulator.setFaults({});
});

/** One batch file in its own folder, as the connector uploads it; returns the folder's URI. */
async function uploadBatch(rows = 3): Promise<string> {
  const folder = `batch-${randomUUID()}`;
  const body = JSON.stringify(
    Array.from({ length: rows }, (_, i) => ({ store_id: `CA_${i}`, features: [i, 1, 2, 3] })),
  );
  await inputs.getBlockBlobClient(`${folder}/${folder}.json`).upload(body, Buffer.byteLength(body));
  return `${inputs.url}/${folder}`;
}

function jobsWith(repeatabilityId: string): JobSnapshot[] {
  return emulator.jobs().filter((j) => j.repeatabilityId === repeatabilityId);
}

function onlyJob(repeatabilityId: string): JobSnapshot {
  const jobs = jobsWith(repeatabilityId);
  expect(jobs).toHaveLength(1);
  return jobs[0] as JobSnapshot;
}

/** Reads the job's status until it is terminal; returns the statuses seen, in order, without repeats. */
async function readUntilTerminal(endpoint: EndpointClient, jobId: string): Promise<JobState[]> {
  const seen: JobState[] = [];
  const deadline = Date.now() + 10_000;
  for (;;) {
    const state = await endpoint.getJob(jobId);
    if (seen.at(-1)?.status !== state.status) seen.push(state);
    if (["Completed", "Failed", "Canceled"].includes(state.status) || Date.now() > deadline) return seen;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function rejection(promise: Promise<unknown>): Promise<EndpointError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(EndpointError);
    return error as EndpointError;
  }
  throw new Error("expected the call to fail");
}

describe("endpoint client against the emulator", () => {
  it("submits in the guide flavor and reads the status until Completed", async () => {
    const c = client(emulator.scoringUri);
    const inputUri = await uploadBatch();
    const repeatabilityId = randomUUID();
    const state = await c.endpoint.submitJob({ inputUri, inputType: "UriFolder", repeatabilityId });

    expect(state).toEqual({ jobId: expect.stringMatching(/^batchjob-[0-9a-f-]{36}$/), status: "NotStarted" });
    const job = onlyJob(repeatabilityId);
    expect(job).toMatchObject({ id: state.jobId, flavor: "guide", inputUri, submitCount: 1 });
    expect(job.inputType).toBeUndefined();

    const seen = await readUntilTerminal(c.endpoint, state.jobId);
    const statuses = seen.map((s) => s.status);
    expect(statuses.at(-1)).toBe("Completed");
    expect(LIFECYCLE.filter((s) => statuses.includes(s))).toEqual(statuses);
    expect(seen.every((s) => s.jobId === state.jobId && s.error === undefined)).toBe(true);
    // Completed means predictions.csv is there, at the guide path.
    const done = onlyJob(repeatabilityId);
    expect(done.outputBlobPath).toBe(`artifacts/output/${state.jobId}/predictions.csv`);
    expect(await outputs.getBlobClient(done.outputBlobPath).exists()).toBe(true);
    expect(c.retries).toEqual([]);
    expect(c.renewals).toEqual(["initial"]);
  });

  it("submits in the v2 flavor with an output location and reads the job name from the answer", async () => {
    const c = client(emulator.scoringUri, { apiFlavor: "v2" });
    const inputUri = await uploadBatch();
    const repeatabilityId = randomUUID();
    const outputPath = `fc-test/${randomUUID()}/predictions.csv`;
    const state = await c.endpoint.submitJob({
      inputUri,
      inputType: "UriFolder",
      outputUri: `azureml://datastores/workspaceblobstore/paths/${outputPath}`,
      repeatabilityId,
    });

    // The v2 answer's id is an ARM resource id: the job id is its name.
    expect(state).toEqual({ jobId: expect.stringMatching(/^batchjob-[0-9a-f-]{36}$/), status: "NotStarted" });
    expect(onlyJob(repeatabilityId)).toMatchObject({
      id: state.jobId,
      flavor: "v2",
      inputUri,
      inputType: "UriFolder",
      outputBlobPath: outputPath,
      submitCount: 1,
    });
    const seen = await readUntilTerminal(c.endpoint, state.jobId);
    expect(seen.at(-1)).toEqual({ jobId: state.jobId, status: "Completed" });
    expect(await outputs.getBlobClient(outputPath).exists()).toBe(true);
  });

  it("reports a failed job's error from the status", async () => {
    const c = client(emulator.scoringUri);
    // A folder with no input files: the job fails with a UserError.
    const state = await c.endpoint.submitJob({
      inputUri: `${inputs.url}/empty-${randomUUID()}`,
      inputType: "UriFolder",
      repeatabilityId: randomUUID(),
    });
    const seen = await readUntilTerminal(c.endpoint, state.jobId);
    expect(seen.at(-1)).toEqual({
      jobId: state.jobId,
      status: "Failed",
      error: { code: "UserError", message: expect.any(String) },
    });
  });

  it("retries a 429 burst after Retry-After, transparently, counting each retry", async () => {
    const c = client(emulator.scoringUri);
    const inputUri = await uploadBatch();
    emulator.setFaults({ throttle: { count: 2, retryAfterSeconds: 1, on: "submit" } });
    const repeatabilityId = randomUUID();
    const started = Date.now();
    const state = await c.endpoint.submitJob({ inputUri, inputType: "UriFolder", repeatabilityId });

    // Two waits of Retry-After (1 s each), not the 10-50 ms backoff.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(c.retries).toEqual(["submit", "submit"]);
    expect(onlyJob(repeatabilityId)).toMatchObject({ id: state.jobId, submitCount: 1 });
  });

  it("retries 500s on status reads", async () => {
    const c = client(emulator.scoringUri);
    const state = await c.endpoint.submitJob({
      inputUri: await uploadBatch(),
      inputType: "UriFolder",
      repeatabilityId: randomUUID(),
    });
    const pollsBefore = emulator.jobs().find((j) => j.id === state.jobId)?.statusPolls;
    emulator.setFaults({ serverError: { count: 3, on: "status" } });
    const read = await c.endpoint.getJob(state.jobId);

    expect(read.jobId).toBe(state.jobId);
    expect(LIFECYCLE).toContain(read.status);
    expect(c.retries).toEqual(["status", "status", "status"]);
    // Only the successful attempt reached the job.
    expect(emulator.jobs().find((j) => j.id === state.jobId)?.statusPolls).toBe((pollsBefore ?? 0) + 1);
  });

  it("gives up after maxRetries with a retriable EndpointError", async () => {
    const c = client(emulator.scoringUri, { maxRetries: 2 });
    const inputUri = await uploadBatch();
    emulator.setFaults({ serverError: { count: 5, on: "submit" } });
    const repeatabilityId = randomUUID();
    const error = await rejection(
      c.endpoint.submitJob({ inputUri, inputType: "UriFolder", repeatabilityId }),
    );

    expect(error).toMatchObject({ status: 500, code: "InternalServerError", retriable: true });
    expect(error.message).toMatch(
      /^job submission failed with HTTP 500: InternalServerError: emulated server error/,
    );
    expect(c.retries).toEqual(["submit", "submit"]);
    expect(jobsWith(repeatabilityId)).toHaveLength(0);
  });

  it("retries a dropped connection", async () => {
    const c = client(emulator.scoringUri);
    const inputUri = await uploadBatch();
    emulator.setFaults({ dropConnection: { count: 2, on: "submit" } });
    const repeatabilityId = randomUUID();
    const state = await c.endpoint.submitJob({ inputUri, inputType: "UriFolder", repeatabilityId });

    expect(c.retries).toEqual(["submit", "submit"]);
    expect(onlyJob(repeatabilityId)).toMatchObject({ id: state.jobId, submitCount: 1 });

    emulator.setFaults({ dropConnection: { count: 1, on: "status" } });
    expect((await c.endpoint.getJob(state.jobId)).jobId).toBe(state.jobId);
    expect(c.retries).toEqual(["submit", "submit", "status"]);
  });

  it("a lost submit response is retried with the same repeatability id: one job, submitted twice", async () => {
    const c = client(emulator.scoringUri);
    const inputUri = await uploadBatch();
    emulator.setFaults({ loseSubmitResponse: { count: 1 } });
    const repeatabilityId = randomUUID();
    const state = await c.endpoint.submitJob({ inputUri, inputType: "UriFolder", repeatabilityId });

    expect(c.retries).toEqual(["submit"]);
    const job = onlyJob(repeatabilityId);
    expect(job).toMatchObject({ id: state.jobId, submitCount: 2, repeatabilityId });
    expect(emulator.jobs().filter((j) => j.inputUri === inputUri)).toHaveLength(1);
  });

  it("a 400 (bad input URI) is a non-retriable EndpointError, not retried", async () => {
    const c = client(emulator.scoringUri);
    const repeatabilityId = randomUUID();
    const error = await rejection(
      c.endpoint.submitJob({ inputUri: "ftp://example.com/batch", inputType: "UriFolder", repeatabilityId }),
    );

    expect(error).toMatchObject({ name: "EndpointError", status: 400, code: "BadRequest", retriable: false });
    expect(error.message).toContain("job submission failed with HTTP 400: BadRequest: input_data.uri:");
    expect(c.retries).toEqual([]);
    expect(jobsWith(repeatabilityId)).toHaveLength(0);

    const v2 = client(emulator.scoringUri, { apiFlavor: "v2" });
    const v2Error = await rejection(
      v2.endpoint.submitJob({ inputUri: "not a uri", inputType: "UriFile", repeatabilityId }),
    );
    expect(v2Error).toMatchObject({ status: 400, retriable: false });
    expect(v2Error.message).toContain("properties.InputData.input.Uri:");
  });

  it("reads a 404 on status as Unknown (not terminal), flagged notFound for the poller's lost-job rule", async () => {
    const c = client(emulator.scoringUri);
    expect(await c.endpoint.getJob("batchjob-does-not-exist")).toEqual({
      jobId: "batchjob-does-not-exist",
      status: "Unknown",
      notFound: true,
    });
    expect(await c.endpoint.getJob("odd name/with slash")).toEqual({
      jobId: "odd name/with slash",
      status: "Unknown",
      notFound: true,
    });
    expect(c.retries).toEqual([]);
  });
});

describe("endpoint client and bearer tokens", () => {
  it("a rejected token leads to one renewal, then EndpointError(401)", async () => {
    const rejecting = await createEmulator({
      blobConnectionString: stack.blobConnectionString,
      outputContainer: OUTPUT_CONTAINER,
      acceptToken: () => false,
    });
    try {
      const c = client(rejecting.scoringUri);
      const error = await rejection(
        c.endpoint.submitJob({
          inputUri: await uploadBatch(),
          inputType: "UriFolder",
          repeatabilityId: randomUUID(),
        }),
      );
      expect(error).toMatchObject({ status: 401, code: "Unauthorized", retriable: false });
      expect(c.renewals).toEqual(["initial", "unauthorized"]);
      expect(c.issued).toHaveLength(2);
      expect(c.retries).toEqual([]); // the renewal's retry is the token policy's, not a transport retry
      for (const token of c.issued) expect(`${error.message} ${error.stack}`).not.toContain(token);
      expect(rejecting.jobs()).toHaveLength(0);
    } finally {
      await rejecting.close();
    }
  });

  it("a revoked token is replaced: the retry after the 401 carries the new token and succeeds", async () => {
    let revoked: string | undefined;
    const revoking = await createEmulator({
      blobConnectionString: stack.blobConnectionString,
      outputContainer: OUTPUT_CONTAINER,
      coldStartMs: 40,
      runMs: 40,
      // The first token seen is revoked, any later one accepted.
      acceptToken: (token) => {
        revoked ??= token;
        return token !== revoked;
      },
    });
    try {
      const real = client(revoking.scoringUri);
      const repeatabilityId = randomUUID();
      const state = await real.endpoint.submitJob({
        inputUri: await uploadBatch(),
        inputType: "UriFolder",
        repeatabilityId,
      });
      expect(revoked).toBe(real.issued[0]);
      expect(real.issued).toHaveLength(2);
      expect(real.renewals).toEqual(["initial", "unauthorized"]);
      expect(revoking.jobs()).toEqual([expect.objectContaining({ id: state.jobId, submitCount: 1 })]);
      // The renewed token is kept: no further renewal.
      await real.endpoint.getJob(state.jobId);
      expect(real.issued).toHaveLength(2);
    } finally {
      await revoking.close();
    }
  });

  it("refuses a plain-http scoring URI off loopback before sending anything", async () => {
    const c = client("http://endpoint.example.invalid/jobs");
    await expect(
      c.endpoint.submitJob({ inputUri: "https://a/b", inputType: "UriFolder", repeatabilityId: "r" }),
    ).rejects.toThrow("refusing to send a bearer token over a non-TLS (http) connection");
    expect(c.issued).toHaveLength(0);
  });
});

interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A stand-in endpoint that records each request and answers with `reply`. */
async function recordingServer(reply: (request: Recorded) => { status: number; body: unknown }) {
  const requests: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const recorded = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(recorded);
      const { status, body } = reply(recorded);
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    scoringUri: `http://127.0.0.1:${port}/jobs`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("endpoint client requests on the wire", () => {
  const ARM =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/jobs";
  let server: Awaited<ReturnType<typeof recordingServer>>;

  beforeAll(async () => {
    server = await recordingServer((request) => {
      if (request.method === "POST") {
        return request.body.includes('"properties"')
          ? { status: 201, body: { id: `${ARM}/job-v2`, properties: { status: "Queued" } } }
          : { status: 200, body: { id: "job-guide", status: "NotStarted" } };
      }
      return {
        status: 200,
        body: {
          id: `${ARM}/job-v2`,
          properties: { status: "Failed" },
          error: { code: "SystemError", message: "mini-batch failed", details: [] },
        },
      };
    });
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
  });

  it("guide flavor: body, headers and the deployment header", async () => {
    const c = client(`${server.scoringUri}/`, { deployment: "blue" });
    const state = await c.endpoint.submitJob({
      inputUri: "https://acct.blob.core.windows.net/in/batch-1",
      inputType: "UriFolder",
      outputUri: "azureml://datastores/ds/paths/ignored-in-guide-flavor",
      repeatabilityId: "rep-1",
    });
    expect(state).toEqual({ jobId: "job-guide", status: "NotStarted" });

    const [post] = server.requests;
    expect(post?.method).toBe("POST");
    expect(post?.url).toBe("/jobs");
    expect(JSON.parse(post?.body ?? "")).toEqual({
      input_data: { uri: "https://acct.blob.core.windows.net/in/batch-1" },
    });
    expect(post?.headers).toMatchObject({
      "content-type": "application/json",
      accept: "application/json",
      authorization: `Bearer ${c.issued[0]}`,
      "repeatability_request-id": "rep-1",
      "azureml-model-deployment": "blue",
    });
    expect(post?.headers["user-agent"]).toMatch(/^forecast-connector /);
  });

  it("v2 flavor: body, 201 answer and a status read with the deployment header", async () => {
    const c = client(server.scoringUri, { apiFlavor: "v2", deployment: "green" });
    const state = await c.endpoint.submitJob({
      inputUri: "https://acct.blob.core.windows.net/in/batch-2/batch-2.json",
      inputType: "UriFile",
      outputUri: "azureml://datastores/workspaceblobstore/paths/out/job/predictions.csv",
      repeatabilityId: "rep-2",
    });
    // No `name` in the answer: the job id is the ARM id's last segment.
    expect(state).toEqual({ jobId: "job-v2", status: "Queued" });
    const read = await c.endpoint.getJob(state.jobId);
    expect(read).toEqual({
      jobId: "job-v2",
      status: "Failed",
      error: { code: "SystemError", message: "mini-batch failed" },
    });

    const [post, get] = server.requests;
    expect(JSON.parse(post?.body ?? "")).toEqual({
      properties: {
        InputData: {
          input: {
            JobInputType: "UriFile",
            Uri: "https://acct.blob.core.windows.net/in/batch-2/batch-2.json",
          },
        },
        OutputData: {
          score: {
            JobOutputType: "UriFile",
            Uri: "azureml://datastores/workspaceblobstore/paths/out/job/predictions.csv",
          },
        },
      },
    });
    expect(post?.headers).toMatchObject({
      "repeatability_request-id": "rep-2",
      "azureml-model-deployment": "green",
      "content-type": "application/json",
    });
    expect(get?.method).toBe("GET");
    expect(get?.url).toBe("/jobs/job-v2");
    expect(get?.body).toBe("");
    expect(get?.headers).toMatchObject({
      "azureml-model-deployment": "green",
      authorization: `Bearer ${c.issued[0]}`,
    });
    expect(get?.headers["content-type"]).toBeUndefined();
    expect(get?.headers["repeatability_request-id"]).toBeUndefined();
  });

  it("v2 flavor without an output location sends no OutputData", async () => {
    const c = client(server.scoringUri, { apiFlavor: "v2" });
    await c.endpoint.submitJob({ inputUri: "https://a/b", inputType: "UriFolder", repeatabilityId: "rep-3" });
    expect(JSON.parse(server.requests[0]?.body ?? "")).toEqual({
      properties: { InputData: { input: { JobInputType: "UriFolder", Uri: "https://a/b" } } },
    });
  });

  it("sends no deployment header without a deployment, and follows the status URL template", async () => {
    const c = client(server.scoringUri, {
      statusUrlTemplate: "{scoringUri}/status/{jobId}?api-version=2024-04-01",
    });
    await c.endpoint.submitJob({ inputUri: "https://a/b", inputType: "UriFolder", repeatabilityId: "rep-4" });
    await c.endpoint.getJob("job/with space");
    const [post, get] = server.requests;
    expect(post?.headers["azureml-model-deployment"]).toBeUndefined();
    expect(get?.headers["azureml-model-deployment"]).toBeUndefined();
    expect(get?.url).toBe("/jobs/status/job%2Fwith%20space?api-version=2024-04-01");
  });
});

describe("endpoint client and the workspace's ARM jobs API", () => {
  const MANAGEMENT = "https://management.azure.com/.default";
  const ML = "https://ml.azure.com/.default";
  let arm: Emulator;
  const tokensSeen: Array<{ token: string; api: EmulatorApi }> = [];

  /** Tokens named after the scope they were issued for, so the emulator's check can tell audiences apart. */
  const scopedCredential: TokenCredential = {
    async getToken(scopes) {
      const scope = Array.isArray(scopes) ? scopes[0] : scopes;
      return { token: `${scope}#${randomUUID()}`, expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };

  beforeAll(async () => {
    arm = await createEmulator({
      blobConnectionString: stack.blobConnectionString,
      outputContainer: OUTPUT_CONTAINER,
      coldStartMs: 40,
      runMs: 40,
      cancelMs: 200,
      // An audience check: an ARM request must carry a management token, a data-plane one an ML token.
      acceptToken: (token, api) => {
        tokensSeen.push({ token, api });
        return token.startsWith(api === "arm" ? MANAGEMENT : ML);
      },
    });
  });
  afterAll(async () => {
    await arm?.close();
  });
  beforeEach(() => {
    arm.setFaults({});
    tokensSeen.length = 0;
  });

  function armClient(options: Partial<EndpointClientOptions> = {}) {
    return client(arm.scoringUri, {
      apiFlavor: "v2",
      statusApi: "arm",
      arm: { ...arm.armWorkspace, baseUrl: arm.armBaseUrl },
      credential: scopedCredential,
      ...options,
    });
  }

  async function submit(c: ReturnType<typeof armClient>) {
    const state = await c.endpoint.submitJob({
      inputUri: await uploadBatch(),
      inputType: "UriFolder",
      outputUri: `azureml://datastores/workspaceblobstore/paths/arm-client/${randomUUID()}/predictions.csv`,
      repeatabilityId: randomUUID(),
    });
    return state.jobId;
  }

  const job = (name: string) => arm.jobs().find((j) => j.id === name) as JobSnapshot;

  it("reads statuses from ARM only, with a management-scope token from its own token policy", async () => {
    const c = armClient();
    const name = await submit(c);
    const seen = await readUntilTerminal(c.endpoint, name);
    expect(seen.at(-1)).toEqual({ jobId: name, status: "Completed" });
    expect(job(name)).toMatchObject({ statusPolls: 0, armStatusPolls: expect.any(Number) });
    expect(job(name).armStatusPolls).toBeGreaterThan(0);
    expect(tokensSeen.filter((t) => t.api === "arm").every((t) => t.token.startsWith(MANAGEMENT))).toBe(true);
    expect(tokensSeen.filter((t) => t.api === "data-plane").every((t) => t.token.startsWith(ML))).toBe(true);
    // One token per audience: the two pipelines renew on their own.
    expect(c.renewals).toEqual(["initial", "initial"]);
  });

  it("a job Failed on ARM gets its error body (code, message, details) from the data plane", async () => {
    arm.setFaults({ failJobs: { count: 1 } });
    const c = armClient();
    const name = await submit(c);
    const seen = await readUntilTerminal(c.endpoint, name);
    expect(seen.at(-1)).toEqual({ jobId: name, status: "Failed", error: DEFAULT_JOB_ERROR });
    expect(job(name).statusPolls).toBe(1);
  });

  it("honours ARM's 429 Retry-After through the SDK's retry policy, counting the retry", async () => {
    const c = armClient();
    const name = await submit(c);
    arm.setFaults({ throttle: { count: 1, retryAfterSeconds: 1, on: "arm_status" } });
    const started = Date.now();
    const state = await c.endpoint.getJob(name);
    // The wait is ARM's Retry-After (1 s), not the 10-50 ms backoff the client is configured with.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(state.jobId).toBe(name);
    expect(c.retries).toEqual(["status"]);
  });

  it("cancels through ARM: accepted at once, then CancelRequested, then Canceled", async () => {
    arm.setFaults({ stuckJobs: { count: 1 } });
    const c = armClient();
    const name = await submit(c);
    expect(await c.endpoint.cancelJob(name)).toEqual({ outcome: "accepted", status: 202 });
    expect(c.endpoint.canCancel).toBe(true);
    const seen = (await readUntilTerminal(c.endpoint, name)).map((s) => s.status);
    expect(seen).toEqual(["CancelRequested", "Canceled"]);
    expect(job(name)).toMatchObject({ status: "Canceled", cancelRequests: 1 });
    expect(await c.endpoint.cancelJob("batchjob-unknown")).toMatchObject({
      outcome: "not_found",
      status: 404,
      error: { code: "ResourceNotFound" },
    });
  });

  it("a cancel that outlasts the pipeline's retries is an EndpointError; another workspace's job is not found", async () => {
    const c = armClient({ maxRetries: 1 });
    const name = await submit(c);
    arm.setFaults({ serverError: { count: 2, on: "arm_cancel" } });
    const error = await rejection(c.endpoint.cancelJob(name));
    expect(error).toMatchObject({ status: 500, retriable: true });
    expect(c.retries).toEqual(["cancel"]);
    const elsewhere = armClient({
      arm: { ...arm.armWorkspace, workspace: "other-ws", baseUrl: arm.armBaseUrl },
    });
    expect(await elsewhere.endpoint.getJob(name)).toMatchObject({ status: "Unknown", notFound: true });
  });

  it("without the ARM settings there is no cancel, and ARM status reads are refused at construction", async () => {
    const c = client(arm.scoringUri, { apiFlavor: "v2" });
    expect(c.endpoint.canCancel).toBe(false);
    await expect(c.endpoint.cancelJob("x")).rejects.toBeInstanceOf(EndpointError);
    expect(() => client(arm.scoringUri, { statusApi: "arm" })).toThrow(TypeError);
  });

  it("the poller over ARM waits out every status, counts reads per status and tells the unknown one once", async () => {
    const slow = await createEmulator({
      blobConnectionString: stack.blobConnectionString,
      outputContainer: OUTPUT_CONTAINER,
      coldStartMs: 700,
      runMs: 700,
      faults: { statusJourney: { count: 2 } },
    });
    try {
      const lines: Array<Record<string, unknown>> = [];
      const logger = createLogger(
        "debug",
        new Writable({
          write(chunk, _encoding, done) {
            lines.push(JSON.parse(chunk.toString()));
            done();
          },
        }),
      );
      const metrics = createMetrics(new Registry());
      const instrument = createInstrumentation(metrics, logger);
      const c = client(slow.scoringUri, {
        apiFlavor: "v2",
        statusApi: "arm",
        arm: { ...slow.armWorkspace, baseUrl: slow.armBaseUrl },
      });
      const poller = createJobPoller({ client: c.endpoint, pollIntervalMs: 20, onEvent: instrument.poller });
      const names = [await submitTo(slow, c), await submitTo(slow, c)];
      const outcomes = await Promise.all(names.map((name) => poller.watch(name, { timeoutMs: 20_000 })));
      poller.close();
      expect(outcomes.map((o) => o.status)).toEqual(["Completed", "Completed"]);

      const reads = await metrics.jobStatusReads.get();
      const byStatus = new Map(reads.values.map((v) => [String(v.labels.status), v.value]));
      for (const status of new Set(DEFAULT_STATUS_JOURNEY)) {
        const label = status === "Hibernating" ? "other" : status;
        expect(byStatus.get(label), status).toBeGreaterThan(0);
      }
      expect(byStatus.get("Completed")).toBe(2);
      const unknown = lines.filter((l) => String(l.msg).startsWith("job status never seen before"));
      expect(unknown).toHaveLength(1);
      expect(unknown[0]).toMatchObject({ level: "warn", status: "Hibernating" });
      expect(slow.jobs().every((j) => j.statusPolls === 0)).toBe(true);
    } finally {
      await slow.close();
    }
  });

  async function submitTo(target: Emulator, c: ReturnType<typeof client>) {
    const state = await c.endpoint.submitJob({
      inputUri: await uploadBatch(),
      inputType: "UriFolder",
      outputUri: `azureml://datastores/workspaceblobstore/paths/arm-poller/${randomUUID()}/predictions.csv`,
      repeatabilityId: randomUUID(),
    });
    expect(target.jobs().some((j) => j.id === state.jobId)).toBe(true);
    return state.jobId;
  }
});
