/**
 * The Avro bounds check (src/consumer/avroBounds.ts) against real avsc types: valid bodies of every kind of
 * schema pass, bodies whose counts or lengths claim more than they hold are refused before avsc sees them,
 * and whatever passes is decoded by avsc quickly.
 */
import avro from "avsc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkAvroBounds, compileAvroBounds } from "../../src/consumer/avroBounds.ts";
import { FEATURE_EVENT_SCHEMA } from "../helpers/registryWire.ts";

type AvroSchema = Parameters<typeof avro.Type.forSchema>[0];

function planOf(schema: AvroSchema | avro.Type) {
  const type = schema instanceof avro.Type ? schema : avro.Type.forSchema(schema);
  const plan = compileAvroBounds(type);
  if (plan === undefined) throw new Error("not compiled");
  return { type, plan };
}

const FEATURE_EVENT: AvroSchema = FEATURE_EVENT_SCHEMA;

/** Schemas of every kind: primitives, records, arrays, maps, unions, enums, fixed, logical types, recursion. */
const SCHEMAS: Record<string, AvroSchema> = {
  featureEvent: FEATURE_EVENT,
  string: "string",
  bytes: "bytes",
  long: "long",
  doubles: { type: "array", items: "double" },
  floats: { type: "map", values: "float" },
  nullable: ["null", "string", { type: "array", items: ["null", "double"] }],
  everything: {
    type: "record",
    name: "Everything",
    fields: [
      { name: "n", type: "null" },
      { name: "b", type: "boolean" },
      { name: "i", type: "int" },
      { name: "l", type: "long" },
      { name: "f", type: "float" },
      { name: "d", type: "double" },
      { name: "s", type: "string" },
      { name: "y", type: "bytes" },
      { name: "e", type: { type: "enum", name: "Colour", symbols: ["RED", "GREEN", "BLUE"] } },
      { name: "x", type: { type: "fixed", name: "Four", size: 4 } },
      { name: "z", type: { type: "fixed", name: "Zero", size: 0 } },
      { name: "t", type: { type: "long", logicalType: "timestamp-millis" } },
      { name: "m", type: { type: "bytes", logicalType: "decimal", precision: 9, scale: 2 } },
      { name: "u", type: ["null", "int", "string"] },
      {
        name: "nested",
        type: {
          type: "array",
          items: {
            type: "record",
            name: "Point",
            fields: [
              { name: "x", type: "double" },
              { name: "y", type: "double" },
            ],
          },
        },
      },
      { name: "tags", type: { type: "map", values: { type: "array", items: "string" } } },
      { name: "empty", type: { type: "record", name: "Empty", fields: [] } },
    ],
  },
  list: {
    type: "record",
    name: "Node",
    fields: [
      { name: "value", type: "int" },
      { name: "next", type: ["null", "Node"] },
    ],
  },
  tree: {
    type: "record",
    name: "Tree",
    fields: [
      { name: "label", type: "string" },
      { name: "children", type: { type: "array", items: "Tree" } },
      { name: "attrs", type: { type: "map", values: "Tree" } },
    ],
  },
};

const leaf = (label: string) => ({ label, children: [], attrs: {} });
const TREES = [
  leaf(""),
  { label: "root", children: [leaf("a"), { ...leaf("b"), children: [leaf("c")] }], attrs: { x: leaf("d") } },
];

/** A value of a schema: avsc's random one, or a hand-made tree (avsc's random trees can explode). */
function sampleOf(name: string, type: avro.Type, k: number): unknown {
  return name === "tree" ? TREES[k % TREES.length] : type.random();
}

describe("checkAvroBounds: bodies that claim more than they hold", () => {
  const { plan } = planOf(FEATURE_EVENT);

  it("refuses the 10-byte feature event declaring ~34.6 million doubles", () => {
    // Empty store_id, then an array block count of 34_603_008 (varint 80 80 80 21) and nothing after it.
    expect(checkAvroBounds(plan, Buffer.from([0, 128, 128, 128, 33]))).toBe(
      "block of 34603008 items at byte 1 cannot fit in the 0 bytes left (8 or more each)",
    );
  });

  it("refuses a block count near 2^31 in 6 bytes (16 GB of doubles to avsc)", () => {
    expect(checkAvroBounds(plan, Buffer.from([0, 0xfe, 0xff, 0xff, 0xff, 0x0f]))).toBe(
      "block of 2147483647 items at byte 1 cannot fit in the 0 bytes left (8 or more each)",
    );
  });

  it("refuses a negative block count whose absolute value does not fit either", () => {
    // -34_603_008 items, then a block size of 1 byte.
    expect(checkAvroBounds(plan, Buffer.from([0, 0xff, 0xff, 0xff, 0x20, 2, 0]))).toMatch(
      /^block of 34603008 items at byte 1 cannot fit/,
    );
  });

  it("refuses a string length longer than the bytes left, and a negative one", () => {
    expect(checkAvroBounds(plan, Buffer.from([0x80, 0x80, 0x80, 0x10, 0x41]))).toBe(
      "length 16777216 at byte 0 is more than the 1 bytes left",
    );
    expect(checkAvroBounds(plan, Buffer.from([1, 0]))).toBe("invalid length -1 at byte 0");
  });

  it("refuses a map block count larger than its entries could fit (each at least a key byte and a value)", () => {
    const { plan: maps } = planOf({ type: "map", values: "float" });
    // 3 entries of at least 5 bytes each in 10 bytes.
    expect(checkAvroBounds(maps, Buffer.from([6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe(
      "block of 3 entries at byte 0 cannot fit in the 10 bytes left (5 or more each)",
    );
  });

  it("bounds items of records by the sum of their fields", () => {
    const { plan: pairs } = planOf({
      type: "array",
      items: {
        type: "record",
        name: "Pair",
        fields: [
          { name: "a", type: "double" },
          { name: "b", type: "string" },
        ],
      },
    });
    // 2 items of at least 9 bytes each in 17 bytes.
    expect(checkAvroBounds(pairs, Buffer.concat([Buffer.from([4]), Buffer.alloc(17)]))).toBe(
      "block of 2 items at byte 0 cannot fit in the 17 bytes left (9 or more each)",
    );
  });

  it("bounds items that take no bytes by the body's size", () => {
    const { type, plan: nulls } = planOf({ type: "array", items: "null" });
    // Three nulls in 2 bytes, a thousand in 3: what avsc reads in no time.
    expect(checkAvroBounds(nulls, Buffer.from([6, 0]))).toBeUndefined();
    expect(checkAvroBounds(nulls, type.toBuffer(new Array(1000).fill(null)))).toBeUndefined();
    // A million in 4 bytes: avsc would allocate and loop a million times.
    expect(checkAvroBounds(nulls, Buffer.from([0x80, 0x89, 0x7a, 0]))).toBe(
      "more items taking no bytes (block of 1000000 at byte 0) than a body of 4 bytes may hold",
    );
  });

  it("refuses a body that ends inside a value", () => {
    expect(checkAvroBounds(plan, Buffer.from([]))).toBe("body ends inside a varint at byte 0");
    expect(checkAvroBounds(plan, Buffer.from([0, 2, 1, 2, 3]))).toBe(
      "block of 1 items at byte 1 cannot fit in the 3 bytes left (8 or more each)",
    );
    const { plan: doubles } = planOf("double");
    expect(checkAvroBounds(doubles, Buffer.alloc(7))).toBe("body ends inside a 8-byte value at byte 0");
  });

  it("refuses union and enum indexes out of range", () => {
    const { plan: union } = planOf(["null", "string"]);
    expect(checkAvroBounds(union, Buffer.from([4]))).toBe(
      "union index 2 at byte 0 out of range (2 branches)",
    );
    expect(checkAvroBounds(union, Buffer.from([1]))).toBe(
      "union index -1 at byte 0 out of range (2 branches)",
    );
    const { plan: colours } = planOf({ type: "enum", name: "C", symbols: ["A", "B"] });
    expect(checkAvroBounds(colours, Buffer.from([4]))).toBe(
      "enum index 2 at byte 0 out of range (2 symbols)",
    );
  });

  it("refuses any body of a record that contains itself through records only", () => {
    const { plan: loop } = planOf({
      type: "record",
      name: "A",
      fields: [{ name: "b", type: { type: "record", name: "B", fields: [{ name: "a", type: "A" }] } }],
    });
    expect(checkAvroBounds(loop, Buffer.from([1, 2, 3]))).toBe(
      "record A contains itself: no value of it can be encoded",
    );
  });

  it("refuses a body that reaches a type it does not know, and compiles nothing that is not an avsc type", () => {
    const strange = { typeName: "quantum", fromBuffer: () => null };
    const plan = compileAvroBounds(strange);
    expect(plan).toBeDefined();
    if (plan)
      expect(checkAvroBounds(plan, Buffer.from([0]))).toBe(
        "Avro type quantum is not known to the size check",
      );
    // The registry client's JSON Schema and Protobuf schemas: not decoded by avsc, nothing to check.
    expect(compileAvroBounds({ validate: () => true })).toBeUndefined();
    expect(compileAvroBounds(undefined)).toBeUndefined();
    expect(compileAvroBounds("string")).toBeUndefined();
  });
});

describe("checkAvroBounds: valid bodies", () => {
  it("passes every value avsc writes, for every kind of schema", () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const { type, plan } = planOf(schema);
      for (let k = 0; k < 200; k++) {
        expect(checkAvroBounds(plan, type.toBuffer(sampleOf(name, type, k))), name).toBeUndefined();
      }
    }
  });

  it("passes blocks with negative counts and a byte size, as other writers (Java) encode them", () => {
    const { type, plan } = planOf({ type: "array", items: "long" });
    // Block of -2 items, 2 bytes: 1, 2; then a block of 1 item: 3; then the end.
    const body = Buffer.from([3, 4, 2, 4, 2, 6, 0]);
    expect(checkAvroBounds(plan, body)).toBeUndefined();
    expect(type.fromBuffer(body)).toEqual([1, 2, 3]);
  });

  it("walks a deeply nested value without recursion", () => {
    const { plan } = planOf(SCHEMAS.list as AvroSchema);
    // 200_000 nodes (value 1, then union branch 1 for the next node), then value 1 and null.
    const body = Buffer.alloc(200_000 * 2 + 2, 2);
    body[body.length - 1] = 0;
    expect(checkAvroBounds(plan, body)).toBeUndefined();
  });

  it("leaves trailing bytes and values avsc refuses to avsc", () => {
    const { type, plan } = planOf(FEATURE_EVENT);
    const body = Buffer.concat([type.toBuffer({ store_id: "CA_1", features: [1, 2] }), Buffer.from([1, 2])]);
    expect(checkAvroBounds(plan, body)).toBeUndefined();
    expect(() => type.fromBuffer(body)).toThrow("trailing data");
  });

  it("never lets through a body avsc takes long to read: random bytes and mutated values of every schema", () => {
    const types = Object.entries(SCHEMAS).map(([name, schema]) => ({ name, ...planOf(schema) }));
    fc.assert(
      fc.property(
        fc.nat(types.length - 1),
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }).map((bytes) => ({ bytes, flips: [] as [number, number][] })),
          fc.record({
            bytes: fc.constant(new Uint8Array()),
            flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
          }),
        ),
        fc.nat(),
        (index, { bytes, flips }, cut) => {
          const { name, type, plan } = types[index] as (typeof types)[number];
          let body = Buffer.from(bytes);
          if (flips.length > 0 || body.length === 0) {
            body = Buffer.from(type.toBuffer(sampleOf(name, type, cut)));
            for (const [at, byte] of flips) if (body.length > 0) body[at % body.length] = byte;
            body = body.subarray(0, body.length - (cut % 3));
          }
          if (checkAvroBounds(plan, body) !== undefined) return;
          // Passed: avsc reads it (or refuses it) at once. Safe to run here, on the test's thread.
          const started = performance.now();
          try {
            type.fromBuffer(body);
          } catch {
            // Truncated, trailing data, bad values: avsc's to report.
          }
          expect(performance.now() - started).toBeLessThan(100);
        },
      ),
      { seed: 0xa7_b0, numRuns: 3_000 },
    );
  });
});
