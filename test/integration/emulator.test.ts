/**
 * The batch-endpoint emulator against real blob storage (the stack's Azurite): inputs are uploaded, jobs submitted
 * over HTTP in both flavors, predictions.csv downloaded and every value checked against the formula, computed here
 * independently. Each fault is shown to happen, not just to be accepted.
 */
import { randomUUID } from "node:crypto";
import { BlobServiceClient, type ContainerClient } from "@azure/storage-blob";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import {
  createEmulator,
  DEFAULT_JOB_ERROR,
  DEFAULT_STATUS_JOURNEY,
  type Emulator,
  type EmulatorApi,
  type EmulatorOptions,
  type JobSnapshot,
} from "../../emulator/index.ts";

const stack = inject("stack");
/** Short phases keep the file fast; each status still lasts long enough to be seen by a 5 ms poll. */
const COLD_START_MS = 40;
const RUN_MS = 40;
const OUTPUT_CONTAINER = "emulator-test-output";
const LIFECYCLE = ["NotStarted", "Queued", "Running", "Completed"];

/** The README's formula, written out again here so the test does not trust the emulator's own code. */
function expectedPrediction(features: readonly number[]): string {
  let sum = 0;
  features.forEach((f, i) => {
    sum += (i + 1) * f;
  });
  return Number((sum / features.length).toFixed(8)).toFixed(8);
}

interface Row {
  store_id: string;
  features: number[];
}

function makeRows(count: number, tag: string): Row[] {
  return Array.from({ length: count }, (_, r) => ({
    store_id: `${tag}_${r + 1}`,
    features: Array.from({ length: 13 }, (_, i) => Math.round(Math.sin(r * 13 + i + 1) * 1e6) / 1e5),
  }));
}

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  readonly body: any;
}

let blobService: BlobServiceClient;
let inputs: ContainerClient;
let outputs: ContainerClient;

beforeAll(async () => {
  blobService = BlobServiceClient.fromConnectionString(stack.blobConnectionString);
  inputs = blobService.getContainerClient("emulator-test-inputs");
  await inputs.createIfNotExists();
  outputs = blobService.getContainerClient(OUTPUT_CONTAINER);
});

/** Uploads a file under a fresh folder and returns the folder's and the file's URLs (Azurite path-style). */
async function upload(fileName: string, content: string, folder = `batch-${randomUUID()}`) {
  const blob = inputs.getBlockBlobClient(`${folder}/${fileName}`);
  await blob.upload(content, Buffer.byteLength(content));
  return { folderUri: `${inputs.url}/${folder}`, fileUri: blob.url, folder };
}

async function call(
  method: string,
  url: string,
  options: { body?: unknown; token?: string | null; repeatabilityId?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (options.token !== null) headers.Authorization = `Bearer ${options.token ?? "test-token"}`;
  if (options.repeatabilityId !== undefined) headers["repeatability_request-id"] = options.repeatabilityId;
  const response = await fetch(url, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? undefined : JSON.parse(text),
  };
}

function guideBody(uri: string) {
  return { input_data: { uri } };
}

function v2Body(uri: string, outputPath: string, inputType = "UriFolder") {
  return {
    properties: {
      InputData: { input: { JobInputType: inputType, Uri: uri } },
      OutputData: {
        score: {
          JobOutputType: "UriFile",
          Uri: `azureml://datastores/workspaceblobstore/paths/${outputPath}`,
        },
      },
    },
  };
}

/** Status of a job in either flavor's body. */
function statusOf(body: { status?: string; properties?: { status?: string } }): string | undefined {
  return body.status ?? body.properties?.status;
}

async function pollToEnd(
  emulator: Emulator,
  jobName: string,
  limitMs = 5000,
): Promise<{ seen: string[]; body: Reply["body"] }> {
  const seen: string[] = [];
  const deadline = Date.now() + limitMs;
  for (;;) {
    const reply = await call("GET", `${emulator.scoringUri}/${jobName}`);
    expect(reply.status).toBe(200);
    const status = statusOf(reply.body) as string;
    if (seen.at(-1) !== status) seen.push(status);
    if (status === "Completed" || status === "Failed" || Date.now() > deadline)
      return { seen, body: reply.body };
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function snapshot(emulator: Emulator, id: string): JobSnapshot {
  const job = emulator.jobs().find((j) => j.id === id);
  if (job === undefined) throw new Error(`no job ${id}`);
  return job;
}

async function download(path: string): Promise<string> {
  return (await outputs.getBlobClient(path).downloadToBuffer()).toString("utf8");
}

/** Submits a guide job for `rows`, waits for it and returns its output text (and what was uploaded). */
async function runGuideJob(emulator: Emulator, rows: Row[], fileName = "test_data.json") {
  const { folderUri } = await upload(fileName, JSON.stringify(rows));
  const submitted = await call("POST", emulator.scoringUri, { body: guideBody(folderUri) });
  expect(submitted.status).toBe(200);
  const end = await pollToEnd(emulator, submitted.body.id);
  expect(statusOf(end.body)).toBe("Completed");
  const job = snapshot(emulator, submitted.body.id);
  return { job, text: await download(job.outputBlobPath), fileName };
}

function expectedLines(rows: Row[], fileName: string, delimiter = " "): string[] {
  return rows.map((row) => [fileName, row.store_id, expectedPrediction(row.features)].join(delimiter));
}

async function startEmulator(options: Partial<EmulatorOptions> = {}): Promise<Emulator> {
  return createEmulator({
    blobConnectionString: stack.blobConnectionString,
    outputContainer: OUTPUT_CONTAINER,
    coldStartMs: COLD_START_MS,
    runMs: RUN_MS,
    acceptToken: (token) => token !== "expired-token",
    ...options,
  });
}

describe("batch endpoint emulator", () => {
  let emulator: Emulator;

  beforeAll(async () => {
    emulator = await startEmulator();
  });
  afterAll(async () => {
    await emulator?.close();
  });
  beforeEach(() => {
    emulator.setFaults({});
  });

  describe("happy path", () => {
    it("scores a guide-flavor folder (JSON and CSV files) into predictions.csv at the guide path", async () => {
      const jsonRows = makeRows(5, "CA");
      const csvRows = makeRows(3, "TX");
      const { folderUri, folder } = await upload("a_part.json", JSON.stringify(jsonRows));
      const csv = `store_id,features\n${csvRows.map((r) => `${r.store_id},"${JSON.stringify(r.features)}"`).join("\n")}\n`;
      await upload("b_part.csv", csv, folder);
      await upload("ignored.txt", "not scored", folder);

      const submitted = await call("POST", emulator.scoringUri, { body: guideBody(folderUri) });
      expect(submitted.status).toBe(200);
      expect(submitted.body).toEqual({
        id: expect.stringMatching(/^batchjob-[0-9a-f-]{36}$/),
        status: "NotStarted",
      });

      const { seen, body } = await pollToEnd(emulator, submitted.body.id);
      // Every status seen is in lifecycle order (a slow poll may step over a short phase; phaseAt is unit-tested).
      expect(seen[0]).toBe("NotStarted");
      expect(LIFECYCLE.filter((status) => seen.includes(status))).toEqual(seen);
      expect(body).toEqual({ id: submitted.body.id, status: "Completed" });

      const job = snapshot(emulator, submitted.body.id);
      expect(job.outputBlobPath).toBe(`artifacts/output/${job.id}/predictions.csv`);
      expect(job).toMatchObject({
        flavor: "guide",
        status: "Completed",
        inputUri: folderUri,
        submitCount: 1,
      });
      const text = await download(job.outputBlobPath);
      expect(text).not.toContain("\r");
      expect(text.endsWith("\n")).toBe(true);
      expect(text.split("\n").slice(0, -1)).toEqual([
        ...expectedLines(jsonRows, "a_part.json"),
        ...expectedLines(csvRows, "b_part.csv"),
      ]);
    });

    it("scores a single file, skipping invalid rows and counting them", async () => {
      const rows = makeRows(4, "WI");
      const withInvalid = [
        ...rows.slice(0, 2),
        { features: [1, 2] },
        { store_id: "BAD_1", features: ["x", 2] },
        { store_id: "BAD_2", features: [] },
        ...rows.slice(2),
      ];
      const { fileUri } = await upload("single.json", JSON.stringify(withInvalid));
      const submitted = await call("POST", emulator.scoringUri, { body: guideBody(fileUri) });
      await pollToEnd(emulator, submitted.body.id);
      const job = snapshot(emulator, submitted.body.id);
      expect(job).toMatchObject({ status: "Completed", rowsRead: 4, rowsSkipped: 3, rowsWritten: 4 });
      expect(await download(job.outputBlobPath)).toBe(`${expectedLines(rows, "single.json").join("\n")}\n`);
    });

    it("speaks the v2 flavor (PascalCase) and writes to the OutputData datastore path", async () => {
      const rows = makeRows(3, "CA");
      const { folderUri } = await upload("v2_input.json", JSON.stringify(rows));
      const outputPath = `v2/${randomUUID()}/`;
      const submitted = await call("POST", emulator.scoringUri, { body: v2Body(folderUri, outputPath) });
      expect(submitted.status).toBe(200);
      const name = submitted.body.name as string;
      expect(name).toMatch(/^batchjob-/);
      expect(submitted.body.id).toBe(
        `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator/providers/Microsoft.MachineLearningServices/workspaces/emulator/jobs/${name}`,
      );
      expect(submitted.body.properties.status).toBe("NotStarted");

      const { body } = await pollToEnd(emulator, name);
      expect(body).toMatchObject({ name, properties: { status: "Completed" } });
      expect(body.error).toBeUndefined();
      const job = snapshot(emulator, name);
      expect(job).toMatchObject({
        flavor: "v2",
        inputType: "UriFolder",
        outputBlobPath: `${outputPath}predictions.csv`,
      });
      expect(await download(`${outputPath}predictions.csv`)).toBe(
        `${expectedLines(rows, "v2_input.json").join("\n")}\n`,
      );
    });

    it("accepts camelCase v2 keys, a UriFile input and a host-style blob URL", async () => {
      const rows = makeRows(2, "TX");
      const { folder } = await upload("camel.json", JSON.stringify(rows));
      const hostStyle = `https://devstoreaccount1.blob.core.windows.net/${inputs.containerName}/${folder}/camel.json`;
      const outputPath = `v2/${randomUUID()}/scores.csv`;
      const body = {
        properties: {
          inputData: { input: { jobInputType: "UriFile", uri: hostStyle } },
          outputData: {
            score: { jobOutputType: "UriFile", uri: `azureml://datastores/any/paths/${outputPath}` },
          },
        },
      };
      const submitted = await call("POST", emulator.scoringUri, { body });
      expect(submitted.status).toBe(200);
      const { body: end } = await pollToEnd(emulator, submitted.body.name);
      expect(statusOf(end)).toBe("Completed");
      expect(await download(outputPath)).toBe(`${expectedLines(rows, "camel.json").join("\n")}\n`);
    });

    it("answers the admin API without auth", async () => {
      const health = await call("GET", `${emulator.baseUrl}/_emulator/health`, { token: null });
      expect(health).toMatchObject({ status: 200, body: { status: "ok" } });
      const jobs = await call("GET", `${emulator.baseUrl}/_emulator/jobs`, { token: null });
      expect(jobs.status).toBe(200);
      expect(jobs.body.map((j: JobSnapshot) => j.id)).toEqual(emulator.jobs().map((j) => j.id));
    });
  });

  describe("contract errors", () => {
    it("401s without a bearer token, with an empty one and with a rejected one, creating no job", async () => {
      const before = emulator.jobs().length;
      const { folderUri } = await upload("x.json", JSON.stringify(makeRows(1, "CA")));
      for (const headers of [{}, { Authorization: "Bearer " }, { Authorization: "Basic abc" }]) {
        const response = await fetch(emulator.scoringUri, {
          method: "POST",
          headers,
          body: JSON.stringify(guideBody(folderUri)),
        });
        expect(response.status).toBe(401);
        expect(await response.json()).toMatchObject({
          error: { code: "Unauthorized", message: expect.any(String) },
        });
      }
      const rejected = await call("POST", emulator.scoringUri, {
        body: guideBody(folderUri),
        token: "expired-token",
      });
      expect(rejected.status).toBe(401);
      expect(rejected.body.error.code).toBe("Unauthorized");
      const status = await call("GET", `${emulator.scoringUri}/batchjob-x`, { token: null });
      expect(status.status).toBe(401);
      expect(emulator.jobs().length).toBe(before);
    });

    it("400s on a bad body, naming what is wrong", async () => {
      const noUri = await call("POST", emulator.scoringUri, { body: { input_data: {} } });
      expect(noUri.status).toBe(400);
      expect(noUri.body.error.message).toContain("input_data.uri");
      const badType = await call("POST", emulator.scoringUri, {
        body: {
          properties: {
            InputData: { input: { JobInputType: "Literal", Uri: "https://a.blob.core.windows.net/c/x" } },
          },
        },
      });
      expect(badType.status).toBe(400);
      expect(badType.body.error.message).toContain("JobInputType");
      const neither = await call("POST", emulator.scoringUri, { body: { something: 1 } });
      expect(neither.status).toBe(400);
    });

    it("404s on an unknown job", async () => {
      const reply = await call("GET", `${emulator.scoringUri}/batchjob-does-not-exist`);
      expect(reply.status).toBe(404);
      expect(reply.body.error.code).toBe("NotFound");
    });

    it("returns the same job for the same repeatability id", async () => {
      const { folderUri } = await upload("r.json", JSON.stringify(makeRows(2, "CA")));
      const before = emulator.jobs().length;
      const id = randomUUID();
      const first = await call("POST", emulator.scoringUri, {
        body: guideBody(folderUri),
        repeatabilityId: id,
      });
      const second = await call("POST", emulator.scoringUri, {
        body: guideBody(folderUri),
        repeatabilityId: id,
      });
      expect(first.status).toBe(200);
      expect(second.status).toBe(200);
      expect(second.body.id).toBe(first.body.id);
      expect(emulator.jobs().length).toBe(before + 1);
      expect(snapshot(emulator, first.body.id)).toMatchObject({ repeatabilityId: id, submitCount: 2 });
    });

    it("fails a job whose input is missing or empty, with a UserError", async () => {
      const missing = await call("POST", emulator.scoringUri, {
        body: guideBody(`${inputs.url}/no-such-folder-${randomUUID()}`),
      });
      const { body } = await pollToEnd(emulator, missing.body.id);
      expect(body).toMatchObject({
        status: "Failed",
        error: { code: "UserError", message: expect.any(String) },
      });

      const { fileUri } = await upload("empty.json", "[]");
      const empty = await call("POST", emulator.scoringUri, { body: guideBody(fileUri) });
      const end = await pollToEnd(emulator, empty.body.id);
      expect(end.body).toMatchObject({ status: "Failed", error: { code: "UserError" } });
      const job = snapshot(emulator, empty.body.id);
      expect(await outputs.getBlobClient(job.outputBlobPath).exists()).toBe(false);
    });
  });

  describe("request faults", () => {
    it("throttles with 429 and Retry-After, only on the targeted requests", async () => {
      const { folderUri } = await upload("t.json", JSON.stringify(makeRows(1, "CA")));
      emulator.setFaults({ throttle: { count: 2, retryAfterSeconds: 7, on: "submit" } });
      for (let i = 0; i < 2; i++) {
        const reply = await call("POST", emulator.scoringUri, { body: guideBody(folderUri) });
        expect(reply.status).toBe(429);
        expect(reply.headers.get("retry-after")).toBe("7");
        expect(reply.body.error.code).toBe("TooManyRequests");
      }
      const ok = await call("POST", emulator.scoringUri, { body: guideBody(folderUri) });
      expect(ok.status).toBe(200);

      emulator.setFaults({ throttle: { count: 1, on: "status" } });
      expect((await call("POST", emulator.scoringUri, { body: guideBody(folderUri) })).status).toBe(200);
      const polled = await call("GET", `${emulator.scoringUri}/${ok.body.id}`);
      expect(polled.status).toBe(429);
      expect(polled.headers.get("retry-after")).toBe("1");
      expect((await call("GET", `${emulator.scoringUri}/${ok.body.id}`)).status).toBe(200);
    });

    it("answers 500 with an error body", async () => {
      const { folderUri } = await upload("s.json", JSON.stringify(makeRows(1, "CA")));
      emulator.setFaults({ serverError: { count: 1 } });
      const failed = await call("POST", emulator.scoringUri, { body: guideBody(folderUri) });
      expect(failed.status).toBe(500);
      expect(failed.body.error.code).toBe("InternalServerError");
      expect((await call("POST", emulator.scoringUri, { body: guideBody(folderUri) })).status).toBe(200);
    });

    it("drops the connection without a response and creates no job", async () => {
      const { folderUri } = await upload("d.json", JSON.stringify(makeRows(1, "CA")));
      const before = emulator.jobs().length;
      emulator.setFaults({ dropConnection: { count: 1, on: "submit" } });
      await expect(call("POST", emulator.scoringUri, { body: guideBody(folderUri) })).rejects.toThrow();
      expect(emulator.jobs().length).toBe(before);
      expect((await call("POST", emulator.scoringUri, { body: guideBody(folderUri) })).status).toBe(200);
    });

    it("loses a submit response after creating the job: same id finds it, a new id duplicates it", async () => {
      const { folderUri } = await upload("l.json", JSON.stringify(makeRows(1, "CA")));
      const before = emulator.jobs().length;
      const id = randomUUID();
      emulator.setFaults({ loseSubmitResponse: { count: 1 } });
      await expect(
        call("POST", emulator.scoringUri, { body: guideBody(folderUri), repeatabilityId: id }),
      ).rejects.toThrow();
      expect(emulator.jobs().length).toBe(before + 1);
      const created = emulator.jobs().at(-1) as JobSnapshot;
      expect(created.repeatabilityId).toBe(id);

      const retried = await call("POST", emulator.scoringUri, {
        body: guideBody(folderUri),
        repeatabilityId: id,
      });
      expect(retried.body.id).toBe(created.id);
      expect(snapshot(emulator, created.id).submitCount).toBe(2);
      expect(emulator.jobs().length).toBe(before + 1);

      const careless = await call("POST", emulator.scoringUri, { body: guideBody(folderUri) });
      expect(careless.body.id).not.toBe(created.id);
      expect(emulator.jobs().length).toBe(before + 2);
    });

    it("takes faults through the admin API and rejects invalid ones", async () => {
      const put = await call("PUT", `${emulator.baseUrl}/_emulator/faults`, {
        token: null,
        body: { serverError: { count: 1, on: "status" } },
      });
      expect(put.status).toBe(200);
      const reply = await call("GET", `${emulator.scoringUri}/batchjob-whatever`);
      expect(reply.status).toBe(500);
      const bad = await call("PUT", `${emulator.baseUrl}/_emulator/faults`, {
        token: null,
        body: { throttle: { rate: 2 } },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toContain("throttle.rate");
    });

    it("repeats rate-based decisions for the same seed", async () => {
      const pattern = async (e: Emulator) => {
        e.setFaults({ throttle: { rate: 0.5 } });
        const codes: number[] = [];
        for (let i = 0; i < 20; i++) codes.push((await call("GET", `${e.scoringUri}/batchjob-none`)).status);
        return codes;
      };
      const other = await startEmulator({ seed: 42 });
      const again = await startEmulator({ seed: 42 });
      try {
        const first = await pattern(other);
        expect(first.filter((c) => c === 429).length).toBeGreaterThan(0);
        expect(first.filter((c) => c === 404).length).toBeGreaterThan(0);
        expect(await pattern(again)).toEqual(first);
      } finally {
        await other.close();
        await again.close();
      }
    });
  });

  describe("job faults", () => {
    it("fails a job without writing output", async () => {
      emulator.setFaults({ failJobs: { count: 1 } });
      const { folderUri } = await upload("f.json", JSON.stringify(makeRows(2, "CA")));
      const submitted = await call("POST", emulator.scoringUri, {
        body: v2Body(folderUri, `v2/${randomUUID()}/`),
      });
      const { body, seen } = await pollToEnd(emulator, submitted.body.name);
      expect(seen.at(-1)).toBe("Failed");
      // What a scoring script that raised looks like: UserError, the exit, details naming the script.
      expect(body.error).toEqual(DEFAULT_JOB_ERROR);
      const job = snapshot(emulator, submitted.body.name);
      expect(job.faults.outcome).toBe("fail");
      expect(await outputs.getBlobClient(job.outputBlobPath).exists()).toBe(false);
    });

    it("leaves a stuck job Running", async () => {
      emulator.setFaults({ stuckJobs: { count: 1 } });
      const { folderUri } = await upload("st.json", JSON.stringify(makeRows(1, "CA")));
      const submitted = await call("POST", emulator.scoringUri, { body: guideBody(folderUri) });
      const { seen } = await pollToEnd(emulator, submitted.body.id, 4 * (COLD_START_MS + RUN_MS));
      expect(seen.at(-1)).toBe("Running");
      expect(snapshot(emulator, submitted.body.id)).toMatchObject({
        status: "Running",
        faults: { outcome: "stuck" },
      });
    });

    it("omits every Nth row", async () => {
      emulator.setFaults({ missingRows: { every: 2 } });
      const rows = makeRows(5, "CA");
      const { text, fileName, job } = await runGuideJob(emulator, rows);
      const expected = expectedLines(rows, fileName).filter((_, i) => (i + 1) % 2 !== 0);
      expect(text.split("\n").slice(0, -1)).toEqual(expected);
      expect(job.rowsWritten).toBe(3);
    });

    it("omits rows at a rate", async () => {
      emulator.setFaults({ missingRows: { rate: 0.5 } });
      const rows = makeRows(20, "CA");
      const { text, fileName } = await runGuideJob(emulator, rows);
      const lines = text.split("\n").slice(0, -1);
      const all = expectedLines(rows, fileName);
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.length).toBeLessThan(20);
      // What remains is correct and in order.
      expect(lines).toEqual(all.filter((line) => lines.includes(line)));
    });

    it("appends malformed rows", async () => {
      emulator.setFaults({ malformedRows: { count: 3 } });
      const rows = makeRows(3, "CA");
      const { text, fileName } = await runGuideJob(emulator, rows);
      const lines = text.split("\n").slice(0, -1);
      expect(lines.slice(0, 3)).toEqual(expectedLines(rows, fileName));
      expect(lines).toHaveLength(6);
      const junk = lines.slice(3);
      expect(junk).toContain("garbage");
      for (const line of junk) {
        const fields = line.split(" ");
        const valid = fields.length === 3 && Number.isFinite(Number(fields[2]));
        expect(valid).toBe(false);
      }
    });
  });

  describe("output shapes", () => {
    const rows = makeRows(4, "CA");

    it.each([
      { shape: { delimiter: "," as const }, lines: (f: string) => expectedLines(rows, f, ",") },
      { shape: { delimiter: "\t" as const }, lines: (f: string) => expectedLines(rows, f, "\t") },
      {
        shape: { header: true },
        lines: (f: string) => ["file_name store_id prediction", ...expectedLines(rows, f)],
      },
      {
        shape: { bracketed: true },
        lines: (f: string) => rows.map((r) => `${f} ${r.store_id} [${expectedPrediction(r.features)}]`),
      },
      {
        shape: { quoted: true, delimiter: "," as const },
        lines: (f: string) => rows.map((r) => `"${f}","${r.store_id}","${expectedPrediction(r.features)}"`),
      },
      {
        shape: { mlflow: true },
        lines: (f: string) => [
          "row,prediction,file_name",
          ...rows.map((r, i) => `${i},${expectedPrediction(r.features)},${f}`),
        ],
      },
    ])("writes $shape", async ({ shape, lines }) => {
      emulator.setFaults({ outputShape: shape });
      const { text, fileName, job } = await runGuideJob(emulator, rows);
      expect(job.faults.outputShape).toEqual(shape);
      expect(text).toBe(`${lines(fileName).join("\n")}\n`);
    });

    it("writes CRLF line endings", async () => {
      emulator.setFaults({ outputShape: { crlf: true } });
      const { text, fileName } = await runGuideJob(emulator, rows);
      expect(text).toBe(`${expectedLines(rows, fileName).join("\r\n")}\r\n`);
    });

    it("shuffles rows", async () => {
      emulator.setFaults({ outputShape: { shuffle: true } });
      const { text, fileName } = await runGuideJob(emulator, rows);
      const lines = text.split("\n").slice(0, -1);
      const expected = expectedLines(rows, fileName);
      expect(lines).not.toEqual(expected);
      expect([...lines].sort()).toEqual([...expected].sort());
    });
  });
});

describe("the workspace's ARM jobs API", () => {
  const API = "api-version=2024-04-01";
  let emulator: Emulator;
  const tokensSeen: Array<{ token: string; api: EmulatorApi }> = [];
  let armJobs: string;

  beforeAll(async () => {
    emulator = await startEmulator({
      cancelMs: 300,
      datastores: { fcinput: "emulator-test-inputs" },
      acceptToken: (token, api) => {
        tokensSeen.push({ token, api });
        return token !== "expired-token";
      },
    });
    const w = emulator.armWorkspace;
    armJobs = `${emulator.armBaseUrl}/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${w.workspace}/jobs`;
  });
  afterAll(async () => {
    await emulator?.close();
  });
  beforeEach(() => {
    emulator.setFaults({});
    tokensSeen.length = 0;
  });

  async function submitV2(rows = 2, inputType = "UriFolder") {
    const { folderUri, fileUri } = await upload("a.json", JSON.stringify(makeRows(rows, "CA")));
    const submitted = await call("POST", emulator.scoringUri, {
      body: v2Body(inputType === "UriFile" ? fileUri : folderUri, `arm/${randomUUID()}/`, inputType),
    });
    expect(submitted.status).toBe(200);
    return submitted.body.name as string;
  }

  async function armPollToEnd(name: string, limitMs = 10_000) {
    const seen: string[] = [];
    const deadline = Date.now() + limitMs;
    for (;;) {
      const reply = await call("GET", `${armJobs}/${name}?${API}`);
      expect(reply.status).toBe(200);
      const status = reply.body.properties.status as string;
      if (seen.at(-1) !== status) seen.push(status);
      if (["Completed", "Failed", "Canceled"].includes(status) || Date.now() > deadline)
        return { seen, body: reply.body };
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  it("serves a job as an ARM resource with its status in properties, telling the token check it is ARM", async () => {
    const name = await submitV2();
    const { seen, body } = await armPollToEnd(name);
    expect(seen.at(-1)).toBe("Completed");
    expect(body).toMatchObject({
      id: `${new URL(armJobs).pathname}/${name}`,
      name,
      type: "Microsoft.MachineLearningServices/workspaces/jobs",
      properties: { status: "Completed" },
    });
    expect(body.error).toBeUndefined();
    expect(snapshot(emulator, name)).toMatchObject({ statusPolls: 0, armStatusPolls: expect.any(Number) });
    expect(new Set(tokensSeen.map((t) => t.api))).toEqual(new Set(["data-plane", "arm"]));
    // Paths' fixed segments and the resource group are case-insensitive, as in ARM.
    const upper = armJobs
      .replace("/resourceGroups/", "/RESOURCEGROUPS/")
      .replace("emulator/jobs", "EMULATOR/jobs");
    expect((await call("GET", `${upper}/${name}?${API}`)).status).toBe(200);
  });

  it("has no error body for a failed job: that stays on the data plane", async () => {
    emulator.setFaults({ failJobs: { count: 1 } });
    const name = await submitV2();
    const { seen, body } = await armPollToEnd(name);
    expect(seen.at(-1)).toBe("Failed");
    expect(body.error).toBeUndefined();
    const dataPlane = await call("GET", `${emulator.scoringUri}/${name}`);
    expect(dataPlane.body.error).toEqual(DEFAULT_JOB_ERROR);
  });

  it("cancels with 202: CancelRequested for cancelMs, then Canceled on both APIs; an ended job is left as it is", async () => {
    emulator.setFaults({ stuckJobs: { count: 1 } });
    const name = await submitV2();
    const cancel = await call("POST", `${armJobs}/${name}/cancel?${API}`);
    expect(cancel.status).toBe(202);
    expect(cancel.headers.get("location")).toContain(`/jobs/${name}?${API}`);
    expect(cancel.body).toBeUndefined();
    const { seen } = await armPollToEnd(name);
    expect(seen).toEqual(["CancelRequested", "Canceled"]);
    expect((await call("GET", `${emulator.scoringUri}/${name}`)).body.properties.status).toBe("Canceled");
    expect(snapshot(emulator, name)).toMatchObject({ status: "Canceled", cancelRequests: 1 });

    const done = await submitV2();
    expect((await armPollToEnd(done)).seen.at(-1)).toBe("Completed");
    expect((await call("POST", `${armJobs}/${done}/cancel?${API}`)).status).toBe(202);
    expect((await call("GET", `${armJobs}/${done}?${API}`)).body.properties.status).toBe("Completed");
    expect(snapshot(emulator, done)).toMatchObject({ status: "Completed", cancelRequests: 1 });
  });

  it("answers like ARM: 400 without api-version, 404 for another workspace or an unknown job, 405, 401", async () => {
    const name = await submitV2();
    expect(await call("GET", `${armJobs}/${name}`)).toMatchObject({
      status: 400,
      body: { error: { code: "MissingApiVersionParameter" } },
    });
    const other = armJobs.replace("/workspaces/emulator/", "/workspaces/other/");
    expect(await call("GET", `${other}/${name}?${API}`)).toMatchObject({
      status: 404,
      body: { error: { code: "ResourceNotFound" } },
    });
    expect(await call("POST", `${armJobs}/nope/cancel?${API}`)).toMatchObject({
      status: 404,
      body: { error: { code: "ResourceNotFound" } },
    });
    expect((await call("DELETE", `${armJobs}/${name}?${API}`)).status).toBe(405);
    expect((await call("GET", `${armJobs}/${name}?${API}`, { token: null })).status).toBe(401);
    expect((await call("GET", `${armJobs}/${name}?${API}`, { token: "expired-token" })).status).toBe(401);
  });

  it("throttles ARM alone with 429 and Retry-After (on: arm), the data plane untouched", async () => {
    const name = await submitV2();
    emulator.setFaults({ throttle: { count: 1, retryAfterSeconds: 7, on: "arm" } });
    expect((await call("GET", `${emulator.scoringUri}/${name}`)).status).toBe(200);
    const throttled = await call("GET", `${armJobs}/${name}?${API}`);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("retry-after")).toBe("7");
    expect(throttled.body.error.code).toBe("TooManyRequests");
    expect((await call("GET", `${armJobs}/${name}?${API}`)).status).toBe(200);
  });

  it("walks a job through every non-terminal status, an unknown one included (statusJourney)", async () => {
    const slow = await startEmulator({ coldStartMs: 1400, runMs: 1400 });
    try {
      slow.setFaults({ statusJourney: { count: 1 } });
      const { folderUri } = await upload("j.json", JSON.stringify(makeRows(2, "CA")));
      const submitted = await call("POST", slow.scoringUri, {
        body: v2Body(folderUri, `arm/${randomUUID()}/`),
      });
      const { seen } = await pollToEnd(slow, submitted.body.name, 10_000);
      expect(seen).toEqual([...DEFAULT_STATUS_JOURNEY, "Completed"]);
    } finally {
      await slow.close();
    }
  });

  it("reads azureml:// inputs from a registered datastore's container, as a folder or a file", async () => {
    const rows = makeRows(3, "TX");
    const { folder } = await upload("d.json", JSON.stringify(rows));
    for (const [uri, type] of [
      [`azureml://datastores/fcinput/paths/${folder}/`, "UriFolder"],
      [`azureml://datastores/fcinput/paths/${folder}/d.json`, "UriFile"],
    ] as const) {
      const submitted = await call("POST", emulator.scoringUri, {
        body: v2Body(uri, `arm/${randomUUID()}/`, type),
      });
      expect(submitted.status).toBe(200);
      const { body } = await pollToEnd(emulator, submitted.body.name);
      expect(statusOf(body), uri).toBe("Completed");
      const job = snapshot(emulator, submitted.body.name);
      expect(job).toMatchObject({ inputType: type, rowsRead: 3 });
      expect((await download(job.outputBlobPath)).split("\n").slice(0, -1)).toEqual(
        expectedLines(rows, "d.json"),
      );
    }
  });
});
