/**
 * Property-based tests (fast-check) of the two parsers that read untrusted input:
 *
 * 1. the event decoder (src/consumer/decode.ts) with the real validator (src/consumer/validate.ts) and a fake
 *    schema registry that decodes real avsc types by schema id, for JSON and Confluent wire-format Avro;
 * 2. the predictions.csv parser (src/results/parsePredictions.ts), for arbitrary text and bytes in arbitrary
 *    chunks, and for valid files of every shape it supports.
 *
 * Every property runs with a fixed seed, so a failure replays identically; fast-check prints the shrunk
 * counterexample and the seed/path to replay it.
 */
import { createRequire } from "node:module";
import { Readable } from "node:stream";
import { Worker } from "node:worker_threads";
import avro from "avsc";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { createEventDecoder, RegistryUnavailableError } from "../../src/consumer/decode.ts";
import {
  createEventValidator,
  type EventValidator,
  type InvalidReason,
  type Validation,
} from "../../src/consumer/validate.ts";
import {
  type ParsedPredictionLine,
  type ParsePredictionsOptions,
  parsePredictions,
} from "../../src/results/parsePredictions.ts";
import { FEATURE_EVENT_SCHEMA, ResponseError, wire } from "../helpers/registryWire.ts";

const SEED = 0x5eed_2024;
/** Generous per-test timeout: the properties themselves aim at well under a second each. */
const TEST_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));

/** Strings of every kind fast-check makes: ASCII, graphemes, any code point, any code unit (lone surrogates). */
function anyString(maxLength: number, minLength = 0): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ minLength, maxLength }),
    fc.string({ unit: "grapheme", minLength, maxLength }),
    fc.string({ unit: "binary", minLength, maxLength }),
    fc.string({ unit: "binary-ascii", minLength, maxLength }),
    fc.string({ unit: fc.oneof(codeUnit, loneSurrogate), minLength, maxLength }),
  );
}

/** Cuts a string or buffer at the given points (taken modulo its length + 1): the same content, in chunks. */
function cutAt<T extends string | Buffer>(whole: T, points: readonly number[]): T[] {
  const cuts = [...new Set(points.map((p) => p % (whole.length + 1)))].sort((a, b) => a - b);
  const out: T[] = [];
  let start = 0;
  for (const cut of cuts) {
    out.push(whole.slice(start, cut) as T);
    start = cut;
  }
  out.push(whole.slice(start) as T);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// 1. Decoding and validation
// ---------------------------------------------------------------------------------------------------------

type AvroSchema = Parameters<typeof avro.Type.forSchema>[0];

const FEATURE_EVENT_ID = 7;
/** The schemas the fake registry knows, by id: the real event schema, variants of it, and wrong shapes. */
const SCHEMAS: ReadonlyArray<readonly [number, AvroSchema]> = [
  [FEATURE_EVENT_ID, FEATURE_EVENT_SCHEMA],
  [
    8,
    {
      type: "record",
      name: "FloatFeatureEvent",
      fields: [
        { name: "store_id", type: "string" },
        { name: "features", type: { type: "array", items: "float" } },
      ],
    },
  ],
  [
    9,
    {
      type: "record",
      name: "NullableFeatureEvent",
      fields: [
        { name: "store_id", type: ["null", "string"] },
        { name: "features", type: ["null", { type: "array", items: ["null", "double"] }] },
      ],
    },
  ],
  [
    10,
    {
      type: "record",
      name: "WrongTypes",
      fields: [
        { name: "store_id", type: "int" },
        { name: "features", type: { type: "map", values: "double" } },
      ],
    },
  ],
  [11, "string"],
  [12, { type: "array", items: "double" }],
  [
    13,
    {
      type: "record",
      name: "FeatureEventWithExtras",
      fields: [
        { name: "payload", type: "bytes" },
        { name: "store_id", type: "string" },
        { name: "features", type: { type: "array", items: "double" } },
        { name: "ts", type: "long" },
      ],
    },
  ],
  [
    14,
    {
      type: "record",
      name: "NestedFeatures",
      fields: [
        { name: "store_id", type: "bytes" },
        { name: "features", type: { type: "array", items: { type: "array", items: "double" } } },
      ],
    },
  ],
];
const TYPES = new Map(SCHEMAS.map(([id, schema]) => [id, avro.Type.forSchema(schema)]));
const KNOWN_IDS = SCHEMAS.map(([id]) => id);

function avroBody(schemaId: number, value: unknown): Buffer {
  const type = TYPES.get(schemaId);
  if (type === undefined) throw new Error(`no schema ${schemaId}`);
  return type.toBuffer(value);
}

const AVSC_PATH = createRequire(import.meta.url).resolve("avsc");
/**
 * The worker of the fake registry: decodes with the real avsc types, as the registry client does once it has
 * the schema. Off the test's thread so that a decode that never ends can be observed instead of freezing the run.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const avro = require(workerData.avscPath);
const types = new Map(workerData.schemas.map(([id, schema]) => [id, avro.Type.forSchema(schema)]));
parentPort.on("message", ({ seq, id, body }) => {
  let reply;
  try {
    reply = { seq, value: types.get(id).fromBuffer(Buffer.from(body.buffer, body.byteOffset, body.byteLength)) };
  } catch (error) {
    reply = { seq, error: error instanceof Error ? error.message : String(error) };
  }
  try {
    parentPort.postMessage(reply);
  } catch (error) {
    parentPort.postMessage({ seq, error: "decoded value could not be cloned" });
  }
});
parentPort.postMessage({ ready: true });
`;

type WorkerReply = { seq: number; value: unknown } | { seq: number; error: string };

/**
 * A healthy schema registry: knows SCHEMAS (404 for any other id) and decodes with real avsc, in a worker.
 * A decode still running after `budgetMs`, or one that exhausts the worker's heap, is recorded in `blocked`
 * (the real client would have held the consumer's event loop that long) and rejected with a plain Error, so
 * the decoder's answer to it can still be checked. Counts the decodes it is asked for in `calls`. Like the
 * real client, it also gives the writer's schema of an id (getSchema: the avsc Type, or a 404), counted in
 * `schemaCalls`.
 */
class OffThreadRegistry {
  /** How many decodes were asked for. */
  calls = 0;
  /** How many schemas were asked for. */
  schemaCalls = 0;
  readonly blocked: Buffer[] = [];
  private worker: Promise<Worker> | undefined;
  private seq = 0;
  private readonly budgetMs: number;

  constructor(budgetMs: number) {
    this.budgetMs = budgetMs;
  }

  private spawn(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { avscPath: AVSC_PATH, schemas: SCHEMAS },
        resourceLimits: { maxOldGenerationSizeMb: 256 },
      });
      // Out-of-memory and the like: reported to the decode in flight; never an unhandled 'error' event.
      worker.on("error", () => {});
      worker.once("message", () => resolve(worker));
      worker.once("error", reject);
    });
  }

  async getSchema(id: number): Promise<unknown> {
    this.schemaCalls += 1;
    const type = TYPES.get(id);
    if (type === undefined) throw new ResponseError(404, `Schema ${id} not found`);
    return type;
  }

  async decode(buffer: Buffer): Promise<unknown> {
    this.calls += 1;
    const id = buffer.readInt32BE(1);
    if (!TYPES.has(id)) throw new ResponseError(404, `Schema ${id} not found`);
    this.worker ??= this.spawn();
    const worker = await this.worker;
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        worker.off("message", onMessage);
        worker.off("error", onError);
      };
      const giveUp = (why: string) => {
        done();
        this.blocked.push(buffer);
        this.worker = undefined;
        void worker.terminate();
        reject(new Error(why));
      };
      const onMessage = (reply: WorkerReply) => {
        if (reply.seq !== seq) return;
        done();
        if ("error" in reply) reject(new Error(reply.error));
        else resolve(reply.value);
      };
      const onError = (error: Error) => giveUp(`avsc worker died: ${error.message}`);
      const timer = setTimeout(() => giveUp(`avsc still decoding after ${this.budgetMs} ms`), this.budgetMs);
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.postMessage({ seq, id, body: buffer.subarray(5) });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await (await worker).terminate();
  }
}

/** Far above any legitimate decode here (the largest body is 1 MiB, decoded in a few ms). */
const DECODE_BUDGET_MS = 250;
const registry = new OffThreadRegistry(DECODE_BUDGET_MS);
afterAll(() => registry.close());

interface DecoderConfig {
  readonly featureCount: number;
  readonly maxStoreIdLength: number;
  readonly maxMessageBytes: number;
}

const configArb: fc.Arbitrary<DecoderConfig> = fc.record({
  featureCount: fc.oneof(fc.constant(13), fc.integer({ min: 1, max: 20 })),
  maxStoreIdLength: fc.oneof(fc.constant(64), fc.integer({ min: 1, max: 100 })),
  maxMessageBytes: fc.oneof(fc.constant(65_536), fc.constant(1 << 20), fc.integer({ min: 1, max: 400 })),
});

function decoderFor(
  config: DecoderConfig,
  schemaRegistry: { decode(buffer: Buffer): Promise<unknown> } = registry,
  registryTimeoutMs = 60_000,
) {
  const validator = createEventValidator(config);
  const decoder = createEventDecoder({
    schemaRegistry: schemaRegistry as Parameters<typeof createEventDecoder>[0]["schemaRegistry"],
    validator,
    maxMessageBytes: config.maxMessageBytes,
    registryTimeoutMs,
  });
  return { validator, decoder };
}

/** Every InvalidReason, checked by the compiler both ways: a missing or an extra key does not compile. */
const ALL_REASONS: Record<InvalidReason, true> = {
  empty_message: true,
  too_large: true,
  malformed_json: true,
  not_an_object: true,
  invalid_store_id: true,
  invalid_features: true,
  wrong_feature_count: true,
  non_finite_feature: true,
  schema_decode_failed: true,
};
const REASONS: ReadonlySet<string> = new Set(Object.keys(ALL_REASONS));
/** The decoder cuts its own details to 300 characters; the validator's are shorter. */
const MAX_DETAIL_LENGTH = 300;
/** A string at least this long in the payload must never appear in a detail. */
const SECRET_LENGTH = 40;
const CONTROL = /[\p{Cc}\u2028\u2029]/u;
const WHITESPACE = /\s/u;

/** Every string (keys included) of at least SECRET_LENGTH characters inside a value. */
function secretsOf(value: unknown, out: string[] = [], depth = 0): string[] {
  if (typeof value === "string") {
    if (value.length >= SECRET_LENGTH) out.push(value);
  } else if (value !== null && typeof value === "object" && depth < 50) {
    for (const [key, inner] of Object.entries(value)) {
      if (key.length >= SECRET_LENGTH) out.push(key);
      secretsOf(inner, out, depth + 1);
    }
  }
  return out;
}

/**
 * The result is exactly one of the two Validation shapes: an ok row that the validator accepts again as is
 * (store_id trimmed, non-empty, within the bound, no whitespace or control character; features exactly
 * featureCount finite numbers), or a known reason with a short, non-empty detail that echoes no secret.
 */
function expectWellFormed(
  result: Validation,
  config: DecoderConfig,
  validator: EventValidator,
  secrets: readonly string[],
): void {
  if (result.ok) {
    expect(Object.keys(result).sort()).toEqual(["ok", "row"]);
    expect(Object.keys(result.row).sort()).toEqual(["features", "store_id"]);
    const { store_id: storeId, features } = result.row;
    expect(typeof storeId).toBe("string");
    expect(storeId.length).toBeGreaterThan(0);
    expect(storeId.length).toBeLessThanOrEqual(config.maxStoreIdLength);
    expect(storeId.trim()).toBe(storeId);
    expect(WHITESPACE.test(storeId)).toBe(false);
    expect(CONTROL.test(storeId)).toBe(false);
    expect(Array.isArray(features)).toBe(true);
    expect(features).toHaveLength(config.featureCount);
    for (const feature of features) {
      expect(typeof feature).toBe("number");
      expect(Number.isFinite(feature)).toBe(true);
    }
    expect(validator.validateObject(result.row)).toEqual(result);
  } else {
    expect(result.ok).toBe(false);
    expect(Object.keys(result).sort()).toEqual(["detail", "ok", "reason"]);
    expect(REASONS.has(result.reason)).toBe(true);
    expect(typeof result.detail).toBe("string");
    expect(result.detail.length).toBeGreaterThan(0);
    expect(result.detail.length).toBeLessThanOrEqual(MAX_DETAIL_LENGTH);
    for (const secret of secrets) expect(result.detail.includes(secret)).toBe(false);
  }
}

/** A message value to decode, with the long strings it carries (which no detail may echo). */
interface Payload {
  readonly value: Buffer | null;
  readonly secrets: readonly string[];
}

/** Text as UTF-8; its secrets are the text itself and, when it is JSON, every long string inside it. */
function textPayload(text: string, carried: readonly string[] = []): Payload {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return {
    value: Buffer.from(text, "utf8"),
    secrets: [...carried, ...secretsOf(text), ...secretsOf(parsed)],
  };
}

/** Bytes that are not UTF-8: stray continuation bytes, overlong forms, encoded surrogates, truncated sequences. */
const INVALID_UTF8 = [
  [0x80],
  [0xbf],
  [0xc0, 0xaf],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf0, 0x82, 0x82, 0xac],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xfe],
  [0xff],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
].map((bytes) => Buffer.from(bytes));

/** Values a feature or store_id must not be: everything JSON has, and more. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything(),
  fc.jsonValue(),
  anyString(60),
  fc.double(),
  fc.constantFrom("NaN", "Infinity", "-Infinity", "-0", "1e308", "", " ", null, true, [], {}),
);

/** JSON number literals, some of which JSON.parse turns into -0 or ±Infinity, and bare words JSON refuses. */
const numberLiteral = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? "-0" : String(d))),
  fc.constantFrom("-0", "1e308", "-1e308", "1e400", "-1e400", "5e-324", "1E+2", "0.0", "-0.0e0"),
  fc.constantFrom('"NaN"', '"Infinity"', '"-Infinity"', '"1"', "null", "true", "[]", "{}", "[1]"),
  fc.constantFrom("NaN", "Infinity", "-Infinity", "+1", "01", ".5", "1.", "0x10"),
);

/** A store_id candidate: real-looking, padded, empty, long, with whitespace or control characters inside. */
const storeIdCandidate: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[A-Z]{2}_[0-9]{1,3}$/),
  anyString(80),
  fc
    .tuple(
      fc.constantFrom("", " ", "\t", "\n", "\u00a0", "\u2028", "\ufeff"),
      fc.stringMatching(/^\w{1,70}$/),
    )
    .map(([pad, core]) => `${pad}${core}${pad}`),
  fc.constantFrom("", " ", "\t\n", "CA 1", "CA\u00001", "CA\u0085", "CA\u20281", "x".repeat(65)),
);

/** JSON objects shaped like events, with wrong types, wrong counts, huge arrays and junk. */
const eventLikeJson: fc.Arbitrary<Payload> = fc
  .record(
    {
      storeId: fc.oneof(
        storeIdCandidate.map((s) => JSON.stringify(s)),
        junk.map((j) => JSON.stringify(j)),
      ),
      features: fc.oneof(
        fc.array(numberLiteral, { maxLength: 25 }).map((items) => `[${items.join(",")}]`),
        fc.array(fc.double(), { maxLength: 25 }).map((items) => JSON.stringify(items)),
        fc
          .integer({ min: 0, max: 50_000 })
          .map((n) => JSON.stringify(Array.from({ length: n }, (_, i) => i / 8))),
        junk.map((j) => JSON.stringify(j)),
      ),
      extras: fc.dictionary(
        fc.string({ maxLength: 45 }).filter((k) => k !== "store_id" && k !== "features"),
        fc.jsonValue({ maxDepth: 3 }),
        { maxKeys: 3 },
      ),
      omit: fc.constantFrom(undefined, "store_id", "features"),
    },
    { requiredKeys: ["storeId", "features", "extras", "omit"] },
  )
  .map(({ storeId, features, extras, omit }) => {
    const entries = Object.entries(extras).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    // JSON.stringify(undefined) is undefined: such a field is left out, as JSON would.
    if (omit !== "store_id" && storeId !== undefined) entries.push(`"store_id":${storeId}`);
    if (omit !== "features" && features !== undefined) entries.push(`"features":${features}`);
    const text = `{${entries.join(",")}}`;
    return textPayload(text, secretsOf(extras));
  });

/** Deeply nested arrays or objects: the validator must not recurse into them. */
const nestedJunk: fc.Arbitrary<Payload> = fc
  .tuple(fc.integer({ min: 1, max: 20_000 }), fc.boolean(), fc.boolean())
  .map(([depth, objects, closed]) => {
    const open = objects ? '{"features":'.repeat(depth) : "[".repeat(depth);
    const close = closed ? (objects ? "}" : "]").repeat(depth) : "";
    return textPayload(`${open}1${close}`);
  });

/** Invalid UTF-8 spliced into text, JSON or not. */
const invalidUtf8: fc.Arbitrary<Payload> = fc
  .tuple(anyString(50), fc.constantFrom(...INVALID_UTF8), anyString(50), fc.boolean())
  .map(([before, bad, after, asJson]) => {
    const head = Buffer.from(asJson ? `{"store_id":"${before}` : before, "utf8");
    const tail = Buffer.from(asJson ? `${after}","features":[]}` : after, "utf8");
    return { value: Buffer.concat([head, bad, tail]), secrets: secretsOf(before + after) };
  });

/** A value of each schema the fake registry knows, NaN, ±Infinity and -0 included. */
const avroValue: fc.Arbitrary<{ readonly id: number; readonly value: unknown }> = fc.oneof(
  fc
    .record({
      store_id: storeIdCandidate,
      features: fc.oneof(
        fc.array(fc.double(), { maxLength: 25 }),
        fc.array(fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 1e308, -1e308, 5e-324, 0), {
          maxLength: 25,
        }),
        fc.integer({ min: 0, max: 50_000 }).map((n) => Array.from({ length: n }, (_, i) => i - 0.5)),
      ),
    })
    .map((value) => ({ id: FEATURE_EVENT_ID, value })),
  fc
    .record({ store_id: storeIdCandidate, features: fc.array(fc.float(), { maxLength: 25 }) })
    .map((value) => ({ id: 8, value })),
  fc
    .record({
      store_id: fc.option(storeIdCandidate),
      features: fc.option(fc.array(fc.option(fc.double()), { maxLength: 25 })),
    })
    .map((value) => ({ id: 9, value })),
  fc
    .record({
      store_id: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      features: fc.dictionary(fc.string({ maxLength: 5 }), fc.double(), { maxKeys: 15 }),
    })
    .map((value) => ({ id: 10, value })),
  anyString(80).map((value) => ({ id: 11, value })),
  fc.array(fc.double(), { maxLength: 25 }).map((value) => ({ id: 12, value })),
  fc
    .record({
      payload: fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b)),
      store_id: storeIdCandidate,
      features: fc.array(fc.double(), { maxLength: 25 }),
      // avsc writes a long only within ±(2^53 - 2): ±(2^53 - 1) would make toBuffer throw while generating.
      ts: fc.integer({ min: -(2 ** 53 - 2), max: 2 ** 53 - 2 }),
    })
    .map((value) => ({ id: 13, value })),
  fc
    .record({
      store_id: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
      features: fc.array(fc.array(fc.double(), { maxLength: 3 }), { maxLength: 15 }),
    })
    .map((value) => ({ id: 14, value })),
);

/** What is done to an encoded value on its way: nothing, truncation, trailing bytes, a flipped byte, another id. */
type Mutation =
  | { readonly kind: "none" }
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "append"; readonly bytes: Uint8Array }
  | { readonly kind: "flip"; readonly at: number; readonly byte: number }
  | { readonly kind: "reid"; readonly id: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: "none" as const }) },
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant("reid" as const),
    id: fc.oneof(fc.constantFrom(...KNOWN_IDS), fc.integer()),
  }),
);

function mutate(id: number, body: Buffer, m: Mutation): Buffer {
  switch (m.kind) {
    case "none":
      return wire(id, body);
    case "truncate":
      return wire(id, body.subarray(0, m.at % (body.length + 1)));
    case "append":
      return wire(id, Buffer.concat([body, m.bytes]));
    case "flip": {
      const copy = Buffer.from(body);
      if (copy.length > 0) copy[m.at % copy.length] = m.byte;
      return wire(id, copy);
    }
    case "reid":
      return wire(m.id, body);
  }
}

const avroPayload: fc.Arbitrary<Payload> = fc
  .tuple(avroValue, mutation)
  .map(([{ id, value }, m]) => ({ value: mutate(id, avroBody(id, value), m), secrets: secretsOf(value) }));

/** Wire-format buffers with any schema id and any body: random, empty or garbage. */
const randomWire: fc.Arbitrary<Payload> = fc
  .tuple(fc.oneof(fc.constantFrom(...KNOWN_IDS), fc.integer()), fc.uint8Array({ maxLength: 64 }))
  .map(([id, body]) => ({ value: wire(id, body), secrets: [] }));

/** Every kind of message value the decoder may be handed. */
const anyPayload: fc.Arbitrary<Payload> = fc.oneof(
  fc.constant<Payload>({ value: null, secrets: [] }),
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ value: Buffer.from(b), secrets: [] })),
  anyString(200).map((s) => textPayload(s, s.length >= SECRET_LENGTH ? [s] : [])),
  fc.jsonValue().map((v) => textPayload(JSON.stringify(v), secretsOf(v))),
  fc.anything().map((v) => {
    const text = JSON.stringify(v) ?? String(v);
    return textPayload(text, secretsOf(v));
  }),
  eventLikeJson,
  nestedJunk,
  invalidUtf8,
  avroPayload,
  randomWire,
);

function isAvroLooking(value: Buffer | null, config: DecoderConfig): value is Buffer {
  return value !== null && value.length >= 5 && value[0] === 0 && value.length <= config.maxMessageBytes;
}

describe("properties: decoding and validation", () => {
  it(
    "never throws with a healthy registry, and always yields exactly one well-formed Validation",
    async () => {
      await fc.assert(
        fc.asyncProperty(configArb, anyPayload, async (config, payload) => {
          const { validator, decoder } = decoderFor(config);
          const callsBefore = registry.calls;
          const schemaCallsBefore = registry.schemaCalls;
          const result = await decoder.decode(payload.value);
          expectWellFormed(result, config, validator, payload.secrets);
          // Only what looks like Avro, and is not too large, is shown to the registry: its schema looked up
          // once, the value handed to decode at most once. A value is kept from decode only when the decoder
          // dead-letters it itself (an unknown schema id, or a body claiming more than it holds), and only
          // when the registry would have refused it too (or choked on it).
          const asked = registry.calls - callsBefore;
          const looked = registry.schemaCalls - schemaCallsBefore;
          if (!isAvroLooking(payload.value, config)) {
            expect([looked, asked]).toEqual([0, 0]);
          } else {
            expect(looked).toBe(1);
            expect(asked).toBeLessThanOrEqual(1);
            if (asked === 0) {
              expect(!result.ok && result.reason).toBe("schema_decode_failed");
              await expect(registry.decode(payload.value)).rejects.toBeDefined();
            }
          }
          if (payload.value !== null && payload.value.length > config.maxMessageBytes) {
            expect(result).toEqual({
              ok: false,
              reason: "too_large",
              detail: `message value has ${payload.value.length} bytes, at most ${config.maxMessageBytes}`,
            });
          }
          if (!result.ok && result.reason === "schema_decode_failed") {
            expect(payload.value?.[0]).toBe(0);
            expect(
              result.detail.startsWith(
                `Avro event (schema id ${payload.value?.readInt32BE(1)}) could not be decoded: `,
              ),
            ).toBe(true);
          }
        }),
        { seed: SEED, numRuns: 600 },
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "never echoes a long random string in a detail, whether sent as text, as a JSON store_id or inside Avro",
    async () => {
      const longString = anyString(120, SECRET_LENGTH);
      const carrier = fc.oneof(
        longString.map((s) => ({ s, payload: textPayload(s) })),
        longString.map((s) => ({ s, payload: textPayload(JSON.stringify({ store_id: s, features: [] })) })),
        longString.map((s) => ({
          s,
          payload: textPayload(JSON.stringify({ store_id: "A", features: [s] })),
        })),
        longString.map((s) => ({ s, payload: textPayload(JSON.stringify([s])) })),
        longString.map((s) => ({ s, payload: textPayload(`{"store_id":"${s}`) })),
        fc.tuple(longString, mutation).map(([s, m]) => ({
          s,
          payload: {
            value: mutate(FEATURE_EVENT_ID, avroBody(FEATURE_EVENT_ID, { store_id: s, features: [] }), m),
            secrets: [],
          },
        })),
        fc.tuple(longString, fc.constantFrom(11, 9)).map(([s, id]) => ({
          s,
          payload: {
            value: wire(id, avroBody(id, id === 11 ? s : { store_id: s, features: null })),
            secrets: [],
          },
        })),
      );
      await fc.assert(
        fc.asyncProperty(configArb, carrier, async (config, { s, payload }) => {
          const { validator, decoder } = decoderFor(config);
          const result = await decoder.decode(payload.value);
          expectWellFormed(result, config, validator, [s]);
          if (!result.ok) expect(result.detail).not.toContain(s);
        }),
        { seed: SEED, numRuns: 400 },
      );
    },
    TEST_TIMEOUT_MS,
  );

  /** One defect planted in an otherwise valid event, and the reason and detail it must produce. */
  type Defect =
    | { readonly kind: "none" }
    | { readonly kind: "storeIdNotString"; readonly value: unknown }
    | { readonly kind: "storeIdBlank"; readonly value: string }
    | { readonly kind: "storeIdTooLong" }
    | { readonly kind: "storeIdInner"; readonly char: string }
    | { readonly kind: "featuresNotArray"; readonly value: unknown }
    | { readonly kind: "count"; readonly delta: number }
    | { readonly kind: "notANumber"; readonly index: number; readonly literal: string }
    | { readonly kind: "nonFinite"; readonly index: number; readonly value: number };

  const featureValue = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(-0, 0, 1e308, -1e308, 5e-324, Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53 + 2),
  );
  const PAD = [" ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\u3000", "\ufeff"];

  const plantedCase = configArb
    .map((c) => ({ ...c, maxMessageBytes: 1 << 20 }))
    .chain((config) =>
      fc.record({
        config: fc.constant(config),
        core: fc
          .oneof(
            fc.stringMatching(/^[A-Z]{2}_[0-9]{1,3}$/),
            fc.string({ unit: "grapheme", minLength: 1, maxLength: config.maxStoreIdLength }),
            fc.string({ unit: "binary", minLength: 1, maxLength: config.maxStoreIdLength }),
          )
          .filter(
            (s) =>
              s.length >= 1 &&
              s.length <= config.maxStoreIdLength &&
              !WHITESPACE.test(s) &&
              !CONTROL.test(s) &&
              s.isWellFormed(),
          ),
        pad: fc.tuple(fc.constantFrom("", ...PAD), fc.constantFrom("", ...PAD)),
        features: fc.array(featureValue, { minLength: config.featureCount, maxLength: config.featureCount }),
        defect: fc.oneof<fc.Arbitrary<Defect>[]>(
          fc.constant({ kind: "none" } as const),
          fc.record({
            kind: fc.constant("storeIdNotString" as const),
            value: fc.oneof(
              fc.double(),
              fc.boolean(),
              fc.constant(null),
              fc.array(fc.string(), { maxLength: 2 }),
            ),
          }),
          fc.record({
            kind: fc.constant("storeIdBlank" as const),
            value: fc.array(fc.constantFrom("", ...PAD), { maxLength: 4 }).map((p) => p.join("")),
          }),
          fc.constant({ kind: "storeIdTooLong" } as const),
          fc.record({
            kind: fc.constant("storeIdInner" as const),
            char: fc.constantFrom(
              " ",
              "\t",
              "\u00a0",
              "\u3000",
              "\u0000",
              "\u0007",
              "\u007f",
              "\u0085",
              "\u2028",
              "\u2029",
            ),
          }),
          fc.record({
            kind: fc.constant("featuresNotArray" as const),
            value: fc.oneof(
              fc.double(),
              fc.string(),
              fc.constant(null),
              fc.dictionary(fc.string(), fc.double()),
            ),
          }),
          fc.record({
            kind: fc.constant("count" as const),
            delta: fc.integer({ min: -config.featureCount, max: 20_000 }).filter((d) => d !== 0),
          }),
          fc.record({
            kind: fc.constant("notANumber" as const),
            index: fc.nat(config.featureCount - 1),
            literal: fc.constantFrom(
              '"NaN"',
              '"Infinity"',
              '"-Infinity"',
              '"-0"',
              '"1e308"',
              '"1"',
              "null",
              "true",
              "[]",
              "{}",
              "[1]",
            ),
          }),
          fc.record({
            kind: fc.constant("nonFinite" as const),
            index: fc.nat(config.featureCount - 1),
            value: fc.constantFrom(Number.NaN, Infinity, -Infinity),
          }),
        ),
        path: fc.constantFrom("json" as const, "avro" as const),
      }),
    )
    // JSON has no NaN; it has literals that parse to ±Infinity (1e400). Avro has no non-numbers in a double[].
    .filter(
      ({ defect, path }) =>
        !(path === "json" && defect.kind === "nonFinite" && Number.isNaN(defect.value)) &&
        !(
          path === "avro" &&
          (defect.kind === "notANumber" ||
            defect.kind === "storeIdNotString" ||
            defect.kind === "featuresNotArray")
        ),
    );

  function kindOf(value: unknown): string {
    if (value === null || value === undefined) return String(value);
    if (Array.isArray(value)) return "an array";
    return typeof value === "object" ? "an object" : `a ${typeof value}`;
  }

  function jsonNumber(value: number): string {
    if (Object.is(value, -0)) return "-0";
    if (value === Infinity) return "1e400";
    if (value === -Infinity) return "-1e400";
    return String(value);
  }

  it(
    "accepts a valid event exactly (trimmed store_id, features bit for bit, -0 and 1e308 included) and names a single planted defect by its reason, on the JSON and the Avro path",
    async () => {
      await fc.assert(
        fc.asyncProperty(plantedCase, async ({ config, core, pad, features, defect, path }) => {
          let storeId: unknown = `${pad[0]}${core}${pad[1]}`;
          // What a JSON value becomes on its way through JSON (NaN turns into null, -0 into 0).
          const arrived = (v: unknown): unknown =>
            path === "json" ? JSON.parse(JSON.stringify(v) ?? "null") : v;
          let featureItems: unknown = [...features];
          let literals: string[] = features.map(jsonNumber);
          let expected: Validation;
          switch (defect.kind) {
            case "none":
              expected = { ok: true, row: { store_id: core, features } };
              break;
            case "storeIdNotString":
              storeId = defect.value;
              expected = {
                ok: false,
                reason: "invalid_store_id",
                detail: `store_id must be a string, got ${kindOf(arrived(defect.value))}`,
              };
              break;
            case "storeIdBlank":
              storeId = defect.value;
              expected = { ok: false, reason: "invalid_store_id", detail: "store_id is empty" };
              break;
            case "storeIdTooLong": {
              const long = core.repeat(Math.ceil((config.maxStoreIdLength + 1) / core.length));
              storeId = `${pad[0]}${long}${pad[1]}`;
              expected = {
                ok: false,
                reason: "invalid_store_id",
                detail: `store_id has ${long.length} characters, at most ${config.maxStoreIdLength}`,
              };
              break;
            }
            case "storeIdInner": {
              // Strictly inside (trim must not remove it), between code points.
              const [first = "", ...rest] = Array.from(core);
              const inner = `${first}${defect.char}${rest.length > 0 ? rest.join("") : first}`;
              storeId = `${pad[0]}${inner}${pad[1]}`;
              if (inner.length > config.maxStoreIdLength) {
                expected = {
                  ok: false,
                  reason: "invalid_store_id",
                  detail: `store_id has ${inner.length} characters, at most ${config.maxStoreIdLength}`,
                };
              } else if (CONTROL.test(defect.char)) {
                expected = {
                  ok: false,
                  reason: "invalid_store_id",
                  detail: "store_id contains a control character",
                };
              } else {
                expected = {
                  ok: false,
                  reason: "invalid_store_id",
                  detail: "store_id contains whitespace, which predictions.csv uses as its delimiter",
                };
              }
              break;
            }
            case "featuresNotArray":
              featureItems = defect.value;
              expected = {
                ok: false,
                reason: "invalid_features",
                detail: `features must be an array, got ${kindOf(arrived(defect.value))}`,
              };
              break;
            case "count": {
              const n = config.featureCount + defect.delta;
              const resized = Array.from({ length: n }, (_, i) => features[i % features.length] ?? 0);
              featureItems = resized;
              literals = resized.map(jsonNumber);
              expected = {
                ok: false,
                reason: "wrong_feature_count",
                detail: `features has ${n} values, expected ${config.featureCount}`,
              };
              break;
            }
            case "notANumber": {
              literals[defect.index] = defect.literal;
              const parsed: unknown = JSON.parse(defect.literal);
              expected = {
                ok: false,
                reason: "invalid_features",
                detail: `features[${defect.index}] is ${kindOf(parsed)}, expected a number`,
              };
              break;
            }
            case "nonFinite": {
              const items = [...features];
              items[defect.index] = defect.value;
              featureItems = items;
              literals[defect.index] = jsonNumber(defect.value);
              expected = {
                ok: false,
                reason: "non_finite_feature",
                detail: `features[${defect.index}] is ${String(defect.value)}`,
              };
              break;
            }
          }
          let value: Buffer;
          if (path === "json") {
            const featuresText = Array.isArray(featureItems)
              ? `[${literals.join(",")}]`
              : JSON.stringify(featureItems);
            value = Buffer.from(
              `{"ts":1,"store_id":${JSON.stringify(storeId)},"features":${featuresText}}`,
              "utf8",
            );
          } else {
            value = wire(
              FEATURE_EVENT_ID,
              avroBody(FEATURE_EVENT_ID, { store_id: storeId, features: featureItems }),
            );
          }
          const { decoder } = decoderFor(config);
          const result = await decoder.decode(value);
          expect(result).toEqual(expected);
          if (result.ok && expected.ok) {
            result.row.features.forEach((f, i) => {
              expect(Object.is(f, expected.row.features[i])).toBe(true);
            });
          }
        }),
        { seed: SEED, numRuns: 600 },
      );
    },
    TEST_TIMEOUT_MS,
  );

  /** How a fake registry answers one decode: healthy, an HTTP error, silence, or anything at all. */
  type Behaviour =
    | { readonly kind: "healthy" }
    | { readonly kind: "response"; readonly status: number }
    | { readonly kind: "silent" }
    | { readonly kind: "rejects"; readonly error: unknown }
    | { readonly kind: "throwsSync"; readonly error: unknown }
    | { readonly kind: "resolves"; readonly value: unknown };

  const thrownValue: fc.Arbitrary<unknown> = fc.oneof(
    fc.string({ maxLength: 400 }).map((m) => new Error(m)),
    fc.string().map((m) => new TypeError(m)),
    fc
      .record({
        name: fc.constantFrom("ResponseError", "Error", "FetchError"),
        status: fc.oneof(
          fc.integer({ min: 0, max: 999 }),
          fc.constantFrom("500", undefined, null, Number.NaN),
        ),
        message: fc.string({ maxLength: 400 }),
      })
      .map(({ name, status, message }) => Object.assign(new Error(message), { name, status })),
    fc.anything(),
  );

  const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
    fc.constant({ kind: "healthy" as const }),
    fc.record({ kind: fc.constant("response" as const), status: fc.integer({ min: 100, max: 599 }) }),
    fc.constant({ kind: "silent" as const }),
    fc.record({ kind: fc.constant("rejects" as const), error: thrownValue }),
    fc.record({ kind: fc.constant("throwsSync" as const), error: thrownValue }),
    fc.record({
      kind: fc.constant("resolves" as const),
      value: fc.oneof(
        fc.anything(),
        avroValue.map((v) => v.value),
      ),
    }),
  );

  /** What the registry client's errors mean to the decoder: an outage unless it is a 404 ResponseError. */
  function isOutage(error: unknown): boolean {
    if (error === null || (typeof error !== "object" && typeof error !== "function")) return false;
    const { name, status } = error as { name?: unknown; status?: unknown };
    return name === "ResponseError" && typeof status === "number" && status !== 404;
  }

  it(
    "throws nothing but RegistryUnavailableError, and that only for an outage, whatever the registry does",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          configArb,
          fc.oneof(avroPayload, randomWire).filter((p) => p.value !== null && p.value.length >= 5),
          behaviour,
          async (config, payload, answer) => {
            const value = payload.value as Buffer;
            const fake = {
              decode(buffer: Buffer): Promise<unknown> {
                switch (answer.kind) {
                  case "healthy":
                    return registry.decode(buffer);
                  case "response":
                    return Promise.reject(new ResponseError(answer.status, `HTTP ${answer.status}`));
                  case "silent":
                    return new Promise(() => {});
                  case "rejects":
                    return Promise.reject(answer.error);
                  case "throwsSync":
                    throw answer.error;
                  case "resolves":
                    return Promise.resolve(answer.value);
                }
              },
            };
            // Silence is cut short by the decoder's own timeout; everything else has all the time it needs.
            const { validator, decoder } = decoderFor(config, fake, answer.kind === "silent" ? 2 : 60_000);
            let outcome: { threw: false; result: Validation } | { threw: true; error: unknown };
            try {
              outcome = { threw: false, result: await decoder.decode(value) };
            } catch (error) {
              outcome = { threw: true, error };
            }
            const asked = isAvroLooking(value, config);
            const outage =
              asked &&
              (answer.kind === "silent" ||
                (answer.kind === "response" && answer.status !== 404) ||
                ((answer.kind === "rejects" || answer.kind === "throwsSync") && isOutage(answer.error)));
            if (outcome.threw) {
              expect(outcome.error).toBeInstanceOf(RegistryUnavailableError);
              expect(outage).toBe(true);
              return;
            }
            expect(outage).toBe(false);
            const { result } = outcome;
            expectWellFormed(result, config, validator, payload.secrets);
            if (
              asked &&
              (answer.kind === "rejects" || answer.kind === "throwsSync" || answer.kind === "response")
            ) {
              expect(result.ok).toBe(false);
              if (!result.ok) {
                expect(result.reason).toBe("schema_decode_failed");
                expect(
                  result.detail.startsWith(
                    `Avro event (schema id ${value.readInt32BE(1)}) could not be decoded: `,
                  ),
                ).toBe(true);
              }
            }
            if (asked && answer.kind === "resolves")
              expect(result).toEqual(validator.validateObject(answer.value));
          },
        ),
        { seed: SEED, numRuns: 600 },
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "decodes any Avro body of a known schema in bounded time (the consumer's event loop is never held)",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...KNOWN_IDS),
          fc.uint8Array({ maxLength: 24 }),
          async (id, body) => {
            const { validator, decoder } = decoderFor({
              featureCount: 13,
              maxStoreIdLength: 64,
              maxMessageBytes: 65_536,
            });
            const blockedBefore = registry.blocked.length;
            const result = await decoder.decode(wire(id, body));
            expectWellFormed(
              result,
              { featureCount: 13, maxStoreIdLength: 64, maxMessageBytes: 65_536 },
              validator,
              [],
            );
            // The real registry client decodes with the same avsc call on the consumer's own thread.
            expect(registry.blocked.length - blockedBefore, `decode took over ${DECODE_BUDGET_MS} ms`).toBe(
              0,
            );
          },
        ),
        { seed: SEED, numRuns: 500 },
      );
    },
    TEST_TIMEOUT_MS,
  );
});

// ---------------------------------------------------------------------------------------------------------
// 2. predictions.csv parsing
// ---------------------------------------------------------------------------------------------------------

async function parseChunks(
  chunks: ReadonlyArray<string | Buffer>,
  options?: ParsePredictionsOptions,
): Promise<ParsedPredictionLine[]> {
  const out: ParsedPredictionLine[] = [];
  for await (const result of parsePredictions(Readable.from(chunks), options)) out.push(result);
  return out;
}

/**
 * The parser's lines, as documented: the input as UTF-8 text (invalid bytes become U+FFFD), split at LF, CRLF
 * or a lone CR. A line is blank when trim() leaves nothing. Leading BOMs are kept here: the parser drops at
 * least one, and the checks on line 1 allow for that.
 */
function modelLines(input: string | Buffer): string[] {
  const text =
    typeof input === "string" ? input : new TextDecoder("utf-8", { ignoreBOM: true }).decode(input);
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** Every header name the parser knows contains one of these (lower-cased). */
const HEADER_STEMS = ["file", "store", "row", "index", "pred"];

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** Characters and words the parser reacts to, to build text that reaches its less travelled paths. */
const CSV_TOKENS = [
  " ",
  "  ",
  "\t",
  ",",
  ", ",
  '"',
  '""',
  "'",
  "[",
  "]",
  "(",
  ")",
  "\r",
  "\n",
  "\r\n",
  "\n\n",
  "\ufeff",
  "\u00a0",
  "\u2028",
  "\u0000",
  "é",
  "\u{1f600}",
  "b-1.json",
  "folder/b-2.json",
  "CA_1",
  "1.5",
  "-2e-3",
  "7",
  "0",
  "[2.5]",
  "[[1]]",
  "[ 3]",
  "np.float64(1.25)",
  "(3.5,)",
  "array([4])",
  "'5'",
  "nan",
  "inf",
  "1e999",
  "file_name",
  "File",
  "store_id",
  "STORE",
  "prediction",
  "pred",
  "row",
  "index",
  "x".repeat(300),
];

const csvSoup = fc
  .array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...CSV_TOKENS) }, fc.string({ maxLength: 4 })), {
    maxLength: 80,
  })
  .map((tokens) => tokens.join(""));

const anyText: fc.Arbitrary<string> = fc.oneof(anyString(300), csvSoup);

const anyBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
  anyText.map((t) => Buffer.from(t, "utf8")),
  fc
    .array(
      fc.oneof(
        fc.constantFrom(...CSV_TOKENS).map((t) => Buffer.from(t, "utf8")),
        fc.constantFrom(...INVALID_UTF8),
        fc.constant(Buffer.from([0xef, 0xbb, 0xbf])),
      ),
      { maxLength: 60 },
    )
    .map((parts) => Buffer.concat(parts)),
);

/** Arbitrary input: a string (lone surrogates and all) or bytes (invalid UTF-8 and all). */
const anyInput: fc.Arbitrary<string | Buffer> = fc.oneof(anyText, anyBytes);

/** Cut points to split an input into chunks. */
const cutPoints = fc.array(fc.nat({ max: 2_000 }), { maxLength: 12 });

describe("properties: predictions.csv parsing", () => {
  it(
    "never throws or hangs on arbitrary text or bytes, and gives one result per non-blank line (headers aside)",
    async () => {
      await fc.assert(
        fc.asyncProperty(anyInput, cutPoints, async (input, points) => {
          const results = await parseChunks(cutAt(input, points));
          const lines = modelLines(input);
          const seen = new Set<number>();
          let previous = 0;
          for (const result of results) {
            expect(Number.isInteger(result.line)).toBe(true);
            expect(result.line).toBeGreaterThan(previous);
            previous = result.line;
            seen.add(result.line);
            const text = lines[result.line - 1];
            expect(text).toBeDefined();
            expect((text ?? "").trim()).not.toBe("");
            if (result.ok) {
              const row = result.row;
              expect(Number.isFinite(row.prediction)).toBe(true);
              expect(row.fileName.length).toBeGreaterThan(0);
              expect(row.fileName.trim()).toBe(row.fileName);
              if ("storeId" in row) {
                expect(row.storeId.length).toBeGreaterThan(0);
                expect(row.storeId.trim()).toBe(row.storeId);
              } else {
                expect(Number.isSafeInteger(row.rowIndex) && row.rowIndex >= 0).toBe(true);
              }
            } else {
              expect(typeof result.reason).toBe("string");
              expect(result.reason.length).toBeGreaterThan(0);
              // How many leading BOMs a byte stream loses is the decoder's business: on line 1, any number may go.
              const candidates = [text ?? ""];
              while (result.line === 1 && candidates.at(-1)?.startsWith("\ufeff")) {
                candidates.push((candidates.at(-1) ?? "").slice(1));
              }
              expect(candidates.map((t) => truncate(t, 256))).toContain(result.raw);
            }
          }
          // A non-blank line without a result can only be a header (the first, or one repeated mid-file).
          lines.forEach((text, i) => {
            if (text.trim() === "" || seen.has(i + 1)) return;
            const lower = text.toLowerCase();
            expect(
              HEADER_STEMS.some((stem) => lower.includes(stem)),
              `line ${i + 1} ${JSON.stringify(text)} has no result`,
            ).toBe(true);
          });
        }),
        { seed: SEED, numRuns: 1_000, timeout: 2_000 },
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "gives the same results whatever the chunking, for strings and for bytes (split mid-character included)",
    async () => {
      await fc.assert(
        fc.asyncProperty(anyInput, cutPoints, cutPoints, async (input, pointsA, pointsB) => {
          const whole = await parseChunks([input]);
          expect(await parseChunks(cutAt(input, pointsA))).toEqual(whole);
          expect(await parseChunks(cutAt(input, pointsB))).toEqual(whole);
        }),
        { seed: SEED, numRuns: 500, timeout: 2_000 },
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "gives the same results whatever the chunking with any maxLineLength, over-long lines included",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          anyInput,
          cutPoints,
          fc.integer({ min: 1, max: 400 }),
          async (input, points, maxLineLength) => {
            const options = { maxLineLength };
            const whole = await parseChunks([input], options);
            expect(await parseChunks(cutAt(input, points), options)).toEqual(whole);
          },
        ),
        { seed: SEED, numRuns: 500, timeout: 2_000 },
      );
    },
    TEST_TIMEOUT_MS,
  );

  // ---- valid files ----

  type Column = "fileName" | "storeId" | "prediction" | "row";
  type Delimiter = " " | "," | "\t";
  type Quoting = "none" | "minimal" | "all";

  interface WrittenRow {
    readonly fileName: string;
    readonly storeId: string;
    /** The prediction field as written, and the number it stands for. */
    readonly written: string;
    readonly value: number;
  }

  interface FileSpec {
    readonly delimiter: Delimiter;
    readonly quoting: Quoting;
    /** Column order; a headerless file is always file_name store_id prediction. */
    readonly columns: readonly Column[];
    readonly headerNames: readonly string[] | undefined;
    readonly eol: "\n" | "\r\n" | "\r";
    readonly bom: boolean;
    readonly finalEol: boolean;
    /** Spaces around each separator (runs of spaces in a space file). */
    readonly padding: readonly string[];
    readonly rows: readonly WrittenRow[];
    /** Whitespace-only lines to put after each line (index 0: after the header or before the first row). */
    readonly blanks: readonly (readonly string[])[];
  }

  const acceptingValidator = createEventValidator();
  /** A store_id the connector accepts as is (so it could come back in predictions.csv) and UTF-8 can carry. */
  function isAcceptedStoreId(id: string): boolean {
    const result = acceptingValidator.validateObject({ store_id: id, features: new Array(13).fill(0) });
    return result.ok && result.row.store_id === id && id.isWellFormed();
  }

  const storeIdArb = fc
    .oneof(
      fc.stringMatching(/^[A-Z]{2}_[0-9]{1,4}$/),
      fc.string({ minLength: 1, maxLength: 20 }),
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }),
      fc.string({ unit: "binary", minLength: 1, maxLength: 12 }),
      // Heavy on the characters a CSV reader reacts to.
      fc.string({ unit: fc.constantFrom(..."aZ09_-.,;:#'\"[]()/|\\"), minLength: 1, maxLength: 8 }),
      fc.string({
        unit: fc.constantFrom("a", ",", ",", "[", "]", "(", ")", "'"),
        minLength: 1,
        maxLength: 8,
      }),
    )
    .filter(isAcceptedStoreId);

  /** File names as the batcher makes them (`<batchId>-<k>.json`, batch ids of [A-Za-z0-9._-]), maybe under a folder. */
  const fileNameArb = fc
    .tuple(
      fc.constantFrom("", "folder/", "azureml/outputs/sub/"),
      fc.stringMatching(/^[A-Za-z0-9._-]{1,30}$/),
      fc.nat(99),
    )
    .map(([folder, batchId, k]) => `${folder}${batchId}-${k}.json`);

  const FORMATS: ReadonlyArray<(v: number) => string> = [
    (v) => String(v),
    (v) => v.toFixed(8),
    (v) => v.toExponential(),
    (v) => v.toPrecision(17),
    (v) => v.toExponential(3),
  ];
  const WRAPPERS: ReadonlyArray<(s: string) => string> = [
    (s) => s,
    (s) => `[${s}]`,
    (s) => `[[${s}]]`,
    (s) => `[ ${s}]`,
    (s) => `np.float64(${s})`,
    (s) => `(${s},)`,
    (s) => `array([${s}])`,
    (s) => `'${s}'`,
  ];

  const predictionArb = fc
    .tuple(
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.nat(FORMATS.length - 1),
      fc.nat(WRAPPERS.length - 1),
    )
    .map(([v, f, w]) => {
      const number = (FORMATS[f] ?? String)(v);
      return { written: (WRAPPERS[w] ?? ((s: string) => s))(number), value: Number(number) };
    })
    // Rounding to fewer digits can carry the largest doubles over to Infinity (1.798e+308): not finite, not valid.
    .filter(({ value }) => Number.isFinite(value));

  const HEADER_ALIASES: Record<Column, readonly string[]> = {
    fileName: ["file_name", "filename", "file"],
    storeId: ["store_id", "storeid", "store"],
    prediction: ["prediction", "predictions", "pred"],
    row: ["row"],
  };

  function fileSpecArb(storeIds: fc.Arbitrary<string>): fc.Arbitrary<FileSpec> {
    return fc
      .record({
        delimiter: fc.constantFrom<Delimiter>(" ", ",", "\t"),
        quoting: fc.constantFrom<Quoting>("none", "minimal", "all"),
        header: fc.boolean(),
        withRowColumn: fc.boolean(),
        order: fc.shuffledSubarray<Column>(["fileName", "storeId", "prediction", "row"], {
          minLength: 4,
          maxLength: 4,
        }),
        eol: fc.constantFrom<"\n" | "\r\n" | "\r">("\n", "\r\n", "\r"),
        bom: fc.boolean(),
        finalEol: fc.boolean(),
        rowCount: fc.integer({ min: 1, max: 25 }),
        // A batch of one store's events: its k-th event goes to file k, so every row has the same store id.
        oneStore: fc.boolean(),
      })
      .chain((shape) => {
        const columns: Column[] = shape.header
          ? shape.order.filter((c) => c !== "row" || shape.withRowColumn)
          : ["fileName", "storeId", "prediction"];
        // A field that an unquoted file could not carry: a quote, or the delimiter itself.
        const carriable = (id: string) =>
          shape.quoting !== "none" || (!id.includes('"') && !id.includes(shape.delimiter));
        const row = fc.record({
          fileName: fileNameArb,
          storeId: storeIds.filter(carriable),
          prediction: predictionArb,
        });
        const blank = fc.array(fc.constantFrom("", " ", "\t", "  \t "), { maxLength: 2 });
        const pad =
          shape.delimiter === " " ? fc.constantFrom(" ", "  ", "   ") : fc.constantFrom("", " ", "  ");
        return fc.record({
          delimiter: fc.constant(shape.delimiter),
          quoting: fc.constant(shape.quoting),
          columns: fc.constant(columns),
          headerNames: shape.header
            ? fc.tuple(...columns.map((c) => fc.mixedCase(fc.constantFrom(...HEADER_ALIASES[c]))))
            : fc.constant(undefined),
          eol: fc.constant(shape.eol),
          bom: fc.constant(shape.bom),
          finalEol: fc.constant(shape.finalEol),
          padding: fc.array(pad, { minLength: columns.length, maxLength: columns.length }),
          rows: fc.array(row, { minLength: shape.rowCount, maxLength: shape.rowCount }).map((rows) =>
            rows.map((r) => ({
              fileName: r.fileName,
              storeId: shape.oneStore ? (rows[0]?.storeId ?? r.storeId) : r.storeId,
              written: r.prediction.written,
              value: r.prediction.value,
            })),
          ),
          blanks: fc.array(blank, { minLength: shape.rowCount + 1, maxLength: shape.rowCount + 1 }),
        });
      });
  }

  function quoteField(field: string, spec: FileSpec): string {
    const needs = field.includes('"') || field.includes(spec.delimiter);
    if (spec.quoting === "all" || (spec.quoting === "minimal" && needs))
      return `"${field.replaceAll('"', '""')}"`;
    return field;
  }

  function joinFields(fields: readonly string[], spec: FileSpec): string {
    return fields
      .map((f) => quoteField(f, spec))
      .reduce((line, field, i) => {
        if (i === 0) return field;
        const pad = spec.padding[i] ?? "";
        return spec.delimiter === " "
          ? `${line}${pad}${field}`
          : `${line}${pad}${spec.delimiter}${pad}${field}`;
      }, "");
  }

  interface BuiltFile {
    readonly text: string;
    /** Each line as written, without its terminator, in order (header and blank lines included). */
    readonly lines: readonly string[];
    /** The 1-based line of each row. */
    readonly rowLines: readonly number[];
  }

  function buildFile(spec: FileSpec): BuiltFile {
    const lines: string[] = [];
    const rowLines: number[] = [];
    if (spec.headerNames !== undefined) lines.push(joinFields(spec.headerNames, spec));
    for (const b of spec.blanks[0] ?? []) lines.push(b);
    spec.rows.forEach((row, i) => {
      const values: Record<Column, string> = {
        fileName: row.fileName,
        storeId: row.storeId,
        prediction: row.written,
        row: String(i),
      };
      const fields = spec.columns.map((column) => values[column]);
      lines.push(joinFields(fields, spec));
      rowLines.push(lines.length);
      for (const b of spec.blanks[i + 1] ?? []) lines.push(b);
    });
    const text = `${spec.bom ? "\ufeff" : ""}${lines.join(spec.eol)}${spec.finalEol ? spec.eol : ""}`;
    return { text, lines, rowLines };
  }

  function expectedRows(spec: FileSpec, built: BuiltFile): ParsedPredictionLine[] {
    return spec.rows.map((row, i) => ({
      ok: true as const,
      line: built.rowLines[i] ?? -1,
      row: { fileName: row.fileName, storeId: row.storeId, prediction: row.value },
    }));
  }

  /** A valid space-separated file of one store whose id holds two commas: rare at random, so always checked. */
  const commaStoreFile: FileSpec = {
    delimiter: " ",
    quoting: "none",
    columns: ["fileName", "storeId", "prediction"],
    headerNames: undefined,
    eol: "\n",
    bom: false,
    finalEol: true,
    padding: [" ", " ", " "],
    rows: [{ fileName: "b-1-0.json", storeId: "a,b,c", written: "1.5", value: 1.5 }],
    blanks: [[], []],
  };

  it(
    "reads every row of a valid file back exactly, in every shape it supports (space, comma, tab; header; quotes; reprs; LF, CRLF, CR)",
    async () => {
      await fc.assert(
        fc.asyncProperty(fileSpecArb(storeIdArb), cutPoints, async (spec, points) => {
          const built = buildFile(spec);
          const results = await parseChunks(cutAt(Buffer.from(built.text, "utf8"), points));
          expect(results).toEqual(expectedRows(spec, built));
          results.forEach((result, i) => {
            expect(result.ok && Object.is(result.row.prediction, spec.rows[i]?.value)).toBe(true);
          });
        }),
        { seed: SEED, numRuns: 1_000, examples: [[commaStoreFile, []]] },
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "judges each line of a valid file by its own length against maxLineLength, whatever its line end",
    async () => {
      // Plain store ids: this property is about line lengths, not about which characters a store id may hold.
      const plainIds = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
      const caseArb = fileSpecArb(plainIds)
        .map((spec) => ({ ...spec, bom: false }))
        .chain((spec) => {
          const built = buildFile(spec);
          const longest = Math.max(...built.lines.map((l) => l.length));
          // Long enough for the header and the blank lines: only data lines may be over the limit.
          const shortest = Math.max(4, spec.headerNames !== undefined ? (built.lines[0]?.length ?? 0) : 0);
          return fc.record({
            spec: fc.constant(spec),
            maxLineLength: fc.integer({ min: Math.min(shortest, longest + 2), max: longest + 2 }),
          });
        });
      await fc.assert(
        fc.asyncProperty(caseArb, cutPoints, async ({ spec, maxLineLength }, points) => {
          const built = buildFile(spec);
          const results = await parseChunks(cutAt(Buffer.from(built.text, "utf8"), points), {
            maxLineLength,
          });
          const expected = spec.rows.map((row, i) => {
            const line = built.rowLines[i] ?? -1;
            const written = built.lines[line - 1] ?? "";
            return written.length > maxLineLength
              ? { ok: false, line, reason: `line longer than ${maxLineLength} characters` }
              : {
                  ok: true,
                  line,
                  row: { fileName: row.fileName, storeId: row.storeId, prediction: row.value },
                };
          });
          expect(results.map((r) => (r.ok ? r : { ok: r.ok, line: r.line, reason: r.reason }))).toEqual(
            expected,
          );
        }),
        { seed: SEED, numRuns: 500 },
      );
    },
    TEST_TIMEOUT_MS,
  );
});
