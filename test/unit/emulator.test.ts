/**
 * The emulator's pure parts: the formula, fault deciding, the job clock, predictions.csv rendering, request and URI
 * parsing, option validation. The HTTP and blob side is covered by test/integration/emulator.test.ts.
 */
import { describe, expect, it } from "vitest";
import { createFaultDecider, DEFAULT_JOB_ERROR } from "../../emulator/faults.ts";
import { predict } from "../../emulator/formula.ts";
import { InputError, parseInputFile } from "../../emulator/input.ts";
import { createJobStore, type JobOutcome, journeyStatusAt, phaseAt } from "../../emulator/jobs.ts";
import { DEFAULT_STATUS_JOURNEY, resolveEmulatorOptions, validateFaults } from "../../emulator/options.ts";
import { renderPredictions, type ScoredRow } from "../../emulator/output.ts";
import { parseSubmitBody } from "../../emulator/submit.ts";
import { parseBlobUri } from "../../emulator/uris.ts";

const uriContext = { accountName: "devstoreaccount1", datastoreContainer: "azureml-blobstore" };

describe("predict", () => {
  it("is round8(Σ (i+1)·f_i / n)", () => {
    expect(predict([1, 2, 3])).toBe(4.66666667); // (1 + 4 + 9) / 3
    expect(predict(Array(13).fill(0.5))).toBe(3.5); // 0.5 · 91 / 13
    expect(predict([2])).toBe(2);
    expect(predict([0.1, 0.2])).toBe(0.25); // (0.1 + 0.4) / 2, float noise rounded away
    expect(predict([-1, 1])).toBe(0.5);
  });

  it("depends on feature order", () => {
    expect(predict([1, 0])).not.toBe(predict([0, 1]));
  });

  it("rejects empty and non-numeric features", () => {
    expect(() => predict([])).toThrow(RangeError);
    expect(() => predict([1, Number.NaN])).toThrow(TypeError);
  });
});

describe("journeyStatusAt", () => {
  it("shares the cold start and run time evenly among the statuses; a stuck job stays on the last", () => {
    const journey = ["Queued", "NotResponding", "Hibernating"];
    expect(journeyStatusAt(0, 100, 200, journey, false)).toBe("Queued");
    expect(journeyStatusAt(100, 100, 200, journey, false)).toBe("NotResponding");
    expect(journeyStatusAt(299, 100, 200, journey, false)).toBe("Hibernating");
    expect(journeyStatusAt(300, 100, 200, journey, false)).toBeUndefined();
    expect(journeyStatusAt(1e9, 100, 200, journey, true)).toBe("Hibernating");
  });

  it("by default passes every documented non-terminal status, NotResponding recovering, and one unknown", () => {
    expect(DEFAULT_STATUS_JOURNEY).toEqual(
      expect.arrayContaining([
        "NotStarted",
        "Scheduled",
        "Starting",
        "Provisioning",
        "Preparing",
        "Queued",
        "Running",
        "NotResponding",
        "Paused",
        "Unknown",
        "Finalizing",
        "Hibernating",
      ]),
    );
    const i = DEFAULT_STATUS_JOURNEY.indexOf("NotResponding");
    expect(DEFAULT_STATUS_JOURNEY[i + 1]).toBe("Running");
  });
});

describe("phaseAt", () => {
  it("splits the cold start between NotStarted and Queued, then Running, then Due", () => {
    expect(phaseAt(0, 200, 100, false)).toBe("NotStarted");
    expect(phaseAt(99, 200, 100, false)).toBe("NotStarted");
    expect(phaseAt(100, 200, 100, false)).toBe("Queued");
    expect(phaseAt(200, 200, 100, false)).toBe("Running");
    expect(phaseAt(299, 200, 100, false)).toBe("Running");
    expect(phaseAt(300, 200, 100, false)).toBe("Due");
    expect(phaseAt(0, 0, 0, false)).toBe("Due");
  });

  it("never ends a stuck job", () => {
    expect(phaseAt(1e12, 200, 100, true)).toBe("Running");
  });
});

describe("job store", () => {
  const plan = { outcome: "complete" as const, rowSeed: 1 };
  const newJob = {
    flavor: "guide" as const,
    inputUri: "https://a.blob.core.windows.net/c/x",
    outputContainer: "azureml-blobstore",
    outputBlobPath: "artifacts/output/{jobId}/predictions.csv",
    repeatabilityId: "r-1",
    faults: plan,
  };

  it("finishes a job once, on the first look after its run time, however many look at once", async () => {
    let now = 1000;
    const store = createJobStore({ coldStartMs: 100, runMs: 100, now: () => now });
    const job = store.create(newJob);
    expect(job.outputBlobPath).toBe(`artifacts/output/${job.id}/predictions.csv`);
    expect(store.byRepeatabilityId("r-1")).toBe(job);
    let finishes = 0;
    const finish = async (): Promise<JobOutcome> => {
      finishes++;
      await new Promise((resolve) => setTimeout(resolve, 10));
      return { status: "Completed", rowsRead: 1, rowsSkipped: 0, rowsWritten: 1 };
    };
    expect(await store.observe(job, finish)).toBe("NotStarted");
    now += 50;
    expect(await store.observe(job, finish)).toBe("Queued");
    now += 50;
    expect(await store.observe(job, finish)).toBe("Running");
    now += 100;
    expect(store.snapshots()[0]?.status).toBe("Running"); // due, but nobody looked: not Completed yet
    const looks = await Promise.all([store.observe(job, finish), store.observe(job, finish)]);
    expect(looks).toEqual(["Completed", "Completed"]);
    expect(finishes).toBe(1);
    expect(store.snapshots()[0]).toMatchObject({ status: "Completed", rowsWritten: 1, finishedAtMs: 1200 });
  });

  it("cancels a running job: CancelRequested for cancelMs, then Canceled, never scored", async () => {
    let now = 0;
    const store = createJobStore({ coldStartMs: 100, runMs: 100, cancelMs: 500, now: () => now });
    const job = store.create(newJob);
    const finish = async (): Promise<JobOutcome> => {
      throw new Error("a cancelled job is never scored");
    };
    now = 150;
    expect(await store.observe(job, finish)).toBe("Running");
    expect(store.cancel(job)).toBe(true);
    expect(store.cancel(job)).toBe(false); // a second cancel changes nothing
    now = 600; // past the run time: still cancelling
    expect(await store.observe(job, finish)).toBe("CancelRequested");
    now = 650;
    expect(await store.observe(job, finish)).toBe("Canceled");
    expect(store.snapshots()[0]).toMatchObject({
      status: "Canceled",
      cancelRequests: 2,
      cancelRequestedAtMs: 150,
      finishedAtMs: 650,
    });
  });

  it("leaves a job that has ended as it is when cancelled", async () => {
    const store = createJobStore({ coldStartMs: 0, runMs: 0, cancelMs: 500 });
    const job = store.create(newJob);
    expect(await store.observe(job, async () => ({ status: "Completed" }))).toBe("Completed");
    expect(store.cancel(job)).toBe(false);
    expect(await store.observe(job, async () => ({ status: "Failed" }))).toBe("Completed");
  });

  it("walks a job through its status journey, then ends it as planned", async () => {
    let now = 0;
    const store = createJobStore({ coldStartMs: 700, runMs: 700, now: () => now });
    const journey = DEFAULT_STATUS_JOURNEY;
    const job = store.create({ ...newJob, faults: { ...plan, journey } });
    const seen: string[] = [];
    for (now = 0; now < 1400; now += 100)
      seen.push(await store.observe(job, async () => ({ status: "Completed" })));
    expect(seen).toEqual([...journey]);
    now = 1400;
    expect(await store.observe(job, async () => ({ status: "Completed" }))).toBe("Completed");
  });

  it("turns a throwing finish into a Failed job", async () => {
    const store = createJobStore({ coldStartMs: 0, runMs: 0 });
    const job = store.create({ ...newJob, repeatabilityId: null });
    expect(await store.observe(job, () => Promise.reject(new Error("boom")))).toBe("Failed");
    expect(store.snapshots()[0]?.error?.code).toBe("SystemError");
  });
});

describe("fault decider", () => {
  it("fires counts first, in priority order, only on the targeted requests", () => {
    const faults = createFaultDecider(
      {
        throttle: { count: 1, retryAfterSeconds: 3 },
        serverError: { count: 1 },
        dropConnection: { count: 1, on: "status" },
      },
      1,
    );
    expect(faults.decideRequest("submit")).toEqual({ type: "throttle", retryAfterSeconds: 3 });
    expect(faults.decideRequest("submit")).toEqual({ type: "serverError" });
    expect(faults.decideRequest("submit")).toBeUndefined();
    expect(faults.decideRequest("status")).toEqual({ type: "dropConnection" });
    expect(faults.decideRequest("status")).toBeUndefined();
  });

  it("repeats rate decisions for a seed, and restarts them on set", () => {
    const draw = (seed: number) => {
      const faults = createFaultDecider({ serverError: { rate: 0.3 } }, seed);
      return Array.from({ length: 50 }, () => faults.decideRequest("status") !== undefined);
    };
    const first = draw(7);
    expect(draw(7)).toEqual(first);
    expect(draw(8)).not.toEqual(first);
    const hits = first.filter(Boolean).length;
    expect(hits).toBeGreaterThan(5);
    expect(hits).toBeLessThan(30);

    const faults = createFaultDecider({ serverError: { rate: 0.3 } }, 7);
    const a = Array.from({ length: 10 }, () => faults.decideRequest("status") !== undefined);
    faults.set({ serverError: { rate: 0.3 } });
    const b = Array.from({ length: 10 }, () => faults.decideRequest("status") !== undefined);
    expect(b).toEqual(a);
  });

  it("plans job faults at creation: fail before stuck, row faults for every job", () => {
    const faults = createFaultDecider(
      {
        failJobs: { count: 1 },
        stuckJobs: { count: 1 },
        missingRows: { every: 3 },
        outputShape: { crlf: true },
      },
      1,
    );
    const plans = [faults.decideJob(), faults.decideJob(), faults.decideJob()];
    expect(plans.map((p) => p.outcome)).toEqual(["fail", "stuck", "complete"]);
    expect(plans[2]).toMatchObject({ missingRows: { every: 3 }, outputShape: { crlf: true } });
    expect(new Set(plans.map((p) => p.rowSeed)).size).toBe(3);
  });

  it("targets ARM requests with on: arm, arm_status or arm_cancel; any covers them too", () => {
    const faults = createFaultDecider({ throttle: { count: 2, retryAfterSeconds: 2, on: "arm" } }, 1);
    expect(faults.decideRequest("status")).toBeUndefined();
    expect(faults.decideRequest("submit")).toBeUndefined();
    expect(faults.decideRequest("arm_status")).toEqual({ type: "throttle", retryAfterSeconds: 2 });
    expect(faults.decideRequest("arm_cancel")).toEqual({ type: "throttle", retryAfterSeconds: 2 });
    expect(faults.decideRequest("arm_status")).toBeUndefined();
    const cancels = createFaultDecider({ serverError: { count: 1, on: "arm_cancel" } }, 1);
    expect(cancels.decideRequest("arm_status")).toBeUndefined();
    expect(cancels.decideRequest("arm_cancel")).toEqual({ type: "serverError" });
    const any = createFaultDecider({ serverError: { count: 1 } }, 1);
    expect(any.decideRequest("arm_status")).toEqual({ type: "serverError" });
  });

  it("gives failed jobs a realistic error body, or the one configured", () => {
    const faults = createFaultDecider({ failJobs: { count: 1 } }, 1);
    expect(faults.decideJob()).toMatchObject({ outcome: "fail", error: DEFAULT_JOB_ERROR });
    expect(DEFAULT_JOB_ERROR.code).toBe("UserError");
    expect(DEFAULT_JOB_ERROR.details?.[0]).toMatchObject({ code: "ScriptExecution.UserProcessExited" });
    const error = {
      code: "SystemError",
      message: "node lost",
      details: [{ code: "NodeFailure", message: "x" }],
    };
    const custom = createFaultDecider({ failJobs: { count: 1, error } }, 1);
    expect(custom.decideJob().error).toEqual(error);
  });

  it("plans status journeys: the default one, or the statuses given", () => {
    const faults = createFaultDecider({ statusJourney: { count: 1 } }, 1);
    expect(faults.decideJob().journey).toEqual(DEFAULT_STATUS_JOURNEY);
    expect(faults.decideJob().journey).toBeUndefined();
    const custom = createFaultDecider(
      { statusJourney: { count: 1, statuses: ["Paused", "Rehydrating"] } },
      1,
    );
    expect(custom.decideJob().journey).toEqual(["Paused", "Rehydrating"]);
  });

  it("loses the next N submit responses", () => {
    const faults = createFaultDecider({ loseSubmitResponse: { count: 2 } }, 1);
    expect([1, 2, 3].map(() => faults.decideLoseSubmitResponse())).toEqual([true, true, false]);
  });

  it("rejects invalid faults, naming them", () => {
    expect(() => validateFaults({ trottle: {} })).toThrow(/faults\.trottle/);
    expect(() => validateFaults({ throttle: { rate: 1.5 } })).toThrow(RangeError);
    expect(() => validateFaults({ throttle: { on: "everything" } })).toThrow(/faults\.throttle\.on/);
    expect(() => validateFaults({ missingRows: { every: 0 } })).toThrow(/missingRows\.every/);
    expect(() => validateFaults({ outputShape: { delimiter: ";" } })).toThrow(/delimiter/);
    expect(() => validateFaults({ outputShape: { header: "yes" } })).toThrow(TypeError);
    expect(() => validateFaults({ statusJourney: { statuses: ["Running", "Completed"] } })).toThrow(
      /statusJourney\.statuses/,
    );
    expect(() => validateFaults({ statusJourney: { statuses: [] } })).toThrow(/statusJourney\.statuses/);
    expect(() => validateFaults({ failJobs: { error: { message: "no code" } } })).toThrow(
      /failJobs\.error\.code/,
    );
    expect(() =>
      validateFaults({ failJobs: { error: { code: "E", message: "m", details: [{ code: 1 }] } } }),
    ).toThrow(/failJobs\.error\.details\[0\]\.code/);
  });
});

describe("renderPredictions", () => {
  const rows: ScoredRow[] = [
    { fileName: "in.json", indexInFile: 0, storeId: "CA_1", prediction: 2.33394885 },
    { fileName: "in.json", indexInFile: 1, storeId: "TX_1", prediction: 0.5 },
    { fileName: "in.json", indexInFile: 3, storeId: "WI_1", prediction: -1 },
  ];
  const base = { rowSeed: 5 };

  it("writes the guide's shape by default", () => {
    expect(renderPredictions(rows, base)).toEqual({
      text: "in.json CA_1 2.33394885\nin.json TX_1 0.50000000\nin.json WI_1 -1.00000000\n",
      rowsWritten: 3,
    });
  });

  it("writes every shape option", () => {
    const render = (outputShape: object) =>
      renderPredictions(rows.slice(0, 1), { ...base, outputShape }).text;
    expect(render({ delimiter: "," })).toBe("in.json,CA_1,2.33394885\n");
    expect(render({ delimiter: "\t", header: true })).toBe(
      "file_name\tstore_id\tprediction\nin.json\tCA_1\t2.33394885\n",
    );
    expect(render({ bracketed: true })).toBe("in.json CA_1 [2.33394885]\n");
    expect(render({ quoted: true })).toBe('"in.json" "CA_1" "2.33394885"\n');
    expect(render({ crlf: true })).toBe("in.json CA_1 2.33394885\r\n");
    expect(render({ mlflow: true })).toBe("row,prediction,file_name\n0,2.33394885,in.json\n");
    expect(render({ mlflow: true, header: false })).toBe("0,2.33394885,in.json\n");
  });

  it("shuffles deterministically, never keeping the order", () => {
    const many = Array.from({ length: 6 }, (_, i) => ({ ...rows[0], storeId: `S${i}` }) as ScoredRow);
    for (let seed = 0; seed < 20; seed++) {
      const plan = { rowSeed: seed, outputShape: { shuffle: true } };
      const text = renderPredictions(many, plan).text;
      expect(text).toBe(renderPredictions(many, plan).text);
      expect(text).not.toBe(renderPredictions(many, { rowSeed: seed }).text);
    }
  });

  it("drops every Nth row and appends junk lines", () => {
    const { text, rowsWritten } = renderPredictions(rows, {
      ...base,
      missingRows: { every: 2 },
      malformedRows: 3,
    });
    expect(rowsWritten).toBe(2);
    expect(text.split("\n")).toEqual([
      "in.json CA_1 2.33394885",
      "in.json WI_1 -1.00000000",
      "garbage",
      "in.json MALFORMED_1 not-a-number",
      "in.json MALFORMED_2",
      "",
    ]);
  });
});

describe("parseSubmitBody", () => {
  it("reads the guide flavor", () => {
    expect(
      parseSubmitBody({ input_data: { uri: "https://a.blob.core.windows.net/c/f" } }, uriContext),
    ).toEqual({
      flavor: "guide",
      inputUri: "https://a.blob.core.windows.net/c/f",
    });
  });

  it("reads the v2 flavor in PascalCase and camelCase", () => {
    const pascal = {
      properties: {
        InputData: { input: { JobInputType: "UriFolder", Uri: "https://a.blob.core.windows.net/c/f" } },
        OutputData: { score: { JobOutputType: "UriFile", Uri: "azureml://datastores/ws/paths/out/x/" } },
      },
    };
    expect(parseSubmitBody(pascal, uriContext)).toEqual({
      flavor: "v2",
      inputUri: "https://a.blob.core.windows.net/c/f",
      inputType: "UriFolder",
      outputBlobPath: "out/x/predictions.csv",
    });
    const camel = {
      properties: {
        inputData: { input: { jobInputType: "uri_file", uri: "https://a.blob.core.windows.net/c/f.json" } },
        outputData: { score: { jobOutputType: "UriFile", uri: "azureml://datastores/ws/paths/out/p.csv" } },
      },
    };
    expect(parseSubmitBody(camel, uriContext)).toMatchObject({
      inputType: "UriFile",
      outputBlobPath: "out/p.csv",
    });
  });

  it("names what is wrong", () => {
    expect(() => parseSubmitBody([], uriContext)).toThrow(/JSON object/);
    expect(() => parseSubmitBody({ input_data: { uri: 3 } }, uriContext)).toThrow(/input_data\.uri/);
    expect(() => parseSubmitBody({ input_data: { uri: "ftp://x/y" } }, uriContext)).toThrow(
      /input_data\.uri/,
    );
    expect(() => parseSubmitBody({ properties: {} }, uriContext)).toThrow(/properties\.InputData/);
    const badOutput = {
      properties: {
        InputData: { input: { JobInputType: "UriFile", Uri: "https://a.blob.core.windows.net/c/f" } },
        OutputData: { score: { JobOutputType: "UriFile", Uri: "https://a.blob.core.windows.net/c/out.csv" } },
      },
    };
    expect(() => parseSubmitBody(badOutput, uriContext)).toThrow(/OutputData\.score\.Uri/);
  });
});

describe("parseBlobUri", () => {
  it("reads path-style, host-style and datastore URIs", () => {
    expect(parseBlobUri("http://127.0.0.1:10000/devstoreaccount1/inputs/a/b.json", uriContext)).toEqual({
      container: "inputs",
      path: "a/b.json",
    });
    expect(parseBlobUri("https://acct.blob.core.windows.net/inputs/a%20b/", uriContext)).toEqual({
      container: "inputs",
      path: "a b/",
    });
    expect(parseBlobUri("azureml://datastores/workspaceblobstore/paths/x/y", uriContext)).toEqual({
      container: "azureml-blobstore",
      path: "x/y",
    });
    // A registered datastore resolves to its own container; any other name to the default datastore's.
    const withInputs = { ...uriContext, datastores: { fcinput: "batch-inputs" } };
    expect(parseBlobUri("azureml://datastores/fcinput/paths/fc/b-1/", withInputs)).toEqual({
      container: "batch-inputs",
      path: "fc/b-1/",
    });
    expect(parseBlobUri("azureml://datastores/other/paths/x", withInputs)).toEqual({
      container: "azureml-blobstore",
      path: "x",
    });
    expect(() => parseBlobUri("not a url", uriContext)).toThrow();
    expect(() => parseBlobUri("https://acct.blob.core.windows.net/", uriContext)).toThrow(/container/);
  });
});

describe("parseInputFile", () => {
  it("reads CSV with features as a JSON array, skipping invalid rows", () => {
    const csv = 'store_id,features\nCA_1,"[1,2,3]"\n,"[1]"\nTX_1,"[1,""x""]"\nWI_1,not-json\nNV_1,"[4]"\n';
    const { rows, rowsSkipped } = parseInputFile("in.csv", csv);
    expect(rows).toEqual([
      { fileName: "in.csv", indexInFile: 0, storeId: "CA_1", features: [1, 2, 3] },
      { fileName: "in.csv", indexInFile: 4, storeId: "NV_1", features: [4] },
    ]);
    expect(rowsSkipped).toBe(3);
  });

  it("fails unreadable files as a whole", () => {
    expect(() => parseInputFile("in.json", "{not json")).toThrow(InputError);
    expect(() => parseInputFile("in.json", '{"store_id":"x"}')).toThrow(InputError);
    expect(() => parseInputFile("in.csv", "id,values\n1,2\n")).toThrow(InputError);
  });
});

describe("resolveEmulatorOptions", () => {
  it("fills in the documented defaults", () => {
    const options = resolveEmulatorOptions({ blobConnectionString: "UseDevelopmentStorage=true" });
    expect(options).toMatchObject({
      host: "127.0.0.1",
      port: 0,
      outputContainer: "azureml-blobstore",
      outputPathTemplate: "artifacts/output/{jobId}/predictions.csv",
      coldStartMs: 200,
      runMs: 200,
      cancelMs: 1000,
      armWorkspace: {
        subscriptionId: "00000000-0000-0000-0000-000000000000",
        resourceGroup: "emulator",
        workspace: "emulator",
      },
      datastores: {},
      seed: 1,
      faults: {},
    });
    expect(Object.isFrozen(options)).toBe(true);
  });

  it("names the bad option", () => {
    const cs = "UseDevelopmentStorage=true";
    expect(() => resolveEmulatorOptions({} as never)).toThrow(/blobConnectionString/);
    expect(() => resolveEmulatorOptions({ blobConnectionString: cs, port: 70000 })).toThrow(/options\.port/);
    expect(() => resolveEmulatorOptions({ blobConnectionString: cs, coldStartMs: -1 })).toThrow(RangeError);
    expect(() => resolveEmulatorOptions({ blobConnectionString: cs, outputContainer: "Bad_Name" })).toThrow(
      /outputContainer/,
    );
    expect(() => resolveEmulatorOptions({ blobConnectionString: cs, outputPathTemplate: "out.csv" })).toThrow(
      /\{jobId\}/,
    );
    expect(() =>
      resolveEmulatorOptions({ blobConnectionString: cs, faults: { stuckJobs: { count: -1 } } }),
    ).toThrow(/options\.faults\.stuckJobs\.count/);
    expect(() => resolveEmulatorOptions({ blobConnectionString: cs, cancelMs: -1 })).toThrow(
      /options\.cancelMs/,
    );
    expect(() =>
      resolveEmulatorOptions({ blobConnectionString: cs, datastores: { fcinput: "Bad_Name" } }),
    ).toThrow(/options\.datastores\.fcinput/);
    expect(() =>
      resolveEmulatorOptions({
        blobConnectionString: cs,
        armWorkspace: { subscriptionId: "s", resourceGroup: "", workspace: "w" },
      }),
    ).toThrow(/options\.armWorkspace\.resourceGroup/);
    expect(() => resolveEmulatorOptions({ blobConnectionString: cs, colStartMs: 1 } as never)).toThrow(
      /colStartMs/,
    );
  });
});
