import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createEventValidator, type InvalidReason, type Validation } from "../../src/consumer/validate.ts";

const FEATURES = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];

function bytes(value: unknown): Buffer {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8");
}

function expectInvalid(result: Validation, reason: InvalidReason, detail?: string | RegExp): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.reason).toBe(reason);
  expect(result.detail.length).toBeGreaterThan(0);
  expect(result.detail.length).toBeLessThanOrEqual(120);
  if (detail !== undefined) expect(result.detail).toMatch(detail);
}

describe("createEventValidator", () => {
  const validator = createEventValidator();

  it("accepts the guide's row and returns only store_id and features, copied", () => {
    const input = { store_id: "CA_1", features: [...FEATURES], extra: { nested: true }, ts: 1 };
    const result = validator.validateBytes(bytes(input));
    expect(result).toEqual({ ok: true, row: { store_id: "CA_1", features: FEATURES } });

    const direct = validator.validateObject(input);
    expect(direct.ok).toBe(true);
    if (!direct.ok) return;
    expect(Object.keys(direct.row)).toEqual(["store_id", "features"]);
    expect(direct.row.features).not.toBe(input.features);
    input.features[0] = 99;
    expect(direct.row.features[0]).toBe(0.5);
  });

  it("trims store_id", () => {
    const result = validator.validateObject({ store_id: "  TX_2 ", features: FEATURES });
    expect(result.ok && result.row.store_id).toBe("TX_2");
  });

  it("accepts negative, zero, integer and exponent features", () => {
    const features = [-1, 0, 3, 1e-300, -2.5e10, 0.1, 0, 0, 0, 0, 0, 0, 7];
    expect(validator.validateObject({ store_id: "X", features })).toEqual({
      ok: true,
      row: { store_id: "X", features },
    });
  });

  it.each([
    [null, "empty_message"],
    [Buffer.alloc(0), "empty_message"],
  ] as const)("rejects an empty value (%#)", (value, reason) => {
    expectInvalid(validator.validateBytes(value), reason);
  });

  it("rejects a message over maxMessageBytes before parsing it", () => {
    const small = createEventValidator({ maxMessageBytes: 100 });
    const big = bytes({ store_id: "CA_1", features: FEATURES, pad: "x".repeat(200) });
    expectInvalid(small.validateBytes(big), "too_large", /at most 100/);
  });

  it.each([
    ["{not json", /not JSON/],
    ["   ", /not JSON/],
    ['{"store_id": "CA_1", "features": [1,2,]}', /not JSON/],
    ["\uFEFF", /not JSON/],
  ])("rejects malformed JSON %j", (text, detail) => {
    expectInvalid(validator.validateBytes(bytes(text)), "malformed_json", detail);
  });

  it("rejects invalid UTF-8 instead of decoding it to replacement characters", () => {
    const value = Buffer.concat([
      Buffer.from('{"store_id":"CA'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    expectInvalid(validator.validateBytes(value), "malformed_json", /UTF-8/);
  });

  it("never echoes the payload in detail", () => {
    const secret = "SECRET-PAYLOAD-CONTENT";
    const result = validator.validateBytes(bytes(`{"store_id": "${secret}", oops}`));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.detail).not.toContain(secret);
  });

  it.each([
    ["a number", 42],
    ["a string", "CA_1"],
    ["an array", [{ store_id: "CA_1", features: FEATURES }]],
    ["null", null],
    ["a boolean", true],
  ])("rejects %s at the top level as not_an_object", (_, value) => {
    expectInvalid(
      validator.validateBytes(Buffer.from(JSON.stringify(value))),
      "not_an_object",
      /expected a JSON object/,
    );
    expectInvalid(validator.validateObject(value), "not_an_object");
  });

  it("rejects undefined and exotic objects without throwing", () => {
    expectInvalid(validator.validateObject(undefined), "not_an_object");
    const throwing = {
      get store_id(): string {
        throw new Error("boom");
      },
    };
    expectInvalid(validator.validateObject(throwing), "not_an_object");
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expectInvalid(validator.validateObject(proxy), "not_an_object");
  });

  it.each([
    ["missing", { features: FEATURES }, /must be a string, got undefined/],
    ["a number", { store_id: 12, features: FEATURES }, /must be a string, got a number/],
    ["null", { store_id: null, features: FEATURES }, /got null/],
    ["empty", { store_id: "", features: FEATURES }, /empty/],
    ["blank", { store_id: "   ", features: FEATURES }, /empty/],
    ["too long", { store_id: "x".repeat(65), features: FEATURES }, /65 characters, at most 64/],
    ["with a newline", { store_id: "CA\n1", features: FEATURES }, /control character/],
    ["with a NUL", { store_id: "CA\u00001", features: FEATURES }, /control character/],
    ["with DEL", { store_id: "CA\u007f", features: FEATURES }, /control character/],
    ["with a C1 control", { store_id: "CA\u0085", features: FEATURES }, /control character/],
    ["with a line separator", { store_id: "CA\u20281", features: FEATURES }, /control character/],
  ])("rejects a store_id that is %s", (_, value, detail) => {
    expectInvalid(validator.validateBytes(bytes(value)), "invalid_store_id", detail);
  });

  it("measures store_id length after trimming", () => {
    expect(validator.validateObject({ store_id: ` ${"x".repeat(64)} `, features: FEATURES }).ok).toBe(true);
  });

  it.each([
    ["missing", { store_id: "CA_1" }, "invalid_features", /must be an array, got undefined/],
    ["an object", { store_id: "CA_1", features: { 0: 1 } }, "invalid_features", /got an object/],
    ["a string", { store_id: "CA_1", features: "1,2,3" }, "invalid_features", /must be an array/],
    [
      "12 values",
      { store_id: "CA_1", features: FEATURES.slice(1) },
      "wrong_feature_count",
      /has 12 values, expected 13/,
    ],
    ["14 values", { store_id: "CA_1", features: [...FEATURES, 1] }, "wrong_feature_count", /has 14 values/],
    ["empty", { store_id: "CA_1", features: [] }, "wrong_feature_count", /has 0 values/],
    [
      "holding a numeric string",
      { store_id: "CA_1", features: [...FEATURES.slice(0, 12), "0.5"] },
      "invalid_features",
      /features\[12\] is a string/,
    ],
    [
      "holding null",
      { store_id: "CA_1", features: [null, ...FEATURES.slice(1)] },
      "invalid_features",
      /features\[0\] is null/,
    ],
    [
      "holding a nested array",
      { store_id: "CA_1", features: [[0.5], ...FEATURES.slice(1)] },
      "invalid_features",
      /features\[0\] is an array/,
    ],
  ])("rejects features %s", (_, value, reason, detail) => {
    expectInvalid(validator.validateBytes(bytes(value)), reason as InvalidReason, detail);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    "rejects a non-finite feature (%s) from a decoded object",
    (bad) => {
      const features = [...FEATURES];
      features[4] = bad;
      expectInvalid(
        validator.validateObject({ store_id: "CA_1", features }),
        "non_finite_feature",
        new RegExp(`features\\[4\\] is ${String(bad)}`),
      );
    },
  );

  it("rejects a sparse array", () => {
    const features: number[] = new Array(13);
    features[0] = 1;
    expectInvalid(
      validator.validateObject({ store_id: "CA_1", features }),
      "invalid_features",
      /features\[1\]/,
    );
  });

  it("honours featureCount and maxStoreIdLength", () => {
    const custom = createEventValidator({ featureCount: 2, maxStoreIdLength: 3 });
    expect(custom.validateObject({ store_id: "abc", features: [1, 2] }).ok).toBe(true);
    expectInvalid(custom.validateObject({ store_id: "abcd", features: [1, 2] }), "invalid_store_id");
    expectInvalid(
      custom.validateObject({ store_id: "abc", features: FEATURES }),
      "wrong_feature_count",
      /expected 2/,
    );
  });

  it.each([
    ["featureCount", { featureCount: 0 }],
    ["featureCount", { featureCount: 2.5 }],
    ["maxStoreIdLength", { maxStoreIdLength: -1 }],
    ["maxMessageBytes", { maxMessageBytes: Number.NaN }],
  ])("rejects a bad %s option with a RangeError naming it", (name, options) => {
    expect(() => createEventValidator(options)).toThrow(RangeError);
    expect(() => createEventValidator(options)).toThrow(name);
  });

  it("never throws on random bytes, and says why it rejects them", () => {
    const reasons = new Set<string>();
    let seed = 1;
    const rand = () => {
      // Deterministic mix with crypto bytes: reproducible lengths, unpredictable content.
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed;
    };
    for (let i = 0; i < 5_000; i++) {
      const value = randomBytes(rand() % 300);
      let result: Validation | undefined;
      expect(() => {
        result = validator.validateBytes(value);
      }).not.toThrow();
      expect(result).toBeDefined();
      if (result !== undefined && !result.ok) reasons.add(result.reason);
    }
    expect(reasons.has("malformed_json") || reasons.has("empty_message")).toBe(true);
  });

  it("never throws on mutated valid payloads", () => {
    const base = bytes({ store_id: "CA_1", features: FEATURES });
    const alphabet = Buffer.from('{}[]",:0123456789.-eE nulltruefalse\\\u0000\u00ff');
    for (let i = 0; i < 5_000; i++) {
      const value = Buffer.from(base);
      const edits = 1 + (i % 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(Math.random() * value.length);
        value[at] = alphabet[Math.floor(Math.random() * alphabet.length)] ?? 0;
      }
      const result = validator.validateBytes(value);
      if (result.ok) {
        expect(result.row.features).toHaveLength(13);
        expect(result.row.features.every(Number.isFinite)).toBe(true);
      } else {
        expect(typeof result.detail).toBe("string");
      }
    }
  });

  it("refuses a store_id with whitespace inside: the endpoint's space-delimited output could not carry it", () => {
    const validator = createEventValidator();
    const result = validator.validateObject({ store_id: "CA 1", features: Array(13).fill(0.5) });
    expect(result).toEqual({
      ok: false,
      reason: "invalid_store_id",
      detail: expect.stringMatching(/whitespace/),
    });
    expect(validator.validateObject({ store_id: " CA_1 ", features: Array(13).fill(0.5) })).toEqual({
      ok: true,
      row: { store_id: "CA_1", features: Array(13).fill(0.5) },
    });
  });

  it("refuses a store_id with a lone surrogate sent as a JSON escape; a surrogate pair is fine", () => {
    const validator = createEventValidator();
    for (const escaped of ["\\ud800", "CA_\\udfff1", "A\\ud83d"]) {
      const value = bytes(`{"store_id":"${escaped}","features":${JSON.stringify(FEATURES)}}`);
      expect(validator.validateBytes(value)).toEqual({
        ok: false,
        reason: "invalid_store_id",
        detail: "store_id contains a lone surrogate (not well-formed UTF-16)",
      });
    }
    const pair = bytes(`{"store_id":"CA_\\ud83d\\ude00","features":${JSON.stringify(FEATURES)}}`);
    expect(validator.validateBytes(pair)).toEqual({
      ok: true,
      row: { store_id: "CA_\u{1f600}", features: FEATURES },
    });
  });
});
