/**
 * The pipeline (src/pipeline/pipeline.ts) with a fake coordinator (a small model of epochs, tracking and
 * settling that records every call), a fake decoder, a fake batch job runner whose upload, restore and score
 * the tests control, a fake consumer recording pause/resume, the real batch policy and batcher, and the real
 * retry policy (1-2 ms waits). The coordinator itself is covered in coordinator.test.ts.
 */

import { afterEach, describe, expect, it } from "vitest";
import { createBatchPolicy } from "../../src/batcher/index.ts";
import { packMembers } from "../../src/batcher/members.ts";
import { type EventDecoder, RegistryUnavailableError } from "../../src/consumer/decode.ts";
import type { InputMessage } from "../../src/consumer/inputConsumer.ts";
import type { InvalidReason } from "../../src/consumer/validate.ts";
import type { LedgerEntry } from "../../src/ledger/record.ts";
import type {
  BatchJobCallOptions,
  BatchJobRunner,
  JobProgress,
  ScoreOptions,
} from "../../src/pipeline/batchJob.ts";
import {
  BatchDroppedError,
  type BatchRun,
  type Coordinator,
  type ResumableEntry,
  type TrackResult,
} from "../../src/pipeline/coordinator.ts";
import { createPipeline, type Pipeline, type PipelineEvent } from "../../src/pipeline/pipeline.ts";
import type { DeadLetter } from "../../src/producer/deadLetter.ts";
import { createRetryPolicy } from "../../src/retry.ts";
import type { BatchMember, BatchResult, SealedBatch, SourceRef, UploadedBatch } from "../../src/types.ts";
import { type Deferred, deferred, eventually, idle } from "../helpers/async.ts";

const IN = "feature-events";

const src = (partition: number, offset: number): SourceRef => ({
  topic: IN,
  partition,
  offset: String(offset),
  timestampMs: 1_000_000 + partition * 1000 + offset,
});

const mem = (partition: number, offset: number): BatchMember => ({
  source: src(partition, offset),
  storeId: `S${partition}_${offset}`,
});

const key = (s: SourceRef) => `${s.partition}/${s.offset}`;
const keysOf = (members: readonly BatchMember[]) => members.map((m) => key(m.source));

function valid(partition: number, offset: number): InputMessage {
  const storeId = `S${partition}_${offset}`;
  return {
    source: src(partition, offset),
    key: Buffer.from(storeId),
    value: Buffer.from(JSON.stringify({ store_id: storeId, features: [partition, offset] })),
  };
}

function invalid(
  partition: number,
  offset: number,
  reason: InvalidReason,
  options: { padding?: number; headers?: InputMessage["headers"] } = {},
): InputMessage {
  return {
    source: src(partition, offset),
    key: Buffer.from(`k-${offset}`),
    value: Buffer.from(`invalid:${reason}:${"x".repeat(options.padding ?? 0)}`),
    ...(options.headers ? { headers: options.headers } : {}),
  };
}

/** Values "invalid:<reason>:..." are rejected for that reason, "registry-down" finds the registry down. */
function fakeDecoder(decoded: string[]): EventDecoder {
  return {
    async decode(value) {
      const text = value?.toString("utf8") ?? "";
      decoded.push(text);
      if (text === "registry-down") throw new RegistryUnavailableError(new Error("ECONNREFUSED"));
      const rejected = /^invalid:([a-z_]+)/.exec(text);
      if (rejected) {
        const reason = rejected[1] as InvalidReason;
        return { ok: false, reason, detail: `rejected: ${reason}` };
      }
      return { ok: true, row: JSON.parse(text) };
    },
  };
}

function fakeConsumer(log: string[]) {
  let paused = false;
  return {
    pause() {
      paused = true;
      log.push("pause");
    },
    resume() {
      paused = false;
      log.push("resume");
    },
    isPaused: () => paused,
    pausePartitions(partitions: readonly number[]) {
      log.push(`pausePartitions ${partitions.join(",")}`);
    },
    resumePartitions(partitions: readonly number[]) {
      log.push(`resumePartitions ${partitions.join(",")}`);
    },
  };
}

/** A model of the coordinator: epochs per partition, duplicates by highest offset, scripted answers. */
class FakeCoordinator implements Coordinator {
  readonly log: string[];
  readonly epochs = new Map<number, number>();
  nextEpoch = 1;
  readonly highest = new Map<number, bigint>();
  /** track()'s answer for "partition/offset", instead of the model's. */
  readonly script = new Map<string, TrackResult>();
  /** Tracked (fresh or held) and not settled. */
  events = 0;
  inFlightOverride: number | undefined;
  readonly tracked: string[] = [];
  readonly recorded: Array<{ run: BatchRun; progress: JobProgress }> = [];
  readonly settled: Array<{ run: BatchRun; result: BatchResult }> = [];
  readonly invalid: DeadLetter[][] = [];
  readonly revoked: number[][] = [];
  /** Each settleBatch waits for the next of these, when there is one. */
  readonly settleGates: Promise<void>[] = [];
  assignImpl: (partitions: readonly number[]) => Promise<ResumableEntry[]> = async (partitions) => {
    for (const p of partitions) this.epochs.set(p, this.nextEpoch++);
    return [];
  };

  constructor(log: string[]) {
    this.log = log;
  }

  async assign(partitions: readonly number[]): Promise<ResumableEntry[]> {
    this.log.push(`coordinator.assign ${partitions.join(",")}`);
    return this.assignImpl(partitions);
  }

  revoke(partitions: readonly number[]): void {
    this.log.push(`coordinator.revoke ${partitions.join(",")}`);
    this.revoked.push([...partitions]);
    for (const p of partitions) this.epochs.delete(p);
  }

  epochOf(partition: number): number | undefined {
    return this.epochs.get(partition);
  }

  track(source: SourceRef): TrackResult {
    this.tracked.push(key(source));
    const scripted = this.script.get(key(source));
    if (scripted !== undefined) {
      if (scripted === "fresh" || scripted === "held") this.events++;
      return scripted;
    }
    if (!this.epochs.has(source.partition)) return "not_ready";
    const offset = BigInt(source.offset);
    if (offset <= (this.highest.get(source.partition) ?? -1n)) return "duplicate";
    this.highest.set(source.partition, offset);
    this.events++;
    return "fresh";
  }

  private owns(run: BatchRun, partition: number): boolean {
    const epoch = run.parts.get(partition);
    return epoch !== undefined && this.epochs.get(partition) === epoch;
  }

  async recordJob(run: BatchRun, progress: JobProgress): Promise<void> {
    this.recorded.push({ run, progress });
    if (!run.batch.members.partitions.some((p) => this.owns(run, p)))
      throw new BatchDroppedError(run.batch.batchId);
  }

  async settleInvalid(letters: readonly DeadLetter[]): Promise<void> {
    this.invalid.push([...letters]);
    this.events -= letters.length;
  }

  async settleBatch(run: BatchRun, result: BatchResult): Promise<void> {
    this.settled.push({ run, result });
    const gate = this.settleGates.shift();
    if (gate) await gate;
    this.events -= result.batch.members.partitions.filter((p) => this.owns(run, p)).length;
  }

  unusableSinceMs(): number | undefined {
    return undefined;
  }

  inFlight(): number {
    return this.inFlightOverride ?? this.events;
  }

  async flushCommits(): Promise<void> {}
  stop(): void {}
  async close(): Promise<void> {}
}

function uploadedOf(batch: Pick<SealedBatch, "batchId" | "members">): UploadedBatch {
  return {
    batchId: batch.batchId,
    members: packMembers(batch.members),
    files: [
      {
        fileName: `${batch.batchId}-0.json`,
        blobPath: `in/${batch.batchId}-0.json`,
        memberIndexes: Uint32Array.from(batch.members.keys()),
      },
    ],
    folderUri: `https://account.blob.core.windows.net/in/${batch.batchId}`,
    manifestPath: `_manifests/${batch.batchId}.json`,
  };
}

function scoredResult(batch: UploadedBatch, jobId = `job-${batch.batchId}`): BatchResult {
  return {
    kind: "scored",
    batch,
    jobId,
    predictions: Array.from({ length: batch.members.length }, (_, memberIndex) => ({
      memberIndex,
      fileName: `${batch.batchId}-0.json`,
      prediction: 1,
    })),
    missing: [],
    predictedAt: new Date(0),
  };
}

interface ScoreCall {
  readonly batch: UploadedBatch;
  readonly options: ScoreOptions;
  readonly result: Deferred<BatchResult>;
}

class FakeJobs implements BatchJobRunner {
  readonly uploads: Array<{ batch: SealedBatch; signal: AbortSignal | undefined }> = [];
  readonly uploaded: UploadedBatch[] = [];
  readonly restores: string[] = [];
  readonly scores: ScoreCall[] = [];
  /** Each upload waits for the next of these, when there is one. */
  readonly uploadGates: Promise<void>[] = [];
  restoreImpl: (manifestPath: string) => Promise<UploadedBatch | undefined> = async () => undefined;
  /** Answers of the next score calls, one each; without one a call waits for its result, or its abort. */
  readonly scoreScript: Array<(batch: UploadedBatch, options: ScoreOptions) => Promise<BatchResult>> = [];

  async upload(batch: SealedBatch, options: BatchJobCallOptions = {}): Promise<UploadedBatch> {
    this.uploads.push({ batch, signal: options.abortSignal });
    const gate = this.uploadGates.shift();
    if (gate) await gate;
    options.abortSignal?.throwIfAborted();
    const uploaded = uploadedOf(batch);
    this.uploaded.push(uploaded);
    return uploaded;
  }

  async restore(manifestPath: string): Promise<UploadedBatch | undefined> {
    this.restores.push(manifestPath);
    return this.restoreImpl(manifestPath);
  }

  score(batch: UploadedBatch, options: ScoreOptions = {}): Promise<BatchResult> {
    const result = deferred<BatchResult>();
    this.scores.push({ batch, options, result });
    options.abortSignal?.addEventListener("abort", () => result.reject(options.abortSignal?.reason), {
      once: true,
    });
    const scripted = this.scoreScript.shift();
    if (scripted) scripted(batch, options).then(result.resolve, result.reject);
    return result.promise;
  }
}

const pipelines: Pipeline[] = [];
afterEach(() => {
  for (const p of pipelines.splice(0)) {
    p.close();
    p.abandon();
  }
});

function setup(
  options: {
    maxRecords?: number;
    maxJobsInFlight?: number;
    maxEventsInFlight?: number;
    maxDeadLetterValueBytes?: number;
  } = {},
) {
  const log: string[] = [];
  const coordinator = new FakeCoordinator(log);
  const jobs = new FakeJobs();
  const consumer = fakeConsumer(log);
  const events: PipelineEvent[] = [];
  const decoded: string[] = [];
  const pipeline = createPipeline({
    consumer,
    decoder: fakeDecoder(decoded),
    batchPolicy: createBatchPolicy({
      maxRecords: options.maxRecords ?? 2,
      maxBytes: 1_000_000,
      maxWaitMs: 600_000,
    }),
    coordinator,
    jobs,
    retry: createRetryPolicy({ initialDelayMs: 1, maxDelayMs: 2 }),
    maxDeadLetterValueBytes: options.maxDeadLetterValueBytes ?? 1000,
    maxJobsInFlight: options.maxJobsInFlight ?? 4,
    maxEventsInFlight: options.maxEventsInFlight ?? 1000,
    onEvent: (event) => events.push(event),
  });
  pipelines.push(pipeline);
  /** Partitions owned without going through assign. */
  const own = (...partitions: number[]) => {
    for (const p of partitions) coordinator.epochs.set(p, coordinator.nextEpoch++);
  };
  const eventsOf = <T extends PipelineEvent["type"]>(type: T) =>
    events.filter((e): e is Extract<PipelineEvent, { type: T }> => e.type === type);
  return { pipeline, coordinator, jobs, consumer, log, events, eventsOf, decoded, own };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("pipeline: handleMessages", () => {
  it("returns how many it took and stops at the first event whose partition is not ready", async () => {
    const h = setup({ maxRecords: 2 });
    h.own(0);
    h.coordinator.script.set("0/2", "not_ready");
    const taken = await h.pipeline.handleMessages(range(0, 4).map((o) => valid(0, o)));
    expect(taken).toBe(2);
    expect(h.coordinator.tracked).toEqual(["0/0", "0/1", "0/2"]);
    expect(h.eventsOf("messages_handled")).toEqual([{ type: "messages_handled", consumed: 2, invalid: {} }]);
    expect(h.jobs.uploads.map((u) => keysOf(u.batch.members))).toEqual([["0/0", "0/1"]]);

    // A partition not assigned here: nothing is taken, nothing counted.
    expect(await h.pipeline.handleMessages([valid(1, 0), valid(1, 1)])).toBe(0);
    expect(h.eventsOf("messages_handled")).toHaveLength(1);
  });

  it("takes duplicates and held events without batching them; held ones count as consumed", async () => {
    const h = setup({ maxRecords: 2 });
    h.own(0);
    h.coordinator.script.set("0/1", "duplicate");
    h.coordinator.script.set("0/2", "held");
    h.coordinator.script.set("0/5", "held");
    const messages = [...range(0, 4).map((o) => valid(0, o)), invalid(0, 5, "malformed_json")];
    expect(await h.pipeline.handleMessages(messages)).toBe(6);
    expect(h.eventsOf("messages_handled")).toEqual([{ type: "messages_handled", consumed: 5, invalid: {} }]);
    // 0 and 3 make a batch; 4 is open; 1 (duplicate), 2 and 5 (held) are nowhere.
    expect(h.jobs.uploads.map((u) => keysOf(u.batch.members))).toEqual([["0/0", "0/3"]]);
    expect(h.jobs.uploads[0]?.batch.rows).toEqual([
      { store_id: "S0_0", features: [0, 0] },
      { store_id: "S0_3", features: [0, 3] },
    ]);
    expect(h.coordinator.invalid).toEqual([]); // a held invalid event was already dead-lettered
    h.pipeline.revoke([7]); // seals the open batch
    await eventually(() => expect(h.jobs.uploads).toHaveLength(2));
    expect(keysOf(h.jobs.uploads[1]?.batch.members ?? [])).toEqual(["0/4"]);
  });

  it("sends invalid events to settleInvalid as dead letters: too_large values cut, original headers kept", async () => {
    const h = setup({ maxRecords: 10, maxDeadLetterValueBytes: 8 });
    h.own(0);
    const malformed = invalid(0, 0, "malformed_json", { headers: { trace: "t-0" } });
    const tooLarge = invalid(0, 1, "too_large", {
      padding: 30,
      headers: { "content-type": "application/json", trace: Buffer.from("t-1") },
    });
    const noHeaders = invalid(0, 3, "wrong_feature_count");
    const taken = await h.pipeline.handleMessages([malformed, tooLarge, valid(0, 2), noHeaders]);
    expect(taken).toBe(4);
    expect(h.coordinator.invalid).toHaveLength(1);
    const [letters] = h.coordinator.invalid;
    expect(letters).toHaveLength(3);
    const [l0, l1, l3] = letters ?? [];
    expect(l0).toStrictEqual({
      source: src(0, 0),
      reason: "malformed_json",
      detail: "rejected: malformed_json",
      key: Buffer.from("k-0"),
      value: malformed.value, // not too_large: whole, however long
      originalHeaders: { trace: "t-0" },
    });
    const tooLargeBytes = tooLarge.value?.length ?? 0;
    expect(tooLargeBytes).toBe("invalid:too_large:".length + 30);
    expect(l1).toStrictEqual({
      source: src(0, 1),
      reason: "too_large",
      detail: "rejected: too_large",
      key: Buffer.from("k-1"),
      value: Buffer.from("invalid:"), // the first 8 bytes
      truncatedFromBytes: tooLargeBytes,
      originalHeaders: { "content-type": "application/json", trace: Buffer.from("t-1") },
    });
    expect(l3).toStrictEqual({
      source: src(0, 3),
      reason: "wrong_feature_count",
      detail: "rejected: wrong_feature_count",
      key: Buffer.from("k-3"),
      value: noHeaders.value,
    });
    expect(h.eventsOf("messages_handled")).toEqual([
      {
        type: "messages_handled",
        consumed: 4,
        invalid: { malformed_json: 1, too_large: 1, wrong_feature_count: 1 },
      },
    ]);
    expect(h.jobs.uploads).toEqual([]); // the valid event waits in the open batch
  });

  it("stops at an event the schema registry cannot decode now, leaving it and the rest untaken", async () => {
    const h = setup({ maxRecords: 10 });
    h.own(0);
    const down: InputMessage = { source: src(0, 1), key: null, value: Buffer.from("registry-down") };
    expect(await h.pipeline.handleMessages([valid(0, 0), down, valid(0, 2)])).toBe(1);
    expect(h.coordinator.tracked).toEqual(["0/0"]);
    expect(h.eventsOf("registry_unavailable")).toEqual([
      { type: "registry_unavailable", source: src(0, 1), error: expect.any(RegistryUnavailableError) },
    ]);
    expect(h.eventsOf("messages_handled")).toEqual([{ type: "messages_handled", consumed: 1, invalid: {} }]);
  });
});

describe("pipeline: flow control", () => {
  it("pauses when events in flight reach the bound, resumes only below 90% of it", async () => {
    const h = setup({ maxRecords: 100, maxEventsInFlight: 10 });
    h.own(0);
    await h.pipeline.handleMessages(range(0, 8).map((o) => valid(0, o)));
    expect(h.consumer.isPaused()).toBe(false);
    await h.pipeline.handleMessages([valid(0, 9)]);
    expect(h.consumer.isPaused()).toBe(true);
    expect(h.eventsOf("input_paused")).toEqual([
      { type: "input_paused", events: 10, batchesRunning: 0, batchesWaiting: 0 },
    ]);

    h.coordinator.inFlightOverride = 9; // 90%: not below it
    await h.pipeline.handleMessages([]);
    expect(h.consumer.isPaused()).toBe(true);
    h.coordinator.inFlightOverride = 8;
    await h.pipeline.handleMessages([]);
    expect(h.consumer.isPaused()).toBe(false);
    expect(h.eventsOf("input_resumed")).toEqual([
      { type: "input_resumed", events: 8, batchesRunning: 0, batchesWaiting: 0 },
    ]);
    expect(h.log).toEqual(["pause", "resume"]);
    expect(h.eventsOf("in_flight").at(-1)).toEqual({
      type: "in_flight",
      events: 8,
      batchesRunning: 0,
      batchesWaiting: 0,
    });
  });

  it("runs at most maxJobsInFlight batches; a sealed batch waiting for a slot pauses the input until it starts", async () => {
    const h = setup({ maxRecords: 2, maxJobsInFlight: 1, maxEventsInFlight: 100 });
    h.own(0);
    await h.pipeline.handleMessages(range(0, 5).map((o) => valid(0, o)));
    expect(h.jobs.uploads.map((u) => keysOf(u.batch.members))).toEqual([["0/0", "0/1"]]);
    expect(h.pipeline.inFlight()).toEqual({ events: 6, batchesRunning: 1, batchesWaiting: 2 });
    expect(h.eventsOf("input_paused")).toEqual([
      { type: "input_paused", events: 4, batchesRunning: 1, batchesWaiting: 1 },
    ]);
    await eventually(() => expect(h.jobs.scores).toHaveLength(1));

    const finish = async (i: number) => {
      const call = h.jobs.scores[i];
      if (!call) throw new Error(`no score call ${i}`);
      call.result.resolve(scoredResult(call.batch));
      await eventually(() => expect(h.jobs.scores).toHaveLength(i + 2));
    };
    await finish(0);
    expect(h.jobs.uploads).toHaveLength(2);
    expect(h.pipeline.inFlight()).toEqual({ events: 4, batchesRunning: 1, batchesWaiting: 1 });
    expect(h.consumer.isPaused()).toBe(true); // a batch still waits
    await finish(1);
    expect(h.jobs.uploads.map((u) => keysOf(u.batch.members))).toEqual([
      ["0/0", "0/1"],
      ["0/2", "0/3"],
      ["0/4", "0/5"],
    ]);
    expect(h.consumer.isPaused()).toBe(false);
    expect(h.eventsOf("input_resumed")).toEqual([
      { type: "input_resumed", events: 2, batchesRunning: 1, batchesWaiting: 0 },
    ]);
    // Never more than one batch between upload and settle.
    expect(h.eventsOf("in_flight").every((e) => e.batchesRunning <= 1)).toBe(true);
    expect(h.coordinator.settled.map((s) => s.result.batch.batchId)).toEqual([
      h.jobs.uploaded[0]?.batchId,
      h.jobs.uploaded[1]?.batchId,
    ]);
  });

  it("starts as many batches as there are slots", async () => {
    const h = setup({ maxRecords: 1, maxJobsInFlight: 2 });
    h.own(0);
    await h.pipeline.handleMessages(range(0, 2).map((o) => valid(0, o)));
    expect(h.jobs.uploads).toHaveLength(2);
    expect(h.pipeline.inFlight()).toEqual({ events: 3, batchesRunning: 2, batchesWaiting: 1 });
  });
});

describe("pipeline: a batch's run", () => {
  it("scores a batch again after an unexpected rejection (batch_failed), then settles it", async () => {
    const h = setup({ maxRecords: 2 });
    h.own(0);
    h.jobs.scoreScript.push(
      async () => Promise.reject(new Error("poller exploded")),
      async (batch) => scoredResult(batch, "job-1"),
    );
    await h.pipeline.handleMessages([valid(0, 0), valid(0, 1)]);
    await eventually(() => expect(h.coordinator.settled).toHaveLength(1));
    const uploaded = h.jobs.uploaded[0];
    expect(h.jobs.uploads).toHaveLength(1);
    expect(h.jobs.scores).toHaveLength(2);
    expect(h.jobs.scores[0]?.batch).toBe(uploaded);
    expect(h.jobs.scores[1]?.batch).toBe(uploaded);
    expect(h.eventsOf("batch_failed")).toEqual([
      { type: "batch_failed", batchId: uploaded?.batchId, attempt: 1, error: new Error("poller exploded") },
    ]);
    const [settled] = h.coordinator.settled;
    expect(settled?.run.batch).toBe(uploaded);
    expect(settled?.run.parts).toEqual(new Map([[0, h.coordinator.epochOf(0)]]));
    expect(settled?.result).toEqual(scoredResult(uploaded as UploadedBatch, "job-1"));
    expect(h.eventsOf("batch_abandoned")).toEqual([]);
    await eventually(() =>
      expect(h.pipeline.inFlight()).toEqual({ events: 0, batchesRunning: 0, batchesWaiting: 0 }),
    );
  });

  it("records the job's progress through the coordinator, for the run's partitions and epochs", async () => {
    const h = setup({ maxRecords: 2 });
    h.own(0, 1);
    h.jobs.scoreScript.push(async (batch, options) => {
      await options.record?.({ state: "intent", attempt: 1, repeatabilityId: "r-1" });
      return scoredResult(batch);
    });
    await h.pipeline.handleMessages([valid(0, 0), valid(1, 0)]);
    await eventually(() => expect(h.coordinator.settled).toHaveLength(1));
    expect(h.coordinator.recorded).toHaveLength(1);
    expect(h.coordinator.recorded[0]?.progress).toEqual({
      state: "intent",
      attempt: 1,
      repeatabilityId: "r-1",
    });
    expect(h.coordinator.recorded[0]?.run.batch).toBe(h.jobs.uploaded[0]);
    expect(h.coordinator.recorded[0]?.run.parts).toEqual(
      new Map([
        [0, h.coordinator.epochOf(0)],
        [1, h.coordinator.epochOf(1)],
      ]),
    );
  });

  it("ends a batch quietly when the coordinator drops it (BatchDroppedError): not scored again, not settled", async () => {
    const h = setup({ maxRecords: 2 });
    h.own(0);
    const upload = deferred();
    h.jobs.uploadGates.push(upload.promise);
    h.jobs.scoreScript.push(async (batch, options) => {
      await options.record?.({ state: "intent", attempt: 1, repeatabilityId: "r-1" });
      return scoredResult(batch);
    });
    await h.pipeline.handleMessages([valid(0, 0), valid(0, 1)]);
    h.pipeline.revoke([0]); // while it uploads
    upload.resolve();
    await eventually(() => expect(h.pipeline.inFlight().batchesRunning).toBe(0));
    await idle();
    expect(h.jobs.scores).toHaveLength(1);
    expect(h.coordinator.recorded).toHaveLength(1);
    expect(h.coordinator.settled).toEqual([]);
    expect(h.eventsOf("batch_failed")).toEqual([]);
    expect(h.eventsOf("batch_abandoned")).toEqual([]);
  });
});

describe("pipeline: assign", () => {
  const common = {
    repeatabilityId: "r",
    folderUri: "https://account.blob.core.windows.net/in/b",
    partitions: [0, 1],
  };

  it("pauses the partitions while the coordinator loads them; one restore and one score per batch found in flight", async () => {
    const h = setup();
    const loading = deferred();
    const entries: ResumableEntry[] = [
      // b-r: attempt 2 submitted on partition 1 is the most advanced.
      {
        partition: 0,
        epoch: 10,
        entry: {
          ...common,
          batchId: "b-r",
          state: "intent",
          attempt: 2,
          ranges: [["4", "5"]],
          manifestPath: "_manifests/b-r.json",
        },
      },
      {
        partition: 1,
        epoch: 11,
        entry: {
          ...common,
          batchId: "b-r",
          state: "submitted",
          attempt: 2,
          jobId: "job-7",
          submittedAtMs: 5000,
          ranges: [["7", "7"]],
          manifestPath: "_manifests/b-r.json",
        },
      },
      // b-s: attempt 2 (intent, on partition 1) beats attempt 1 submitted: no job id to resume.
      {
        partition: 0,
        epoch: 10,
        entry: {
          ...common,
          batchId: "b-s",
          state: "submitted",
          attempt: 1,
          jobId: "job-1",
          submittedAtMs: 100,
          ranges: [["8", "8"]],
          manifestPath: "_manifests/b-s.json",
        },
      },
      {
        partition: 1,
        epoch: 11,
        entry: {
          ...common,
          batchId: "b-s",
          state: "intent",
          attempt: 2,
          ranges: [["9", "9"]],
          manifestPath: "_manifests/b-s.json",
        },
      },
    ];
    h.coordinator.assignImpl = async (partitions) => {
      await loading.promise;
      for (const p of partitions) h.coordinator.epochs.set(p, 10 + p);
      return entries;
    };
    const restored = new Map<string, UploadedBatch>([
      ["_manifests/b-r.json", uploadedOf({ batchId: "b-r", members: [mem(0, 4), mem(0, 5), mem(1, 7)] })],
      ["_manifests/b-s.json", uploadedOf({ batchId: "b-s", members: [mem(0, 8), mem(1, 9)] })],
    ]);
    h.jobs.restoreImpl = async (path) => restored.get(path);

    const assigning = h.pipeline.assign([0, 1]);
    await idle(5);
    expect(h.log).toEqual(["pausePartitions 0,1", "coordinator.assign 0,1"]);
    loading.resolve();
    await assigning;
    expect(h.log).toEqual(["pausePartitions 0,1", "coordinator.assign 0,1", "resumePartitions 0,1"]);
    expect(h.eventsOf("batch_resuming")).toEqual([
      { type: "batch_resuming", batchId: "b-r", partitions: [0, 1] },
      { type: "batch_resuming", batchId: "b-s", partitions: [0, 1] },
    ]);

    await eventually(() => expect(h.jobs.scores).toHaveLength(2));
    await idle();
    expect(h.jobs.restores.sort()).toEqual(["_manifests/b-r.json", "_manifests/b-s.json"]);
    expect(h.jobs.scores).toHaveLength(2);
    expect(h.jobs.uploads).toEqual([]);
    const scoreOf = (batchId: string) => h.jobs.scores.find((s) => s.batch.batchId === batchId);
    expect(scoreOf("b-r")?.batch).toBe(restored.get("_manifests/b-r.json"));
    expect(scoreOf("b-r")?.options.resume).toStrictEqual({ attempt: 2, jobId: "job-7", submittedAtMs: 5000 });
    expect(scoreOf("b-s")?.options.resume).toStrictEqual({ attempt: 2 });

    for (const call of h.jobs.scores) call.result.resolve(scoredResult(call.batch));
    await eventually(() => expect(h.coordinator.settled).toHaveLength(2));
    for (const { run } of h.coordinator.settled)
      expect(run.parts).toEqual(
        new Map([
          [0, 10],
          [1, 11],
        ]),
      );
  });

  it("does not resume batches found in flight once close() was called while the ledger was being read", async () => {
    const h = setup();
    const loading = deferred();
    const intent: LedgerEntry = {
      ...common,
      batchId: "b-late",
      state: "intent",
      attempt: 1,
      ranges: [["0", "3"]],
      manifestPath: "_manifests/b-late.json",
    };
    h.coordinator.assignImpl = async () => {
      await loading.promise;
      h.coordinator.epochs.set(0, 10);
      return [{ partition: 0, epoch: 10, entry: intent }];
    };
    h.jobs.restoreImpl = async () => uploadedOf({ batchId: "b-late", members: [mem(0, 0), mem(0, 1)] });
    const assigning = h.pipeline.assign([0]);
    await idle(5);
    h.pipeline.close(); // shutdown: nothing new is uploaded or submitted
    loading.resolve();
    await assigning;
    await idle();
    // An intent entry resumed now would be submitted (the real runner records the intent and POSTs) during shutdown.
    expect(h.jobs.restores).toEqual([]);
    expect(h.jobs.scores).toEqual([]);
    expect(h.pipeline.inFlight().batchesRunning).toBe(0);
  });
});

describe("pipeline: revoke", () => {
  it("seals the open batch (rebalance) and uploads only the events of partitions still owned, rows with members", async () => {
    const h = setup({ maxRecords: 100 });
    h.own(0, 1);
    await h.pipeline.handleMessages([valid(0, 0), valid(1, 0), valid(0, 1), valid(1, 1)]);
    expect(h.jobs.uploads).toEqual([]);
    h.pipeline.revoke([1]);
    expect(h.coordinator.revoked).toEqual([[1]]);
    expect(h.eventsOf("batch_sealed")).toEqual([
      {
        type: "batch_sealed",
        batchId: expect.any(String),
        events: 4,
        bytes: expect.any(Number),
        trigger: "rebalance",
      },
    ]);
    await eventually(() => expect(h.jobs.uploads).toHaveLength(1));
    const sent = h.jobs.uploads[0]?.batch;
    expect(sent?.batchId).toBe(h.eventsOf("batch_sealed")[0]?.batchId);
    expect(sent?.trigger).toBe("rebalance");
    expect(keysOf(sent?.members ?? [])).toEqual(["0/0", "0/1"]);
    expect(sent?.rows).toEqual([
      { store_id: "S0_0", features: [0, 0] },
      { store_id: "S0_1", features: [0, 1] },
    ]);
  });

  it("drops a waiting batch whose partitions were all lost", async () => {
    const h = setup({ maxRecords: 2, maxJobsInFlight: 1 });
    h.own(0, 1);
    await h.pipeline.handleMessages([valid(0, 0), valid(0, 1), valid(1, 0), valid(1, 1)]);
    expect(h.pipeline.inFlight()).toMatchObject({ batchesRunning: 1, batchesWaiting: 1 });
    h.pipeline.revoke([1]);
    await eventually(() => expect(h.jobs.scores).toHaveLength(1));
    h.jobs.scores[0]?.result.resolve(scoredResult(h.jobs.scores[0].batch));
    await eventually(() =>
      expect(h.pipeline.inFlight()).toMatchObject({ batchesRunning: 0, batchesWaiting: 0 }),
    );
    expect(h.jobs.uploads.map((u) => keysOf(u.batch.members))).toEqual([["0/0", "0/1"]]);
  });
});

describe("pipeline: close, drain, abandon", () => {
  /** Two running batches (A in its job, B settling), C waiting for a slot, event 6 in the open batch. */
  async function busy() {
    const h = setup({ maxRecords: 2, maxJobsInFlight: 2 });
    h.own(0);
    const settleB = deferred();
    h.coordinator.settleGates.push(settleB.promise);
    h.jobs.scoreScript.push(
      () => new Promise<BatchResult>(() => {}), // A: its job runs until aborted
      async (batch) => scoredResult(batch), // B: scored at once, then settling
    );
    await h.pipeline.handleMessages(range(0, 6).map((o) => valid(0, o)));
    await eventually(() => expect(h.coordinator.settled).toHaveLength(1));
    const [a, b] = h.jobs.scores;
    if (!a || !b) throw new Error("two batches should be scoring");
    return { h, a, b, settleB };
  }

  it("close(): takes no more messages, drops waiting batches, aborts running ones not yet settling; drain waits for the rest", async () => {
    const { h, a, b, settleB } = await busy();
    expect(h.pipeline.inFlight()).toEqual({ events: 7, batchesRunning: 2, batchesWaiting: 1 });
    h.pipeline.close();
    expect(a.options.abortSignal?.aborted).toBe(true);
    expect(h.jobs.uploads[0]?.signal?.aborted).toBe(true);
    expect(b.options.abortSignal?.aborted).toBe(false); // settling: it finishes

    const decodedBefore = h.decoded.length;
    expect(await h.pipeline.handleMessages([valid(0, 7)])).toBe(0);
    expect(h.decoded).toHaveLength(decodedBefore);
    expect(h.coordinator.tracked).not.toContain("0/7");

    let drained = false;
    const draining = h.pipeline.drain().then(() => {
      drained = true;
    });
    await idle();
    expect(drained).toBe(false);
    settleB.resolve();
    await draining;
    expect(h.pipeline.inFlight()).toEqual({ events: 5, batchesRunning: 0, batchesWaiting: 0 });
    // Nothing else started: C was dropped, the open batch never sealed.
    expect(h.jobs.uploads.map((u) => keysOf(u.batch.members))).toEqual([
      ["0/0", "0/1"],
      ["0/2", "0/3"],
    ]);
    expect(h.coordinator.settled).toHaveLength(1);
    expect(h.eventsOf("batch_abandoned")).toEqual([]);
    // Shutting down: the input is not resumed as work drains.
    expect(h.consumer.isPaused()).toBe(true);
    expect(h.eventsOf("input_resumed")).toEqual([]);
  });

  it("abandon() aborts what still runs, settling batches included", async () => {
    const { h, b, settleB } = await busy();
    h.pipeline.close();
    expect(b.options.abortSignal?.aborted).toBe(false);
    h.pipeline.abandon();
    expect(b.options.abortSignal?.aborted).toBe(true);
    settleB.resolve();
    await h.pipeline.drain();
    expect(h.pipeline.inFlight().batchesRunning).toBe(0);
  });

  it("assign after close() does nothing", async () => {
    const h = setup();
    h.pipeline.close();
    await h.pipeline.assign([0]);
    expect(h.log).toEqual([]);
  });
});
