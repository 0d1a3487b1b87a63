/**
 * The event decoder with the real validator and a fake schema registry: real avsc bytes in the Confluent wire
 * format (magic byte 0, big-endian schema id, Avro body), JSON events, unknown schemas, registry outages and
 * timeouts, and the values that must never reach the registry.
 */
import avro from "avsc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createEventDecoder, RegistryUnavailableError } from "../../src/consumer/decode.ts";
import { createEventValidator, type InvalidReason, type Validation } from "../../src/consumer/validate.ts";
import { FEATURE_EVENT_SCHEMA, ResponseError, wire } from "../helpers/registryWire.ts";

const FEATURES = [1, 2.5, -3, 0, 4e-3, 5, 6, 7, 8, 9, 10, 11, 12.25];
const SCHEMA_ID = 7;

const FEATURE_EVENT = avro.Type.forSchema(FEATURE_EVENT_SCHEMA);

function avroEvent(value: { store_id: string; features: number[] }, schemaId = SCHEMA_ID): Buffer {
  return wire(schemaId, FEATURE_EVENT.toBuffer(value));
}

function json(value: unknown): Buffer {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8");
}

/**
 * A registry that knows SCHEMA_ID and decodes with avsc, as the real client does once it has the schema;
 * `fail` replaces its answer (a throw, or a promise that never settles). Records every buffer it is asked for.
 */
function fakeRegistry(fail?: () => Promise<unknown>) {
  const calls: Buffer[] = [];
  const schemas = new Map([[SCHEMA_ID, FEATURE_EVENT]]);
  const registry = {
    async decode(buffer: Buffer): Promise<unknown> {
      calls.push(buffer);
      if (fail) return fail();
      const id = buffer.readInt32BE(1);
      const type = schemas.get(id);
      if (!type) throw new ResponseError(404, `Schema ${id} not found`);
      return type.fromBuffer(buffer.subarray(5));
    },
  };
  return { registry, calls };
}

function decoderWith(registry: ReturnType<typeof fakeRegistry>["registry"], maxMessageBytes = 65_536) {
  return createEventDecoder({
    schemaRegistry: registry,
    validator: createEventValidator({ maxMessageBytes }),
    maxMessageBytes,
    registryTimeoutMs: 50,
  });
}

function expectInvalid(result: Validation, reason: InvalidReason, detail: string): void {
  expect(result).toEqual({ ok: false, reason, detail });
}

describe("createEventDecoder: JSON events", () => {
  it("decodes and validates a JSON event without asking the registry", async () => {
    const { registry, calls } = fakeRegistry();
    const result = await decoderWith(registry).decode(json({ store_id: "CA_1", features: FEATURES, ts: 1 }));
    expect(result).toEqual({ ok: true, row: { store_id: "CA_1", features: FEATURES } });
    expect(calls).toHaveLength(0);
  });

  it.each([
    ["{not json", "malformed_json", "message value is not JSON (at position 1)"],
    [{ store_id: "CA_1", features: [1, 2] }, "wrong_feature_count", "features has 2 values, expected 13"],
    [{ store_id: 42, features: FEATURES }, "invalid_store_id", "store_id must be a string, got a number"],
  ] as const)(
    "returns the validator's reason for an invalid JSON event (%#)",
    async (input, reason, detail) => {
      const { registry, calls } = fakeRegistry();
      expectInvalid(await decoderWith(registry).decode(json(input)), reason, detail);
      expect(calls).toHaveLength(0);
    },
  );
});

describe("createEventDecoder: Avro events", () => {
  it("decodes real Confluent wire-format bytes through the registry and validates the record", async () => {
    const { registry, calls } = fakeRegistry();
    const value = avroEvent({ store_id: "CA_1", features: FEATURES });
    const result = await decoderWith(registry).decode(value);
    expect(result).toEqual({ ok: true, row: { store_id: "CA_1", features: FEATURES } });
    expect(calls).toEqual([value]);
  });

  it("returns the validator's reason for a decoded record that is invalid", async () => {
    const { registry, calls } = fakeRegistry();
    const value = avroEvent({ store_id: "CA_1", features: FEATURES.slice(0, 12) });
    expectInvalid(
      await decoderWith(registry).decode(value),
      "wrong_feature_count",
      "features has 12 values, expected 13",
    );
    expect(calls).toHaveLength(1);
  });

  it("validates the decoded store_id like a JSON one (trimmed, no whitespace inside)", async () => {
    const { registry } = fakeRegistry();
    const decoder = decoderWith(registry);
    expect(await decoder.decode(avroEvent({ store_id: " TX_2 ", features: FEATURES }))).toEqual({
      ok: true,
      row: { store_id: "TX_2", features: FEATURES },
    });
    expectInvalid(
      await decoder.decode(avroEvent({ store_id: "TX 2", features: FEATURES })),
      "invalid_store_id",
      "store_id contains whitespace, which predictions.csv uses as its delimiter",
    );
  });

  it("dead-letters an unknown schema id (404) with the id in a bounded detail", async () => {
    const { registry, calls } = fakeRegistry();
    const result = await decoderWith(registry).decode(
      avroEvent({ store_id: "CA_1", features: FEATURES }, 99),
    );
    expectInvalid(
      result,
      "schema_decode_failed",
      "Avro event (schema id 99) could not be decoded: Confluent_Schema_Registry - Schema 99 not found",
    );
    expect(calls).toHaveLength(1);
  });

  it("cuts a long decode error's detail to 300 characters, keeping the schema id", async () => {
    const { registry } = fakeRegistry(async () => {
      throw new ResponseError(404, `Schema not found ${"x".repeat(1000)}`);
    });
    const result = await decoderWith(registry).decode(avroEvent({ store_id: "CA_1", features: FEATURES }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe("schema_decode_failed");
    expect(result.detail).toHaveLength(300);
    expect(result.detail.startsWith(`Avro event (schema id ${SCHEMA_ID}) could not be decoded: `)).toBe(true);
  });

  it("dead-letters a body avsc cannot decode (truncated): the event's fault, not an outage", async () => {
    const { registry, calls } = fakeRegistry();
    const whole = avroEvent({ store_id: "CA_1", features: FEATURES });
    const result = await decoderWith(registry).decode(whole.subarray(0, whole.length - 3));
    expectInvalid(
      result,
      "schema_decode_failed",
      `Avro event (schema id ${SCHEMA_ID}) could not be decoded: truncated buffer`,
    );
    expect(calls).toHaveLength(1);
  });

  it("dead-letters trailing bytes after the Avro body", async () => {
    const { registry } = fakeRegistry();
    const value = Buffer.concat([avroEvent({ store_id: "CA_1", features: FEATURES }), Buffer.from([1, 2])]);
    expectInvalid(
      await decoderWith(registry).decode(value),
      "schema_decode_failed",
      `Avro event (schema id ${SCHEMA_ID}) could not be decoded: trailing data`,
    );
  });
});

describe("createEventDecoder: registry outages", () => {
  it.each([
    [500, "Internal Server Error"],
    [503, "Service Unavailable"],
    [400, "Error, status 400"],
    [401, "Unauthorized"],
  ])("rejects with RegistryUnavailableError on a ResponseError with status %i", async (status, message) => {
    const cause = new ResponseError(status, message);
    const { registry, calls } = fakeRegistry(async () => {
      throw cause;
    });
    const error = await decoderWith(registry)
      .decode(avroEvent({ store_id: "CA_1", features: FEATURES }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryUnavailableError);
    expect((error as Error).name).toBe("RegistryUnavailableError");
    expect((error as Error).message).toBe(
      `schema registry unavailable: Confluent_Schema_Registry - ${message}`,
    );
    expect((error as Error).cause).toBe(cause);
    expect(calls).toHaveLength(1);
  });

  it("rejects with RegistryUnavailableError when the registry never answers within registryTimeoutMs", async () => {
    const { registry, calls } = fakeRegistry(() => new Promise(() => {}));
    const started = performance.now();
    const error = await decoderWith(registry)
      .decode(avroEvent({ store_id: "CA_1", features: FEATURES }))
      .catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(RegistryUnavailableError);
    expect((error as Error).message).toBe("schema registry unavailable: no answer within 50 ms");
    // setTimeout may fire a millisecond early by performance.now()'s clock; it never fires much later here.
    expect(elapsed).toBeGreaterThanOrEqual(45);
    expect(elapsed).toBeLessThan(2000);
    expect(calls).toHaveLength(1);
  });

  it("does not time out a registry that answers in time", async () => {
    const { registry: real } = fakeRegistry();
    const slow = {
      decode: async (buffer: Buffer) => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        return real.decode(buffer);
      },
    };
    const result = await decoderWith(slow).decode(avroEvent({ store_id: "CA_1", features: FEATURES }));
    expect(result).toEqual({ ok: true, row: { store_id: "CA_1", features: FEATURES } });
  });
});

describe("createEventDecoder: values that never reach the registry", () => {
  it("rejects an Avro-looking value over maxMessageBytes as too large, unsent", async () => {
    const { registry, calls } = fakeRegistry();
    const value = avroEvent({ store_id: "CA_1", features: new Array(30).fill(1) });
    expect(value[0]).toBe(0);
    expect(value.length).toBeGreaterThan(200);
    expectInvalid(
      await decoderWith(registry, 200).decode(value),
      "too_large",
      `message value has ${value.length} bytes, at most 200`,
    );
    expect(calls).toHaveLength(0);
  });

  it("sends a value of exactly maxMessageBytes to the registry", async () => {
    const { registry, calls } = fakeRegistry();
    const value = avroEvent({ store_id: "CA_1", features: FEATURES });
    const result = await decoderWith(registry, value.length).decode(value);
    expect(result).toEqual({ ok: true, row: { store_id: "CA_1", features: FEATURES } });
    expect(calls).toHaveLength(1);
  });

  it.each([[Buffer.from([0])], [Buffer.from([0, 0, 0, 7])]])(
    "leaves a value shorter than 5 bytes starting with 0 to the validator (%#)",
    async (value) => {
      const { registry, calls } = fakeRegistry();
      expectInvalid(await decoderWith(registry).decode(value), "malformed_json", "message value is not JSON");
      expect(calls).toHaveLength(0);
    },
  );

  it.each([[null], [Buffer.alloc(0)]])("returns empty_message for an empty value (%#)", async (value) => {
    const { registry, calls } = fakeRegistry();
    expectInvalid(await decoderWith(registry).decode(value), "empty_message", "message value is empty");
    expect(calls).toHaveLength(0);
  });
});

describe("createEventDecoder: whatever the registry throws", () => {
  it.each([
    ["undefined", undefined],
    ["null", null],
    ["a string", "boom"],
    ["a number", 42],
    ["an object without a message", { status: 500 }],
    ["a ResponseError without a numeric status", Object.assign(new Error("odd"), { name: "ResponseError" })],
  ])(
    "dead-letters an event whose decode rejects with %s, and never throws a TypeError",
    async (_, thrown) => {
      const { registry } = fakeRegistry(() => Promise.reject(thrown));
      const result = await decoderWith(registry).decode(avroEvent({ store_id: "CA_1", features: FEATURES }));
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.reason).toBe("schema_decode_failed");
      expect(result.detail.startsWith(`Avro event (schema id ${SCHEMA_ID}) could not be decoded: `)).toBe(
        true,
      );
    },
  );

  it("names what was thrown in the detail", async () => {
    const { registry } = fakeRegistry(() => Promise.reject(undefined));
    expectInvalid(
      await decoderWith(registry).decode(avroEvent({ store_id: "CA_1", features: FEATURES })),
      "schema_decode_failed",
      `Avro event (schema id ${SCHEMA_ID}) could not be decoded: undefined`,
    );
  });
});

/**
 * A registry client with getSchema too, as the real one has: the writer's avsc Type by id (404 for others),
 * or `schemaAnswer`'s answer instead. Counts both calls.
 */
function checkingRegistry(schemaAnswer?: (id: number) => Promise<unknown>) {
  const { registry: inner, calls } = fakeRegistry();
  const schemaCalls: number[] = [];
  const registry = {
    decode: inner.decode,
    async getSchema(id: number): Promise<unknown> {
      schemaCalls.push(id);
      if (schemaAnswer) return schemaAnswer(id);
      if (id !== SCHEMA_ID) throw new ResponseError(404, `Schema ${id} not found`);
      return FEATURE_EVENT;
    },
  };
  return { registry, calls, schemaCalls };
}

describe("createEventDecoder: Avro bodies checked against the writer's schema before avsc", () => {
  it("dead-letters the 10-byte event declaring ~34.6 million doubles without handing it to decode", async () => {
    const { registry, calls, schemaCalls } = checkingRegistry();
    // Empty store_id, then an array block count of 34_603_008: avsc would allocate and loop before failing.
    const value = wire(SCHEMA_ID, Buffer.from([0, 128, 128, 128, 33]));
    const started = performance.now();
    expectInvalid(
      await decoderWith(registry).decode(value),
      "schema_decode_failed",
      `Avro event (schema id ${SCHEMA_ID}) could not be decoded: ` +
        "block of 34603008 items at byte 1 cannot fit in the 0 bytes left (8 or more each)",
    );
    expect(performance.now() - started).toBeLessThan(100);
    expect(calls).toHaveLength(0);
    expect(schemaCalls).toEqual([SCHEMA_ID]);
  });

  it("dead-letters a block count near 2^31 in 6 bytes the same way", async () => {
    const { registry, calls } = checkingRegistry();
    const result = await decoderWith(registry).decode(
      wire(SCHEMA_ID, Buffer.from([0, 0xfe, 0xff, 0xff, 0xff, 0x0f])),
    );
    expect(result).toEqual({
      ok: false,
      reason: "schema_decode_failed",
      detail: expect.stringContaining("block of 2147483647 items"),
    });
    expect(calls).toHaveLength(0);
  });

  it("decodes valid events, asking for each schema once", async () => {
    const { registry, calls, schemaCalls } = checkingRegistry();
    const decoder = decoderWith(registry);
    for (const storeId of ["CA_1", "CA_2", "CA_3"]) {
      expect(await decoder.decode(avroEvent({ store_id: storeId, features: FEATURES }))).toEqual({
        ok: true,
        row: { store_id: storeId, features: FEATURES },
      });
    }
    expect(calls).toHaveLength(3);
    expect(schemaCalls).toEqual([SCHEMA_ID]);
  });

  it("dead-letters an unknown schema id from getSchema's 404, asking again on the next event", async () => {
    const { registry, calls, schemaCalls } = checkingRegistry();
    const decoder = decoderWith(registry);
    const value = avroEvent({ store_id: "CA_1", features: FEATURES }, 99);
    for (let i = 0; i < 2; i++) {
      expectInvalid(
        await decoder.decode(value),
        "schema_decode_failed",
        "Avro event (schema id 99) could not be decoded: Confluent_Schema_Registry - Schema 99 not found",
      );
    }
    expect(calls).toHaveLength(0);
    expect(schemaCalls).toEqual([99, 99]);
  });

  it("throws RegistryUnavailableError when getSchema meets an outage", async () => {
    const cause = new ResponseError(503, "Service Unavailable");
    const { registry, calls } = checkingRegistry(() => Promise.reject(cause));
    const error = await decoderWith(registry)
      .decode(avroEvent({ store_id: "CA_1", features: FEATURES }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryUnavailableError);
    expect((error as Error).cause).toBe(cause);
    expect(calls).toHaveLength(0);
  });

  it("throws RegistryUnavailableError when getSchema never answers within registryTimeoutMs", async () => {
    const { registry } = checkingRegistry(() => new Promise(() => {}));
    const error = await decoderWith(registry)
      .decode(avroEvent({ store_id: "CA_1", features: FEATURES }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryUnavailableError);
    expect((error as Error).message).toBe("schema registry unavailable: no answer within 50 ms");
  });

  it("gives getSchema and decode one deadline together", async () => {
    const { registry: inner } = checkingRegistry();
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const registry = {
      async getSchema(id: number) {
        await wait(30);
        return inner.getSchema(id);
      },
      async decode(buffer: Buffer) {
        await wait(30);
        return inner.decode(buffer);
      },
    };
    const error = await decoderWith(registry)
      .decode(avroEvent({ store_id: "CA_1", features: FEATURES }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryUnavailableError);
  });

  it("decodes unchecked what getSchema says is not an Avro schema (JSON Schema, Protobuf)", async () => {
    const { registry, calls } = checkingRegistry(async () => ({ validate: () => true }));
    expect(await decoderWith(registry).decode(avroEvent({ store_id: "CA_1", features: FEATURES }))).toEqual({
      ok: true,
      row: { store_id: "CA_1", features: FEATURES },
    });
    expect(calls).toHaveLength(1);
  });
});

describe("createEventDecoder: any thrown value, from getSchema or decode", () => {
  it("throws RegistryUnavailableError exactly for an outage and dead-letters everything else", async () => {
    const thrown = fc.oneof(
      fc.anything(),
      fc
        .record({
          name: fc.constantFrom("ResponseError", "Error"),
          status: fc.oneof(fc.integer({ min: 0, max: 999 }), fc.constantFrom(404, "500", undefined, null)),
        })
        .map(({ name, status }) => Object.assign(new Error("x"), { name, status })),
    );
    await fc.assert(
      fc.asyncProperty(thrown, fc.boolean(), async (error, fromGetSchema) => {
        const { registry: inner } = checkingRegistry();
        const registry = {
          getSchema: (id: number) => (fromGetSchema ? Promise.reject(error) : inner.getSchema(id)),
          decode: (buffer: Buffer) => (fromGetSchema ? inner.decode(buffer) : Promise.reject(error)),
        };
        const outage =
          error !== null &&
          typeof error === "object" &&
          (error as { name?: unknown }).name === "ResponseError" &&
          typeof (error as { status?: unknown }).status === "number" &&
          (error as { status?: unknown }).status !== 404;
        const outcome = await decoderWith(registry)
          .decode(avroEvent({ store_id: "CA_1", features: FEATURES }))
          .catch((e: unknown) => ({ thrown: e }));
        if ("thrown" in outcome) {
          expect(outcome.thrown).toBeInstanceOf(RegistryUnavailableError);
          expect(outage).toBe(true);
        } else {
          expect(outage).toBe(false);
          expect(outcome.ok).toBe(false);
          if (!outcome.ok) {
            expect(outcome.reason).toBe("schema_decode_failed");
            expect(outcome.detail.length).toBeLessThanOrEqual(300);
          }
        }
      }),
      { seed: 0xdec0de, numRuns: 300 },
    );
  });
});
