/**
 * The coordinator (src/pipeline/coordinator.ts) against in-memory fakes: one fake OutcomeWriter per input
 * partition that records every write and can be told to fail (retriably, or fenced), a fake ledger, a fake
 * batch store, and the real offset tracker and retry policy (1-2 ms waits). Ledger records are decoded from
 * the recorded writes with decodeLedgerEntry, so what is asserted is what Kafka would be sent.
 */
import { describe, expect, it } from "vitest";
import { packMembers, unpackMembers } from "../../src/batcher/members.ts";
import { decodeLedgerEntry, type LedgerEntry } from "../../src/ledger/record.ts";
import {
  BatchDroppedError,
  type BatchRun,
  type CoordinatorEvent,
  createCoordinator,
} from "../../src/pipeline/coordinator.ts";
import { createOffsetTracker } from "../../src/pipeline/offsetTracker.ts";
import type { DeadLetter, DeadLetterReason } from "../../src/producer/deadLetter.ts";
import type { OutcomeWrite, OutcomeWriter } from "../../src/producer/outcomeWriter.ts";
import { createRetryPolicy } from "../../src/retry.ts";
import type { BatchMember, BatchResult, FeatureRow, SourceRef, UploadedBatch } from "../../src/types.ts";
import { deferred, eventually, idle } from "../helpers/async.ts";

const IN = "feature-events";
const LEDGER = "fc.ledger";
const RESULTS = "forecasts";
const DLQ = "feature-events.dlq";
const PREDICTED_AT = new Date("2026-01-02T03:04:05.000Z");

/** Kafka's error for a producer another one with the same transactional id has fenced. */
function fencedError(): Error {
  return Object.assign(new Error("the broker refused the transaction"), { type: "INVALID_PRODUCER_EPOCH" });
}

class FakeWriter implements OutcomeWriter {
  readonly partition: number;
  readonly log: string[];
  /** Every call to write, failed ones included, in order. */
  readonly attempts: OutcomeWrite[] = [];
  /** Writes that were acknowledged. */
  readonly writes: OutcomeWrite[] = [];
  /** Thrown by the next write calls, one each. */
  readonly failures: unknown[] = [];
  /** When set, every write call fails with it. */
  failAlways: unknown;
  /** The next write calls wait for these, one each. */
  readonly gates: Promise<void>[] = [];
  initGate: Promise<void> | undefined;
  readonly initFailures: unknown[] = [];
  inits = 0;
  rebuilds = 0;
  closes = 0;
  active = 0;
  maxActive = 0;

  constructor(partition: number, log: string[]) {
    this.partition = partition;
    this.log = log;
  }

  async init(): Promise<void> {
    this.inits++;
    this.log.push(`init ${this.partition}`);
    if (this.initGate) await this.initGate;
    const failure = this.initFailures.shift();
    if (failure !== undefined) throw failure;
  }

  async write(write: OutcomeWrite): Promise<void> {
    this.attempts.push(write);
    this.log.push(`write start ${this.partition}`);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      const gate = this.gates.shift();
      if (gate) await gate;
      if (this.failAlways !== undefined) throw this.failAlways;
      const failure = this.failures.shift();
      if (failure !== undefined) throw failure;
      this.writes.push(write);
    } finally {
      this.active--;
      this.log.push(`write end ${this.partition}`);
    }
  }

  async rebuild(): Promise<void> {
    this.rebuilds++;
  }

  async close(): Promise<void> {
    this.closes++;
    this.log.push(`close ${this.partition}`);
  }
}

const src = (partition: number, offset: number): SourceRef => ({
  topic: IN,
  partition,
  offset: String(offset),
  timestampMs: 1_000_000 + partition * 1000 + offset,
});

const member = (partition: number, offset: number): BatchMember => ({
  source: src(partition, offset),
  storeId: `S${partition}_${offset}`,
});

/** The row the batch file holds for a member (what a dead letter carries back). */
const rowOf = (m: BatchMember): FeatureRow => ({
  store_id: m.storeId,
  features: [m.source.partition, Number(m.source.offset), 0.5],
});

const predictionOf = (m: BatchMember) => m.source.partition * 100 + Number(m.source.offset) + 0.25;

interface HarnessOptions {
  readonly ledger?: Readonly<Record<number, LedgerEntry[]>>;
  readonly readLedger?: (partition: number) => Promise<LedgerEntry[]>;
  readonly rebuildAfterFailures?: number;
  readonly configureWriter?: (writer: FakeWriter) => void;
  /** The group's committed offset per partition, as read after fencing. */
  readonly committed?: Readonly<Record<number, string>>;
}

function harness(options: HarnessOptions = {}) {
  const log: string[] = [];
  const writersOf = new Map<number, FakeWriter[]>();
  const events: CoordinatorEvent[] = [];
  const tracker = createOffsetTracker();
  const files = new Map<string, FeatureRow[]>();
  const rowsRead: string[] = [];
  const lettersPassed: DeadLetter[][] = [];
  const seeks: Array<{ partition: number; offset: string }> = [];
  const coordinator = createCoordinator({
    inputTopic: IN,
    ledgerTopic: LEDGER,
    resultsTopic: RESULTS,
    tracker,
    createWriter: (partition) => {
      const writer = new FakeWriter(partition, log);
      options.configureWriter?.(writer);
      writersOf.set(partition, [...(writersOf.get(partition) ?? []), writer]);
      return writer;
    },
    readLedger: async (partition) => {
      log.push(`read ledger ${partition}`);
      if (options.readLedger) return options.readLedger(partition);
      return options.ledger?.[partition] ?? [];
    },
    readCommittedOffset: async (partition) => {
      log.push(`read committed ${partition}`);
      return options.committed?.[partition];
    },
    seek: (partition, offset) => {
      log.push(`seek ${partition} ${offset}`);
      seeks.push({ partition, offset });
    },
    encodePrediction: async (record) => Buffer.from(JSON.stringify(record)),
    deadLetterMessages: (letters) => {
      lettersPassed.push([...letters]);
      return {
        topic: DLQ,
        messages: letters.map((l) => ({
          key: l.key,
          value: l.value,
          headers: {
            reason: l.reason,
            detail: l.detail,
            partition: String(l.source.partition),
            offset: l.source.offset,
            ...(l.jobId ? { jobId: l.jobId } : {}),
            ...(l.batchId ? { batchId: l.batchId } : {}),
          },
        })),
      };
    },
    store: {
      readBatchRows: async (blobPath) => {
        rowsRead.push(blobPath);
        return files.get(blobPath) ?? [];
      },
    },
    retry: createRetryPolicy({ initialDelayMs: 1, maxDelayMs: 2 }),
    ...(options.rebuildAfterFailures !== undefined
      ? { rebuildAfterFailures: options.rebuildAfterFailures }
      : {}),
    onEvent: (event) => events.push(event),
  });

  const writer = (partition: number): FakeWriter => {
    const writer = writersOf.get(partition)?.at(-1);
    if (!writer) throw new Error(`no writer was created for partition ${partition}`);
    return writer;
  };
  const epoch = (partition: number): number => {
    const epoch = coordinator.epochOf(partition);
    if (epoch === undefined) throw new Error(`partition ${partition} is not owned`);
    return epoch;
  };
  /** Fetched events of one partition, in order; returns what track() said of each. */
  const fetch = (partition: number, ...offsets: number[]) =>
    offsets.map((offset) => coordinator.track(src(partition, offset)));
  /** An uploaded batch; fileOf lays members out in files (default: all in file 0). */
  const batch = (
    batchId: string,
    members: readonly BatchMember[],
    fileOf: (m: BatchMember) => number = () => 0,
  ): UploadedBatch => {
    const count = Math.max(0, ...members.map(fileOf)) + 1;
    const uploadedFiles = Array.from({ length: count }, (_, k) => {
      const inFile = members.flatMap((m, i) => (fileOf(m) === k ? [i] : []));
      const blobPath = `in/${batchId}/${batchId}-${k}.json`;
      files.set(
        blobPath,
        inFile.map((i) => rowOf(members[i] as BatchMember)),
      );
      return { fileName: `${batchId}-${k}.json`, blobPath, memberIndexes: Uint32Array.from(inFile) };
    });
    return {
      batchId,
      members: packMembers(members),
      files: uploadedFiles,
      folderUri: `https://account.blob.core.windows.net/in/${batchId}`,
      manifestPath: `_manifests/${batchId}.json`,
    };
  };
  const run = (b: UploadedBatch, parts: Record<number, number>): BatchRun => ({
    batch: b,
    parts: new Map(Object.entries(parts).map(([p, e]) => [Number(p), e])),
  });
  /** A run of the batch for every partition given, under its current epoch. */
  const ownedRun = (b: UploadedBatch, ...partitions: number[]): BatchRun =>
    run(b, Object.fromEntries(partitions.map((p) => [p, epoch(p)])));
  const eventsOf = <T extends CoordinatorEvent["type"]>(type: T) =>
    events.filter((e): e is Extract<CoordinatorEvent, { type: T }> => e.type === type);

  return {
    coordinator,
    tracker,
    log,
    writersOf,
    writer,
    epoch,
    fetch,
    batch,
    run,
    ownedRun,
    events,
    eventsOf,
    rowsRead,
    lettersPassed,
    seeks,
  };
}

/** A scored result: every member predicted except those listed missing. */
function scored(batch: UploadedBatch, jobId: string, missing: readonly BatchMember[] = []): BatchResult {
  const fileOf = (i: number) => batch.files.find((f) => f.memberIndexes.includes(i))?.fileName ?? "?";
  const keyOf = (m: BatchMember) => `${m.source.partition}/${m.source.offset}`;
  const missed = new Set(missing.map(keyOf));
  const all = unpackMembers(batch.members).map((member, memberIndex) => ({ member, memberIndex }));
  return {
    kind: "scored",
    batch,
    jobId,
    predictions: all
      .filter(({ member }) => !missed.has(keyOf(member)))
      .map(({ member, memberIndex }) => ({
        memberIndex,
        fileName: fileOf(memberIndex),
        prediction: predictionOf(member),
      })),
    missing: all
      .filter(({ member }) => missed.has(keyOf(member)))
      .map(({ memberIndex }) => ({ memberIndex, fileName: fileOf(memberIndex) })),
    predictedAt: PREDICTED_AT,
  };
}

const messagesOf = (write: OutcomeWrite | undefined, topic: string) =>
  (write?.topicMessages ?? []).filter((t) => t.topic === topic).flatMap((t) => t.messages);
const topicsOf = (write: OutcomeWrite | undefined) => (write?.topicMessages ?? []).map((t) => t.topic);
const predictionsIn = (write: OutcomeWrite | undefined) =>
  messagesOf(write, RESULTS).map((m) => ({ key: m.key, record: JSON.parse(String(m.value)) as unknown }));
const ledgerIn = (write: OutcomeWrite | undefined) =>
  messagesOf(write, LEDGER).map((m) => ({
    key: m.key,
    partition: m.partition,
    entry: m.value === null ? null : decodeLedgerEntry(m.value as Buffer),
  }));
const lettersIn = (write: OutcomeWrite | undefined) =>
  messagesOf(write, DLQ).map((m) => ({
    key: m.key === null || m.key === undefined ? null : String(m.key),
    value: m.value === null ? null : String(m.value),
    headers: m.headers,
  }));

/** The prediction record the coordinator must publish for a member. */
const recordFor = (m: BatchMember, batchId: string, jobId: string, fileName: string) => ({
  store_id: m.storeId,
  prediction: predictionOf(m),
  file_name: fileName,
  job_id: jobId,
  batch_id: batchId,
  source_topic: IN,
  source_partition: m.source.partition,
  source_offset: Number(m.source.offset),
  source_timestamp: m.source.timestampMs,
  predicted_at: PREDICTED_AT.getTime(),
});

function invalidLetter(partition: number, offset: number, reason: DeadLetterReason): DeadLetter {
  return {
    source: src(partition, offset),
    reason,
    detail: `bad event (${reason})`,
    key: Buffer.from(`key-${offset}`),
    value: Buffer.from(`raw-${offset}`),
  };
}

describe("coordinator: assign", () => {
  it("initialises the writer (fencing) before reading the ledger, and takes no event before both are done", async () => {
    const init = deferred();
    const ledger = deferred<LedgerEntry[]>();
    const h = harness({
      configureWriter: (w) => {
        w.initGate = init.promise;
      },
      readLedger: () => ledger.promise,
    });
    const assigning = h.coordinator.assign([0]);
    await idle();
    expect(h.log).toEqual(["init 0"]); // the ledger is not read before the previous owner is fenced
    expect(h.coordinator.track(src(0, 0))).toBe("not_ready");
    expect(h.coordinator.epochOf(0)).toBeUndefined();

    init.resolve();
    await eventually(() => expect(h.log).toEqual(["init 0", "read ledger 0", "read committed 0"]));
    expect(h.coordinator.track(src(0, 0))).toBe("not_ready");
    expect(h.coordinator.epochOf(0)).toBeUndefined();

    ledger.resolve([]);
    expect(await assigning).toEqual([]);
    expect(h.coordinator.epochOf(0)).toEqual(expect.any(Number));
    // The not_ready answers tracked nothing: offset 0 is fresh now, not a duplicate.
    expect(h.coordinator.track(src(0, 0))).toBe("fresh");
    expect(h.coordinator.inFlight()).toBe(1);
    // A partition never assigned is never ready.
    expect(h.coordinator.track(src(1, 0))).toBe("not_ready");
    expect(h.coordinator.epochOf(1)).toBeUndefined();
    expect(h.writer(0).inits).toBe(1);
    expect(h.eventsOf("partition_loaded")).toEqual([
      { type: "partition_loaded", partition: 0, held: 0, resumable: 0, durationMs: expect.any(Number) },
    ]);
  });

  it("gives every assignment a new epoch, a new writer, and closes the previous writer", async () => {
    const h = harness();
    await h.coordinator.assign([0, 1]);
    const first0 = h.epoch(0);
    const first1 = h.epoch(1);
    expect(first1).not.toBe(first0);

    h.coordinator.revoke([0]);
    expect(h.coordinator.epochOf(0)).toBeUndefined();
    expect(h.coordinator.track(src(0, 0))).toBe("not_ready");
    await h.coordinator.assign([0]);
    const second0 = h.epoch(0);
    expect(second0).not.toBe(first0);
    expect(second0).not.toBe(first1);
    expect(h.epoch(1)).toBe(first1);

    const writers0 = h.writersOf.get(0) ?? [];
    expect(writers0).toHaveLength(2);
    expect(writers0.map((w) => w.inits)).toEqual([1, 1]);
    await eventually(() => expect(writers0[0]?.closes).toBe(1));
    expect(writers0[1]?.closes).toBe(0);
  });

  it("retries a failed initialisation (write_failed) and then loads the partition", async () => {
    const h = harness({
      configureWriter: (w) => {
        w.initFailures.push(new Error("coordinator not available"));
      },
    });
    await h.coordinator.assign([3]);
    expect(h.writer(3).inits).toBe(2);
    expect(h.log).toEqual(["init 3", "init 3", "read ledger 3", "read committed 3"]);
    expect(h.eventsOf("write_failed")).toEqual([
      {
        type: "write_failed",
        partition: 3,
        what: "producer initialisation",
        attempt: 1,
        error: new Error("coordinator not available"),
      },
    ]);
    expect(h.coordinator.epochOf(3)).toEqual(expect.any(Number));
  });

  it("keeps a partition whose ledger cannot be read not ready while it retries, and says so each time", async () => {
    const h = harness({ readLedger: async () => Promise.reject(new Error("ledger unreadable")) });
    const assigning = h.coordinator.assign([2]);
    await eventually(() => expect(h.eventsOf("write_failed").length).toBeGreaterThanOrEqual(2));
    expect(h.coordinator.epochOf(2)).toBeUndefined();
    expect(h.coordinator.track(src(2, 0))).toBe("not_ready");
    expect(h.eventsOf("write_failed")[0]).toEqual({
      type: "write_failed",
      partition: 2,
      what: "reading the ledger",
      attempt: 1,
      error: new Error("ledger unreadable"),
    });
    expect(h.eventsOf("partition_loaded")).toEqual([]);
    // Shutdown ends the retries: the partition stays not ready, nothing more is tried.
    h.coordinator.stop();
    expect(await assigning).toEqual([]);
    expect(h.coordinator.epochOf(2)).toBeUndefined();
  });
});

describe("coordinator: track", () => {
  it("says fresh for new offsets and duplicate for offsets at or below the highest tracked", async () => {
    const h = harness();
    await h.coordinator.assign([0]);
    expect(h.fetch(0, 5, 5, 3, 6, 9, 7)).toEqual([
      "fresh",
      "duplicate",
      "duplicate",
      "fresh",
      "fresh",
      "duplicate",
    ]);
    expect(h.coordinator.inFlight()).toBe(3);
    expect(h.tracker.inFlightFor(IN, 0)).toBe(3);
  });

  it("holds offsets in the ranges of a batch in flight in the ledger (tracked, never completed)", async () => {
    const inFlightEntry: LedgerEntry = {
      batchId: "b-elsewhere",
      state: "submitted",
      ranges: [
        ["10", "12"],
        ["15", "15"],
      ],
      attempt: 1,
      repeatabilityId: "r-1",
      jobId: "job-1",
      submittedAtMs: 100,
      folderUri: "https://account.blob.core.windows.net/in/b-elsewhere",
      manifestPath: "_manifests/b-elsewhere.json",
      partitions: [0],
    };
    const h = harness({ ledger: { 0: [inFlightEntry] } });
    await h.coordinator.assign([0]);
    expect(h.fetch(0, 9, 10, 11, 12, 13, 14, 15, 16)).toEqual([
      "fresh",
      "held",
      "held",
      "held",
      "fresh",
      "fresh",
      "held",
      "fresh",
    ]);
    expect(h.coordinator.inFlight()).toBe(8);
    expect(h.fetch(0, 11)).toEqual(["duplicate"]);
    await idle();
    expect(h.writer(0).attempts).toEqual([]);
  });

  it("completes offsets of a done ledger entry as soon as they are fetched, commits them, then tombstones the entry", async () => {
    const done: LedgerEntry = { batchId: "b-done", state: "done", ranges: [["0", "1"]], attempt: 0 };
    const h = harness({ ledger: { 0: [done] } });
    await h.coordinator.assign([0]);
    const w = h.writer(0);

    expect(h.fetch(0, 0)).toEqual(["held"]);
    expect(h.coordinator.inFlight()).toBe(0);
    await eventually(() => expect(w.writes).toHaveLength(1));
    // Only the offset: the entry's last offset (1) is not committed past yet, so it stays.
    expect(w.writes[0]).toEqual({ topicMessages: [], offset: "1" });

    expect(h.fetch(0, 1)).toEqual(["held"]);
    await eventually(() => expect(w.writes).toHaveLength(2));
    expect(topicsOf(w.writes[1])).toEqual([LEDGER]);
    expect(ledgerIn(w.writes[1])).toEqual([{ key: "b-done", partition: 0, entry: null }]);
    expect(w.writes[1]?.offset).toBe("2");
    expect(h.eventsOf("committed")).toEqual([
      { type: "committed", entries: [{ topic: IN, partition: 0, offset: "1" }] },
      { type: "committed", entries: [{ topic: IN, partition: 0, offset: "2" }] },
    ]);
    expect(h.fetch(0, 2)).toEqual(["fresh"]);
    expect(h.coordinator.inFlight()).toBe(1);
  });

  it("commits a whole done entry fetched at once in one write: the offset past it and its tombstone", async () => {
    const done: LedgerEntry = { batchId: "b-done", state: "done", ranges: [["0", "2"]], attempt: 0 };
    const h = harness({ ledger: { 0: [done] } });
    await h.coordinator.assign([0]);
    expect(h.fetch(0, 0, 1, 2)).toEqual(["held", "held", "held"]);
    await h.coordinator.flushCommits();
    expect(h.writer(0).writes).toEqual([
      {
        topicMessages: [{ topic: LEDGER, messages: [{ key: "b-done", value: null, partition: 0 }] }],
        offset: "3",
      },
    ]);
  });
});

describe("coordinator: resumable batches", () => {
  it("returns the batches in flight (intent, submitted) with their partition and epoch; done ones are not resumable", async () => {
    const common = {
      batchId: "b-1",
      attempt: 1,
      repeatabilityId: "r-1",
      folderUri: "https://account.blob.core.windows.net/in/b-1",
      manifestPath: "_manifests/b-1.json",
      partitions: [0, 1],
    };
    const intent: LedgerEntry = { ...common, state: "intent", ranges: [["4", "6"]] };
    const submitted: LedgerEntry = {
      ...common,
      state: "submitted",
      ranges: [["7", "8"]],
      jobId: "job-1",
      submittedAtMs: 5000,
    };
    const done: LedgerEntry = { batchId: "b-0", state: "done", ranges: [["0", "3"]], attempt: 0 };
    const h = harness({ ledger: { 0: [done, intent], 1: [submitted] } });
    const resumable = await h.coordinator.assign([0, 1]);
    expect([...resumable].sort((a, b) => a.partition - b.partition)).toEqual([
      { partition: 0, epoch: h.epoch(0), entry: intent },
      { partition: 1, epoch: h.epoch(1), entry: submitted },
    ]);
    expect(
      h
        .eventsOf("partition_loaded")
        .map(({ partition, held, resumable }) => ({ partition, held, resumable })),
    ).toEqual(
      expect.arrayContaining([
        { partition: 0, held: 2, resumable: 1 },
        { partition: 1, held: 1, resumable: 1 },
      ]),
    );
    // The in-flight offsets are held; the done ones complete.
    expect(h.fetch(0, 3, 4, 6, 7)).toEqual(["held", "held", "held", "fresh"]);
    expect(h.fetch(1, 6, 7, 8, 9)).toEqual(["fresh", "held", "held", "fresh"]);
  });
});

describe("coordinator: recordJob", () => {
  it("writes one ledger record per owned partition of the run: that partition's offsets as ranges", async () => {
    const h = harness();
    await h.coordinator.assign([0, 1]);
    h.fetch(0, 3, 4, 5, 7);
    h.fetch(1, 10, 11);
    const b = h.batch("b-1", [
      member(0, 3),
      member(1, 10),
      member(0, 4),
      member(2, 20),
      member(0, 5),
      member(1, 11),
      member(0, 7),
    ]);
    // Partition 2 is not this member's: no writer, no record.
    const run = h.run(b, { 0: h.epoch(0), 1: h.epoch(1), 2: 999 });

    await h.coordinator.recordJob(run, { state: "intent", attempt: 1, repeatabilityId: "r-b-1-1" });
    const base = {
      batchId: "b-1",
      attempt: 1,
      repeatabilityId: "r-b-1-1",
      folderUri: b.folderUri,
      manifestPath: b.manifestPath,
      partitions: [0, 1, 2],
    };
    expect(h.writer(0).writes).toHaveLength(1);
    expect(h.writer(0).writes[0]?.offset).toBeUndefined();
    expect(topicsOf(h.writer(0).writes[0])).toEqual([LEDGER]);
    expect(ledgerIn(h.writer(0).writes[0])).toEqual([
      {
        key: "b-1",
        partition: 0,
        entry: {
          ...base,
          state: "intent",
          ranges: [
            ["3", "5"],
            ["7", "7"],
          ],
        },
      },
    ]);
    expect(ledgerIn(h.writer(1).writes[0])).toEqual([
      { key: "b-1", partition: 1, entry: { ...base, state: "intent", ranges: [["10", "11"]] } },
    ]);
    expect(h.writersOf.has(2)).toBe(false);

    await h.coordinator.recordJob(run, {
      state: "submitted",
      attempt: 1,
      repeatabilityId: "r-b-1-1",
      jobId: "job-42",
      submittedAtMs: 1234,
    });
    expect(ledgerIn(h.writer(1).writes[1])).toEqual([
      {
        key: "b-1",
        partition: 1,
        entry: { ...base, state: "submitted", ranges: [["10", "11"]], jobId: "job-42", submittedAtMs: 1234 },
      },
    ]);
    expect(h.writer(0).writes).toHaveLength(2);
    expect(
      h
        .eventsOf("ledger_recorded")
        .map((e) => `${e.partition} ${e.batchId} ${e.state}`)
        .sort(),
    ).toEqual(["0 b-1 intent", "0 b-1 submitted", "1 b-1 intent", "1 b-1 submitted"]);
  });

  it("writes nothing for a partition owned under another epoch", async () => {
    const h = harness();
    await h.coordinator.assign([0, 1]);
    const b = h.batch("b-2", [member(0, 1), member(1, 1)]);
    await h.coordinator.recordJob(h.run(b, { 0: h.epoch(0), 1: h.epoch(1) + 1000 }), {
      state: "intent",
      attempt: 2,
      repeatabilityId: "r-2",
    });
    expect(ledgerIn(h.writer(0).writes[0])).toEqual([
      {
        key: "b-2",
        partition: 0,
        entry: {
          batchId: "b-2",
          state: "intent",
          ranges: [["1", "1"]],
          attempt: 2,
          repeatabilityId: "r-2",
          folderUri: b.folderUri,
          manifestPath: b.manifestPath,
          partitions: [0, 1],
        },
      },
    ]);
    expect(h.writer(1).attempts).toEqual([]);
  });

  it("rejects with BatchDroppedError when no partition of the run is owned any more", async () => {
    const h = harness();
    await h.coordinator.assign([0, 1]);
    const b = h.batch("b-3", [member(0, 1), member(1, 1)]);
    const run = h.ownedRun(b, 0, 1);
    h.coordinator.revoke([0, 1]);
    await h.coordinator.assign([1]); // a new epoch: the run's epoch for 1 is stale
    const recording = h.coordinator.recordJob(run, { state: "intent", attempt: 1, repeatabilityId: "r-3" });
    await expect(recording).rejects.toBeInstanceOf(BatchDroppedError);
    await expect(recording).rejects.toThrow("batch b-3");
    expect(h.writersOf.get(0)?.map((w) => w.attempts)).toEqual([[]]);
    expect(h.writersOf.get(1)?.map((w) => w.attempts)).toEqual([[], []]);
    expect(h.eventsOf("ledger_recorded")).toEqual([]);
  });
});

describe("coordinator: settleBatch", () => {
  it("writes per owned partition exactly its predictions, dead letters (rows read back), ledger update and offset", async () => {
    const h = harness();
    await h.coordinator.assign([0, 1]);
    h.fetch(0, 0, 1, 2);
    h.fetch(1, 0, 1);
    const m00 = member(0, 0);
    const m01 = member(0, 1);
    const m02 = member(0, 2);
    const m10 = member(1, 0);
    const m11 = member(1, 1);
    const m20 = member(2, 0);
    // File 0: 0/0, 1/0, 0/1; file 1: 1/1, 0/2, 2/0.
    const inFile1 = [m11, m02, m20];
    const b = h.batch("b-1", [m00, m10, m01, m11, m02, m20], (m) => (inFile1.includes(m) ? 1 : 0));
    await h.coordinator.settleBatch(h.ownedRun(b, 0, 1), scored(b, "job-1", [m01]));

    const [w0] = h.writer(0).writes;
    expect(h.writer(0).writes).toHaveLength(1);
    expect(topicsOf(w0)).toEqual([RESULTS, DLQ, LEDGER]);
    expect(predictionsIn(w0)).toEqual([
      { key: "S0_0", record: recordFor(m00, "b-1", "job-1", "b-1-0.json") },
      { key: "S0_2", record: recordFor(m02, "b-1", "job-1", "b-1-1.json") },
    ]);
    expect(lettersIn(w0)).toEqual([
      {
        key: "S0_1",
        value: JSON.stringify(rowOf(m01)),
        headers: {
          reason: "missing_prediction",
          detail: "job job-1 wrote no prediction for this event",
          partition: "0",
          offset: "1",
          jobId: "job-1",
          batchId: "b-1",
        },
      },
    ]);
    // The offset passes all of the batch's offsets of partition 0: its ledger record is removed.
    expect(ledgerIn(w0)).toEqual([{ key: "b-1", partition: 0, entry: null }]);
    expect(w0?.offset).toBe("3");

    const [w1] = h.writer(1).writes;
    expect(h.writer(1).writes).toHaveLength(1);
    expect(topicsOf(w1)).toEqual([RESULTS, LEDGER]);
    expect(predictionsIn(w1)).toEqual([
      { key: "S1_0", record: recordFor(m10, "b-1", "job-1", "b-1-0.json") },
      { key: "S1_1", record: recordFor(m11, "b-1", "job-1", "b-1-1.json") },
    ]);
    expect(ledgerIn(w1)).toEqual([{ key: "b-1", partition: 1, entry: null }]);
    expect(w1?.offset).toBe("2");

    expect(h.writersOf.has(2)).toBe(false);
    expect(h.rowsRead).toEqual(["in/b-1/b-1-0.json"]); // only the file holding the missing event
    expect(h.coordinator.inFlight()).toBe(0);
    const published = h.eventsOf("outcomes_published").sort((a, b) => a.partition - b.partition);
    expect(published).toEqual([
      {
        type: "outcomes_published",
        partition: 0,
        batchId: "b-1",
        jobId: "job-1",
        predictions: 2,
        deadLetters: { missing_prediction: 1 },
        sourceTimestampsMs: [m00.source.timestampMs, m02.source.timestampMs],
        acknowledgedAtMs: expect.any(Number),
      },
      {
        type: "outcomes_published",
        partition: 1,
        batchId: "b-1",
        jobId: "job-1",
        predictions: 2,
        deadLetters: {},
        sourceTimestampsMs: [m10.source.timestampMs, m11.source.timestampMs],
        acknowledgedAtMs: expect.any(Number),
      },
    ]);
  });

  it("keeps a done record while the offset has not passed the batch, and tombstones it in the write that commits past it", async () => {
    const h = harness();
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1, 2);
    const b1 = h.batch("b-1", [member(0, 0), member(0, 2)]);
    const b2 = h.batch("b-2", [member(0, 1)]);
    const w = h.writer(0);

    await h.coordinator.settleBatch(h.ownedRun(b1, 0), scored(b1, "job-1"));
    expect(w.writes[0]?.offset).toBe("1"); // 0 is finished, 1 is not
    expect(ledgerIn(w.writes[0])).toEqual([
      {
        key: "b-1",
        partition: 0,
        entry: {
          batchId: "b-1",
          state: "done",
          ranges: [
            ["0", "0"],
            ["2", "2"],
          ],
          attempt: 0,
        },
      },
    ]);

    await h.coordinator.settleBatch(h.ownedRun(b2, 0), scored(b2, "job-2"));
    expect(w.writes[1]?.offset).toBe("3");
    expect(predictionsIn(w.writes[1]).map((p) => p.key)).toEqual(["S0_1"]);
    expect(ledgerIn(w.writes[1])).toEqual([
      { key: "b-2", partition: 0, entry: null },
      { key: "b-1", partition: 0, entry: null },
    ]);
  });

  it("out of order: a later batch finishing first writes no offset; the earlier one commits past both and tombstones it", async () => {
    const h = harness();
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1, 2, 3);
    const b1 = h.batch("b-1", [member(0, 0), member(0, 1)]);
    const b2 = h.batch("b-2", [member(0, 2), member(0, 3)]);
    const w = h.writer(0);

    await h.coordinator.settleBatch(h.ownedRun(b2, 0), scored(b2, "job-2"));
    expect(w.writes).toHaveLength(1);
    expect(w.writes[0]?.offset).toBeUndefined();
    expect(predictionsIn(w.writes[0]).map((p) => p.key)).toEqual(["S0_2", "S0_3"]);
    expect(ledgerIn(w.writes[0])).toEqual([
      {
        key: "b-2",
        partition: 0,
        entry: { batchId: "b-2", state: "done", ranges: [["2", "3"]], attempt: 0 },
      },
    ]);
    expect(h.eventsOf("committed")).toEqual([]);

    await h.coordinator.settleBatch(h.ownedRun(b1, 0), scored(b1, "job-1"));
    expect(w.writes).toHaveLength(2);
    expect(w.writes[1]?.offset).toBe("4");
    expect(predictionsIn(w.writes[1]).map((p) => p.key)).toEqual(["S0_0", "S0_1"]);
    expect(ledgerIn(w.writes[1])).toEqual([
      { key: "b-1", partition: 0, entry: null },
      { key: "b-2", partition: 0, entry: null },
    ]);
    expect(h.eventsOf("committed")).toEqual([
      { type: "committed", entries: [{ topic: IN, partition: 0, offset: "4" }] },
    ]);
  });

  it("tombstones a done record once: later writes do not carry its tombstone again", async () => {
    const h = harness();
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1, 2, 3, 4, 5);
    const b1 = h.batch("b-1", [member(0, 0), member(0, 1)]);
    const b2 = h.batch("b-2", [member(0, 2), member(0, 3)]);
    const b3 = h.batch("b-3", [member(0, 4), member(0, 5)]);
    const w = h.writer(0);
    await h.coordinator.settleBatch(h.ownedRun(b2, 0), scored(b2, "job-2"));
    await h.coordinator.settleBatch(h.ownedRun(b1, 0), scored(b1, "job-1"));
    expect(ledgerIn(w.writes[1]).map((r) => [r.key, r.entry])).toEqual([
      ["b-1", null],
      ["b-2", null],
    ]);

    await h.coordinator.settleBatch(h.ownedRun(b3, 0), scored(b3, "job-3"));
    expect(w.writes[2]?.offset).toBe("6");
    // b-2 was removed from the ledger by the previous write: only b-3's own tombstone belongs here.
    expect(ledgerIn(w.writes[2]).map((r) => [r.key, r.entry])).toEqual([["b-3", null]]);
  });

  it("a resumed batch settled before all its offsets were fetched keeps its done record until the late ones are committed", async () => {
    const submitted: LedgerEntry = {
      batchId: "b-r",
      state: "submitted",
      ranges: [["0", "2"]],
      attempt: 1,
      repeatabilityId: "r-1",
      jobId: "job-r",
      submittedAtMs: 100,
      folderUri: "https://account.blob.core.windows.net/in/b-r",
      manifestPath: "_manifests/b-r.json",
      partitions: [0],
    };
    const h = harness({ ledger: { 0: [submitted] } });
    const [resumable] = await h.coordinator.assign([0]);
    expect(resumable?.entry).toEqual(submitted);
    expect(h.fetch(0, 0, 1)).toEqual(["held", "held"]); // 2 is not fetched yet
    const b = h.batch("b-r", [member(0, 0), member(0, 1), member(0, 2)]);
    await h.coordinator.settleBatch(h.run(b, { 0: resumable?.epoch ?? -1 }), scored(b, "job-r"));
    const w = h.writer(0);
    expect(predictionsIn(w.writes[0]).map((p) => p.key)).toEqual(["S0_0", "S0_1", "S0_2"]);
    // Committed up to 2, not past it: the ledger must still say b-r is done, for whoever fetches 2.
    expect(w.writes[0]?.offset).toBe("2");
    expect(ledgerIn(w.writes[0])).toEqual([
      {
        key: "b-r",
        partition: 0,
        entry: { batchId: "b-r", state: "done", ranges: [["0", "2"]], attempt: 0 },
      },
    ]);

    expect(h.fetch(0, 2)).toEqual(["held"]); // completes at once: its outcome is published
    await eventually(() => expect(w.writes).toHaveLength(2));
    expect(w.writes[1]).toEqual({
      topicMessages: [{ topic: LEDGER, messages: [{ key: "b-r", value: null, partition: 0 }] }],
      offset: "3",
    });
  });

  it("a failed batch: job_failed dead letters for the members of the partitions it still owns, nothing for the others", async () => {
    const h = harness();
    await h.coordinator.assign([0, 1]);
    h.fetch(0, 0, 1);
    h.fetch(1, 0);
    const b = h.batch("b-f", [member(0, 0), member(1, 0), member(0, 1), member(2, 0)]);
    // Partition 1 is owned, but under another epoch than the run's; partition 2 is not owned.
    const run = h.run(b, { 0: h.epoch(0), 1: h.epoch(1) + 1000 });
    await h.coordinator.settleBatch(run, {
      kind: "failed",
      batch: b,
      jobId: "job-9",
      detail: "job job-9 ended Failed",
    });
    const [w0] = h.writer(0).writes;
    expect(h.writer(0).writes).toHaveLength(1);
    expect(topicsOf(w0)).toEqual([DLQ, LEDGER]);
    expect(lettersIn(w0)).toEqual(
      [member(0, 0), member(0, 1)].map((m) => ({
        key: m.storeId,
        value: JSON.stringify(rowOf(m)),
        headers: {
          reason: "job_failed",
          detail: "job job-9 ended Failed",
          partition: "0",
          offset: m.source.offset,
          jobId: "job-9",
          batchId: "b-f",
        },
      })),
    );
    expect(ledgerIn(w0)).toEqual([{ key: "b-f", partition: 0, entry: null }]);
    expect(w0?.offset).toBe("2");
    expect(h.writer(1).attempts).toEqual([]);
    // Only partition 0's dead letters are published: 1 is not the run's any more, 2 never was.
    expect(h.lettersPassed.flat().map((l) => `${l.source.partition}/${l.source.offset}`)).toEqual([
      "0/0",
      "0/1",
    ]);
    expect(h.eventsOf("outcomes_published")).toEqual([
      {
        type: "outcomes_published",
        partition: 0,
        batchId: "b-f",
        jobId: "job-9",
        predictions: 0,
        deadLetters: { job_failed: 2 },
        sourceTimestampsMs: [],
        acknowledgedAtMs: expect.any(Number),
      },
    ]);
    expect(h.coordinator.inFlight()).toBe(1); // partition 1's event is not settled by this run
  });

  it("never interleaves the writes of a partition: the second starts after the first ended, its offset reflects both", async () => {
    const slow = deferred();
    const h = harness({
      configureWriter: (w) => {
        w.gates.push(slow.promise);
      },
    });
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1, 2, 3);
    const b1 = h.batch("b-1", [member(0, 0), member(0, 1)]);
    const b2 = h.batch("b-2", [member(0, 2), member(0, 3)]);
    const w = h.writer(0);
    const first = h.coordinator.settleBatch(h.ownedRun(b1, 0), scored(b1, "job-1"));
    const second = h.coordinator.settleBatch(h.ownedRun(b2, 0), scored(b2, "job-2"));
    await eventually(() => expect(w.attempts).toHaveLength(1));
    await idle();
    expect(w.attempts).toHaveLength(1); // the second waits for the first
    slow.resolve();
    await Promise.all([first, second]);
    expect(w.maxActive).toBe(1);
    expect(h.log.filter((l) => l.startsWith("write"))).toEqual([
      "write start 0",
      "write end 0",
      "write start 0",
      "write end 0",
    ]);
    expect(w.writes.map((x) => x.offset)).toEqual(["2", "4"]);
    expect(w.writes.map((x) => predictionsIn(x).map((p) => p.key))).toEqual([
      ["S0_0", "S0_1"],
      ["S0_2", "S0_3"],
    ]);
  });

  it("retries a refused write as the same write (messages and offset), reports each failure, rebuilds the producer", async () => {
    const h = harness({
      rebuildAfterFailures: 2,
      configureWriter: (w) => {
        w.failures.push(
          new Error("not enough replicas"),
          new Error("not enough replicas"),
          new Error("timeout"),
        );
      },
    });
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1);
    const b = h.batch("b-1", [member(0, 0), member(0, 1)]);
    await h.coordinator.settleBatch(h.ownedRun(b, 0), scored(b, "job-1"));
    const w = h.writer(0);
    expect(w.attempts).toHaveLength(4);
    for (const attempt of w.attempts) expect(attempt).toBe(w.attempts[0]);
    expect(w.writes).toEqual([w.attempts[0]]);
    expect(w.writes[0]?.offset).toBe("2");
    expect(predictionsIn(w.writes[0]).map((p) => p.key)).toEqual(["S0_0", "S0_1"]);
    expect(h.eventsOf("write_failed")).toEqual([
      {
        type: "write_failed",
        partition: 0,
        what: "outcomes of batch b-1",
        attempt: 1,
        error: new Error("not enough replicas"),
      },
      {
        type: "write_failed",
        partition: 0,
        what: "outcomes of batch b-1",
        attempt: 2,
        error: new Error("not enough replicas"),
      },
      {
        type: "write_failed",
        partition: 0,
        what: "outcomes of batch b-1",
        attempt: 3,
        error: new Error("timeout"),
      },
    ]);
    expect(w.rebuilds).toBe(1); // after the 2nd failure in a row; the 3rd is not a multiple of 2
    expect(h.eventsOf("outcomes_published")).toHaveLength(1);
  });

  it("a fenced write drops the partition at once: not retried, its offsets forgotten, nothing more written for it", async () => {
    const h = harness({
      configureWriter: (w) => {
        if (w.partition === 0) w.failures.push(fencedError());
      },
    });
    await h.coordinator.assign([0, 1]);
    h.fetch(0, 0, 1, 2);
    h.fetch(1, 0);
    const b = h.batch("b-1", [member(0, 0), member(0, 1), member(1, 0)]);
    const epoch0 = h.epoch(0);
    await h.coordinator.settleBatch(h.ownedRun(b, 0, 1), scored(b, "job-1"));
    const w0 = h.writer(0);
    expect(w0.attempts).toHaveLength(1);
    expect(w0.writes).toEqual([]);
    expect(h.eventsOf("write_failed")).toEqual([]);
    expect(h.eventsOf("partition_fenced")).toEqual([
      { type: "partition_fenced", partition: 0, error: fencedError() },
    ]);
    expect(h.coordinator.epochOf(0)).toBeUndefined();
    expect(h.tracker.inFlightFor(IN, 0)).toBe(0);
    expect(h.coordinator.inFlight()).toBe(0);
    expect(h.coordinator.track(src(0, 3))).toBe("not_ready");
    await eventually(() => expect(w0.closes).toBe(1));
    // The other partition of the batch is published as usual.
    expect(h.writer(1).writes.map((x) => x.offset)).toEqual(["1"]);
    expect(h.eventsOf("outcomes_published").map((e) => e.partition)).toEqual([1]);

    // Later work for the fenced partition writes nothing.
    const later = h.batch("b-2", [member(0, 2)]);
    await h.coordinator.settleBatch(h.run(later, { 0: epoch0 }), scored(later, "job-2"));
    await h.coordinator.settleInvalid([invalidLetter(0, 3, "malformed_json")]);
    await expect(
      h.coordinator.recordJob(h.run(later, { 0: epoch0 }), {
        state: "intent",
        attempt: 1,
        repeatabilityId: "r",
      }),
    ).rejects.toBeInstanceOf(BatchDroppedError);
    await h.coordinator.flushCommits();
    expect(w0.attempts).toHaveLength(1);
  });
});

describe("coordinator: revoke", () => {
  it("drops the partition's epoch: later settles write nothing for it; its writer closes once its queue drained", async () => {
    const slow = deferred();
    const h = harness({
      configureWriter: (w) => {
        if (w.partition === 0) w.gates.push(slow.promise);
      },
    });
    await h.coordinator.assign([0, 1]);
    h.fetch(0, 0, 1);
    h.fetch(1, 0);
    const w0 = h.writer(0);
    const a = h.batch("b-a", [member(0, 0)]);
    const writing = h.coordinator.settleBatch(h.ownedRun(a, 0), scored(a, "job-a"));
    await eventually(() => expect(w0.attempts).toHaveLength(1));
    const b = h.batch("b-b", [member(0, 1), member(1, 0)]);
    const runB = h.ownedRun(b, 0, 1);

    h.coordinator.revoke([0]);
    expect(h.coordinator.epochOf(0)).toBeUndefined();
    expect(h.coordinator.track(src(0, 2))).toBe("not_ready");
    expect(h.tracker.inFlightFor(IN, 0)).toBe(0);
    await idle();
    expect(w0.closes).toBe(0); // its write is still running

    await h.coordinator.settleBatch(runB, scored(b, "job-b"));
    expect(h.writer(1).writes.map((x) => predictionsIn(x).map((p) => p.key))).toEqual([["S1_0"]]);
    slow.resolve();
    await writing;
    await eventually(() => expect(w0.closes).toBe(1));
    expect(w0.attempts).toHaveLength(1); // b-b wrote nothing for partition 0
    expect(h.log.indexOf("close 0")).toBeGreaterThan(h.log.indexOf("write end 0"));
  });
});

describe("coordinator: settleInvalid", () => {
  it("commits past the dead letters in the same write: no ledger record", async () => {
    const h = harness();
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1);
    await h.coordinator.settleInvalid([
      invalidLetter(0, 0, "malformed_json"),
      invalidLetter(0, 1, "too_large"),
    ]);
    const w = h.writer(0);
    expect(w.writes).toHaveLength(1);
    expect(topicsOf(w.writes[0])).toEqual([DLQ]);
    expect(lettersIn(w.writes[0]).map((l) => [l.key, l.value, l.headers?.reason])).toEqual([
      ["key-0", "raw-0", "malformed_json"],
      ["key-1", "raw-1", "too_large"],
    ]);
    expect(w.writes[0]?.offset).toBe("2");
    expect(h.eventsOf("outcomes_published")).toEqual([
      {
        type: "outcomes_published",
        partition: 0,
        predictions: 0,
        deadLetters: { malformed_json: 1, too_large: 1 },
        sourceTimestampsMs: [],
        acknowledgedAtMs: expect.any(Number),
      },
    ]);
  });

  it("keeps a done record invalid-<p>-<first offset> when the offset does not pass them, removed once committed past", async () => {
    const h = harness();
    await h.coordinator.assign([4]);
    h.fetch(4, 2, 3, 4);
    const w = h.writer(4);
    await h.coordinator.settleInvalid([
      invalidLetter(4, 3, "not_an_object"),
      invalidLetter(4, 4, "empty_message"),
    ]);
    expect(w.writes[0]?.offset).toBeUndefined(); // 2 is still in a batch
    expect(topicsOf(w.writes[0])).toEqual([DLQ, LEDGER]);
    expect(ledgerIn(w.writes[0])).toEqual([
      {
        key: "invalid-4-3",
        partition: 4,
        entry: { batchId: "invalid-4-3", state: "done", ranges: [["3", "4"]], attempt: 0 },
      },
    ]);

    const b = h.batch("b-1", [member(4, 2)]);
    await h.coordinator.settleBatch(h.ownedRun(b, 4), scored(b, "job-1"));
    expect(w.writes[1]?.offset).toBe("5");
    expect(ledgerIn(w.writes[1])).toEqual([
      { key: "b-1", partition: 4, entry: null },
      { key: "invalid-4-3", partition: 4, entry: null },
    ]);
  });

  it("writes the offset when it moves, and the record too when the offset stops short of the last letter", async () => {
    const h = harness();
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1, 2, 3);
    await h.coordinator.settleInvalid([
      invalidLetter(0, 0, "invalid_store_id"),
      invalidLetter(0, 3, "invalid_features"),
    ]);
    const [write] = h.writer(0).writes;
    expect(write?.offset).toBe("1"); // 1 and 2 are still in flight
    expect(ledgerIn(write)).toEqual([
      {
        key: "invalid-0-0",
        partition: 0,
        entry: {
          batchId: "invalid-0-0",
          state: "done",
          ranges: [
            ["0", "0"],
            ["3", "3"],
          ],
          attempt: 0,
        },
      },
    ]);
  });
});

describe("coordinator: stop", () => {
  it("ends pending retries: the settle resolves without writing, and no write is tried after", async () => {
    const h = harness({
      configureWriter: (w) => {
        w.failAlways = new Error("broker down");
      },
    });
    await h.coordinator.assign([0]);
    h.fetch(0, 0, 1);
    const b = h.batch("b-1", [member(0, 0), member(0, 1)]);
    const settling = h.coordinator.settleBatch(h.ownedRun(b, 0), scored(b, "job-1"));
    const w = h.writer(0);
    await eventually(() => expect(w.attempts.length).toBeGreaterThanOrEqual(2));
    h.coordinator.stop();
    await expect(settling).resolves.toBeUndefined();
    const tried = w.attempts.length;
    await idle();
    expect(w.attempts).toHaveLength(tried);
    expect(w.writes).toEqual([]);
    expect(h.eventsOf("outcomes_published")).toEqual([]);
    expect(h.eventsOf("committed")).toEqual([]);

    // Nothing new is tried either.
    await h.coordinator.settleInvalid([invalidLetter(0, 2, "malformed_json")]);
    await h.coordinator.flushCommits();
    expect(w.attempts).toHaveLength(tried);
  });
});

describe("coordinator: taking a partition over", () => {
  it("fences, then reads the ledger and the committed offset, then seeks there; earlier offsets are not taken", async () => {
    const h = harness({ committed: { 0: "5" } });
    await h.coordinator.assign([0]);
    const fenced = h.log.indexOf("init 0");
    expect(fenced).toBeGreaterThanOrEqual(0);
    expect(h.log.indexOf("read committed 0")).toBeGreaterThan(fenced);
    expect(h.log.indexOf("read ledger 0")).toBeGreaterThan(fenced);
    expect(h.seeks).toEqual([{ partition: 0, offset: "5" }]);
    // A fetch started before the seek delivers offsets the previous owner already committed: skipped.
    expect(h.coordinator.track({ topic: IN, partition: 0, offset: "4", timestampMs: 1 })).toBe("duplicate");
    expect(h.coordinator.track({ topic: IN, partition: 0, offset: "5", timestampMs: 1 })).toBe("fresh");
  });

  it("does not seek a partition the group never committed", async () => {
    const h = harness();
    await h.coordinator.assign([1]);
    expect(h.seeks).toEqual([]);
    expect(h.coordinator.track({ topic: IN, partition: 1, offset: "0", timestampMs: 1 })).toBe("fresh");
  });

  it("retries a failed ledger read instead of leaving the partition dead", async () => {
    let reads = 0;
    const h = harness({
      readLedger: async () => {
        reads++;
        if (reads < 3) throw new Error("leader moved");
        return [];
      },
    });
    await h.coordinator.assign([0]);
    expect(reads).toBe(3);
    expect(h.coordinator.epochOf(0)).toBeDefined();
    expect(h.coordinator.unusableSinceMs()).toBeUndefined();
  });

  it("reports a fenced partition that is still assigned as unusable, for /readyz", async () => {
    const h = harness();
    await h.coordinator.assign([0]);
    expect(h.coordinator.unusableSinceMs()).toBeUndefined();
    h.writer(0).failures.push(fencedError());
    h.fetch(0, 0);
    const b = h.batch("b-f", [member(0, 0)]);
    await h.coordinator.settleBatch(h.ownedRun(b, 0), scored(b, "job-f"));
    expect(h.coordinator.unusableSinceMs()).toEqual(expect.any(Number));
    // Revoked by the group: no longer this member's concern.
    h.coordinator.revoke([0]);
    expect(h.coordinator.unusableSinceMs()).toBeUndefined();
  });
});
