/**
 * A cheap check of an Avro binary body against its writer's schema, run before the body reaches avsc.
 *
 * avsc trusts the counts and lengths it reads: an array block count is used as `new Array(n)` and looped over
 * n times before the end of the buffer is noticed, so 10 bytes declaring 34 million doubles (or 6 bytes
 * declaring 2^31) hold the consumer's thread for seconds, or exhaust its heap, before "truncated buffer". The
 * registry client decodes on the consumer's thread, and a crash would repeat on every redelivery.
 *
 * This walks the encoding the way avsc reads it, without building values, and refuses a body as soon as a
 * count or a length claims more than the bytes left can hold:
 *
 * - a string or bytes length larger than the bytes left (or negative);
 * - an array or map block count larger than the bytes left divided by the fewest bytes one item takes
 *   (1 for most types, 8 for a double, the sum of its fields for a record, ...);
 * - items that take no bytes at all (null, fixed(0), records of those): at most ZERO_WIDTH_ITEMS_PER_BYTE
 *   per byte of the body (plus ZERO_WIDTH_ITEMS_FREE), over the whole body. This is the one rule that can
 *   refuse a body avsc would read (a million nulls fit in 4 bytes); no real event is shaped like that, and
 *   the work avsc does stays linear in the body's size;
 * - a union or enum index out of range, a body that ends inside a value, and a record that contains itself
 *   through records only (no value of it is finite);
 * - an avsc type this module does not know, if the body reaches it: its size cannot be bounded.
 *
 * Apart from the items that take no bytes, everything refused here is a body avsc refuses too (sooner or
 * later): this only makes sure it is refused before the work starts. What passes is read by avsc in time
 * linear in the body's size: the walk is avsc's own, within bounds everywhere. Every other problem (trailing
 * bytes, values avsc refuses) is left to avsc to report. The walk is iterative, so a deeply nested value
 * cannot overflow the stack here.
 */

/** Node kinds of a compiled schema. */
const FIXED = 0;
const VARINT = 1;
const ENUM = 2;
const LENGTH = 3;
const RECORD = 4;
const UNION = 5;
const ARRAY = 6;
const MAP = 7;
const UNKNOWN = 8;

interface SchemaNode {
  kind: number;
  /** Fewest bytes a value takes: a lower bound (0 while a recursive type is still being compiled). */
  min: number;
  /** Bytes every value takes, or -1 when values differ in size. */
  width: number;
  /** Fields of a record, branches of a union, the items of an array or the values of a map. */
  children: SchemaNode[];
  /** Symbols of an enum. */
  symbols: number;
  /** For details: the record's name, or the unknown type's name. */
  name: string;
  /** A record that contains itself through records only. */
  infinite: boolean;
}

/** Items that take no bytes, allowed over a whole body: this many per byte of it, plus ZERO_WIDTH_ITEMS_FREE. */
const ZERO_WIDTH_ITEMS_PER_BYTE = 8;
const ZERO_WIDTH_ITEMS_FREE = 1024;

/** A writer schema compiled for checkAvroBounds. Build once per schema (id), reuse for every body. */
export interface AvroBoundsPlan {
  readonly root: SchemaNode;
  /** Nodes and fields in the schema: bounds the walk's steps per byte. */
  readonly size: number;
}

function node(kind: number, min: number, width: number): SchemaNode {
  return { kind, min, width, children: [], symbols: 0, name: "", infinite: false };
}

/** What an avsc Type exposes (avsc 5: public properties of its classes). */
interface AvscLike {
  readonly typeName?: unknown;
  readonly fields?: unknown;
  readonly itemsType?: unknown;
  readonly valuesType?: unknown;
  readonly types?: unknown;
  readonly size?: unknown;
  readonly symbols?: unknown;
  readonly underlyingType?: unknown;
  readonly name?: unknown;
}

function isObject(value: unknown): value is AvscLike {
  return value !== null && typeof value === "object";
}

/**
 * Compiles the writer's schema as the registry client returns it: an avsc Type. Undefined for anything else
 * (the client's JSON Schema and Protobuf schemas are not decoded by avsc: nothing to bound here).
 */
export function compileAvroBounds(schema: unknown): AvroBoundsPlan | undefined {
  if (!isObject(schema) || typeof schema.typeName !== "string") return undefined;
  if (typeof (schema as { fromBuffer?: unknown }).fromBuffer !== "function") return undefined;
  const compiled = new Map<object, SchemaNode>();
  const records: SchemaNode[] = [];
  let size = 0;

  function compile(type: unknown): SchemaNode {
    size += 1;
    if (!isObject(type)) return unknown("?");
    const known = compiled.get(type);
    if (known !== undefined) return known;
    const typeName = typeof type.typeName === "string" ? type.typeName : "?";
    switch (typeName) {
      case "null":
        return remember(type, node(FIXED, 0, 0));
      case "boolean":
        return remember(type, node(FIXED, 1, 1));
      case "int":
      case "long":
      case "abstract:long":
        return remember(type, node(VARINT, 1, -1));
      case "float":
        return remember(type, node(FIXED, 4, 4));
      case "double":
        return remember(type, node(FIXED, 8, 8));
      case "string":
      case "bytes":
        return remember(type, node(LENGTH, 1, -1));
      case "fixed": {
        const bytes = type.size;
        if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes < 0) return unknown(typeName);
        return remember(type, node(FIXED, bytes, bytes));
      }
      case "enum": {
        if (!Array.isArray(type.symbols)) return unknown(typeName);
        const result = remember(type, node(ENUM, 1, -1));
        result.symbols = type.symbols.length;
        return result;
      }
      case "array":
      case "map": {
        const inner = typeName === "array" ? type.itemsType : type.valuesType;
        if (!isObject(inner)) return unknown(typeName);
        const result = remember(type, node(typeName === "array" ? ARRAY : MAP, 1, -1));
        result.children = [compile(inner)];
        return result;
      }
      case "union:unwrapped":
      case "union:wrapped": {
        if (!Array.isArray(type.types)) return unknown(typeName);
        const result = remember(type, node(UNION, 1, -1));
        result.children = type.types.map((branch: unknown) => compile(branch));
        result.min = 1 + Math.min(...result.children.map((c) => c.min));
        return result;
      }
      case "record":
      case "error": {
        if (!Array.isArray(type.fields)) return unknown(typeName);
        const result = remember(type, node(RECORD, 0, -1));
        result.name = typeof type.name === "string" ? type.name.slice(0, 60) : "(anonymous)";
        result.children = type.fields.map((field: unknown) =>
          compile(isObject(field) ? (field as { type?: unknown }).type : undefined),
        );
        // Until here this record counted as 0 bytes (and of no fixed size) for the recursive types inside
        // it: a lower bound. A record on a cycle is therefore never of fixed size.
        result.min = result.children.reduce((sum, c) => sum + c.min, 0);
        records.push(result);
        if (result.children.every((c) => c.width >= 0)) {
          result.kind = FIXED;
          result.width = result.min;
        }
        return result;
      }
      default: {
        if (typeName.startsWith("logical:") && isObject(type.underlyingType)) {
          // Encoded as its underlying type.
          return compile(type.underlyingType);
        }
        return unknown(typeName);
      }
    }

    function remember(key: object, value: SchemaNode): SchemaNode {
      compiled.set(key, value);
      return value;
    }
  }

  function unknown(typeName: string): SchemaNode {
    const result = node(UNKNOWN, 0, -1);
    result.name = typeName.slice(0, 40);
    return result;
  }

  const root = compile(schema);
  // A record that reaches itself through record fields only (no union, array or map on the way, which could
  // end the recursion) has no finite value: avsc would recurse until the stack overflows.
  for (const record of records) {
    if (record.kind !== RECORD) continue;
    const seen = new Set<SchemaNode>();
    const next = record.children.filter((c) => c.kind === RECORD);
    while (next.length > 0) {
      const current = next.pop() as SchemaNode;
      if (current === record) {
        record.infinite = true;
        break;
      }
      if (seen.has(current)) continue;
      seen.add(current);
      for (const c of current.children) if (c.kind === RECORD) next.push(c);
    }
  }
  return { root, size };
}

/** An array or map being read: its node and how many items of the current block are left. */
interface Continuation {
  readonly block: SchemaNode;
  left: number;
}

/**
 * Checks an Avro binary body (the bytes after the Confluent header) against a compiled writer schema.
 * Undefined when avsc can be given it; otherwise why not, in a short sentence with no byte of the payload.
 */
export function checkAvroBounds(plan: AvroBoundsPlan, body: Uint8Array): string | undefined {
  const end = body.length;
  let pos = 0;
  let zeroWidthLeft = ZERO_WIDTH_ITEMS_FREE + ZERO_WIDTH_ITEMS_PER_BYTE * end;
  let problem: string | undefined;
  // Never reached by a schema compileAvroBounds accepts (see the module comment): a guard, not a rule.
  let steps = (end + 1) * (plan.size + 1) * 4;

  /**
   * A zigzag varint, read exactly as avsc reads it (Tap.readLong), so that both agree on every value: past
   * 28 bits in floating point, with no limit on its length (what no writer emits, avsc reads anyway: ten
   * 0x80 bytes then 0x00 is 0, a longer run of continuation bytes can make it NaN). NaN, with `problem` set,
   * when the body ends inside it.
   */
  function readLong(): number {
    const at = pos;
    let n = 0;
    let k = 0;
    let b = 0;
    do {
      if (pos >= end) return fail(`body ends inside a varint at byte ${at}`);
      b = body[pos++] as number;
      n |= (b & 0x7f) << k;
      k += 7;
    } while (b & 0x80 && k < 28);
    if ((b & 0x80) === 0) return (n >> 1) ^ -(n & 1);
    let f = n;
    let fk = 268_435_456;
    do {
      if (pos >= end) return fail(`body ends inside a varint at byte ${at}`);
      b = body[pos++] as number;
      f += (b & 0x7f) * fk;
      fk *= 128;
    } while (b & 0x80);
    return (f % 2 ? -(f + 1) : f) / 2;
  }

  function fail(why: string): number {
    problem ??= why;
    return Number.NaN;
  }

  /**
   * A block's item count, checked against what the bytes left can hold; 0 ends the array or map (as does
   * NaN, for avsc). A negative count is followed by the block's size in bytes, which avsc skips unread.
   */
  function readBlockCount(block: SchemaNode): number {
    const at = pos;
    let count = readLong();
    if (problem !== undefined || Number.isNaN(count) || count === 0) return 0;
    if (count < 0) {
      count = -count;
      readLong();
      if (problem !== undefined) return 0;
    }
    const items = block.kind === ARRAY ? "items" : "entries";
    // A map entry is a key (a string: at least its length byte) and a value.
    const inner = block.children[0] as SchemaNode;
    const min = block.kind === ARRAY ? inner.min : 1 + inner.min;
    if (min === 0) {
      zeroWidthLeft -= count;
      if (zeroWidthLeft < 0) {
        fail(
          `more ${items} taking no bytes (block of ${count} at byte ${at}) than a body of ${end} bytes may hold`,
        );
        return 0;
      }
    } else if (count > (end - pos) / min) {
      fail(
        `block of ${count} ${items} at byte ${at} cannot fit in the ${end - pos} bytes left (${min} or more each)`,
      );
      return 0;
    }
    return count;
  }

  const stack: Array<SchemaNode | Continuation> = [plan.root];
  while (stack.length > 0 && problem === undefined) {
    if (--steps < 0) return "schema and body too intricate to check";
    const top = stack.pop() as SchemaNode | Continuation;
    if ("block" in top) {
      if (top.left === 0) {
        top.left = readBlockCount(top.block);
        if (top.left === 0) continue;
      }
      top.left -= 1;
      stack.push(top);
      stack.push(top.block.children[0] as SchemaNode);
      if (top.block.kind === MAP) stack.push(MAP_KEY);
      continue;
    }
    switch (top.kind) {
      case FIXED:
        if (top.width > end - pos) return `body ends inside a ${top.width}-byte value at byte ${pos}`;
        pos += top.width;
        break;
      case VARINT:
        readLong();
        break;
      case ENUM: {
        const at = pos;
        const index = readLong();
        if (problem === undefined && !(Number.isInteger(index) && index >= 0 && index < top.symbols)) {
          return `enum index ${index} at byte ${at} out of range (${top.symbols} symbols)`;
        }
        break;
      }
      case LENGTH: {
        const at = pos;
        const length = readLong();
        if (problem !== undefined) break;
        // Negative (or NaN): avsc marks its read invalid and ends with "truncated buffer".
        if (!(length >= 0)) return `invalid length ${length} at byte ${at}`;
        if (length > end - pos)
          return `length ${length} at byte ${at} is more than the ${end - pos} bytes left`;
        pos += length;
        break;
      }
      case RECORD:
        if (top.infinite) return `record ${top.name} contains itself: no value of it can be encoded`;
        for (let i = top.children.length - 1; i >= 0; i--) stack.push(top.children[i] as SchemaNode);
        break;
      case UNION: {
        const at = pos;
        const index = readLong();
        if (problem !== undefined) break;
        const branch = Number.isInteger(index) && index >= 0 ? top.children[index] : undefined;
        if (branch === undefined) {
          return `union index ${index} at byte ${at} out of range (${top.children.length} branches)`;
        }
        stack.push(branch);
        break;
      }
      case ARRAY:
      case MAP: {
        const inner = top.children[0] as SchemaNode;
        if (top.kind === ARRAY && inner.width >= 0) {
          // Items of one size (doubles, fixed, flat records): skip whole blocks at once.
          for (let count = readBlockCount(top); count > 0; count = readBlockCount(top)) {
            pos += count * inner.width;
          }
          break;
        }
        stack.push({ block: top, left: 0 });
        break;
      }
      default:
        return `Avro type ${top.name} is not known to the size check`;
    }
  }
  return problem;
}

/** A map's key: a string. */
const MAP_KEY: SchemaNode = node(LENGTH, 1, -1);
