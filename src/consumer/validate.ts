import type { FeatureRow } from "../types.ts";

/**
 * Why an event was rejected. Bounded set: it is a metric label and a dead-letter header, so a new
 * reason is a new entry here, never a free-form string.
 */
export type InvalidReason =
  | "empty_message"
  | "too_large"
  | "malformed_json"
  | "not_an_object"
  | "invalid_store_id"
  | "invalid_features"
  | "wrong_feature_count"
  | "non_finite_feature"
  /** The Avro path: the schema registry decoder refused the payload. */
  | "schema_decode_failed";

export type Validation =
  | { readonly ok: true; readonly row: FeatureRow }
  /** `detail` is a short message for humans (logs, dead-letter header); it never echoes the payload. */
  | { readonly ok: false; readonly reason: InvalidReason; readonly detail: string };

export interface EventValidatorOptions {
  /** Number of values `features` must hold: the model's input size. Default 13 (the guide's example). */
  readonly featureCount?: number;
  /** Longest store_id accepted, in UTF-16 code units after trimming. Default 64. */
  readonly maxStoreIdLength?: number;
  /**
   * Largest message value accepted, in bytes. Default 65536. Keeps one event from dominating a batch's
   * byte budget and bounds what JSON.parse is asked to chew on.
   */
  readonly maxMessageBytes?: number;
}

export interface EventValidator {
  /** Decodes a Kafka message value (UTF-8 JSON) and validates it. Never throws. */
  validateBytes(value: Buffer | null): Validation;
  /** Validates an already decoded value (JSON or Avro). Never throws. */
  validateObject(obj: unknown): Validation;
}

/**
 * Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: a store_id travels into the
 * batch file and comes back in a line of predictions.csv, where any of these would break the line.
 */
const FORBIDDEN_IN_STORE_ID = /[\p{Cc}\u2028\u2029]/u;
/**
 * The endpoint writes predictions.csv space-delimited (the guide's format): a store_id with whitespace in it
 * could never be matched back to its event, so it is refused up front with a clear reason.
 */
const WHITESPACE = /\s/u;

function invalid(reason: InvalidReason, detail: string): Validation {
  return { ok: false, reason, detail };
}

/** The kind of a value, for details: never the value itself. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  const type = typeof value;
  return type === "object" ? "an object" : `a ${type}`;
}

function optionalPositiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export function createEventValidator(options: EventValidatorOptions = {}): EventValidator {
  const featureCount = optionalPositiveInteger("featureCount", options.featureCount, 13);
  const maxStoreIdLength = optionalPositiveInteger("maxStoreIdLength", options.maxStoreIdLength, 64);
  const maxMessageBytes = optionalPositiveInteger("maxMessageBytes", options.maxMessageBytes, 65_536);
  // fatal: invalid UTF-8 is rejected rather than silently turned into U+FFFD inside a store_id.
  const decoder = new TextDecoder("utf-8", { fatal: true });

  function checkObject(obj: unknown): Validation {
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
      return invalid("not_an_object", `expected a JSON object, got ${describe(obj)}`);
    }
    const record = obj as Record<string, unknown>;

    const rawStoreId = record.store_id;
    if (typeof rawStoreId !== "string") {
      return invalid("invalid_store_id", `store_id must be a string, got ${describe(rawStoreId)}`);
    }
    const storeId = rawStoreId.trim();
    if (storeId.length === 0) return invalid("invalid_store_id", "store_id is empty");
    if (storeId.length > maxStoreIdLength) {
      return invalid(
        "invalid_store_id",
        `store_id has ${storeId.length} characters, at most ${maxStoreIdLength}`,
      );
    }
    if (FORBIDDEN_IN_STORE_ID.test(storeId)) {
      return invalid("invalid_store_id", "store_id contains a control character");
    }
    if (WHITESPACE.test(storeId)) {
      return invalid(
        "invalid_store_id",
        "store_id contains whitespace, which predictions.csv uses as its delimiter",
      );
    }
    // A JSON escape can carry half a surrogate pair ("\ud800"): no UTF-8 file can hold it, so the row could
    // never come back in predictions.csv (it would return as U+FFFD).
    if (!storeId.isWellFormed()) {
      return invalid("invalid_store_id", "store_id contains a lone surrogate (not well-formed UTF-16)");
    }

    const rawFeatures = record.features;
    if (!Array.isArray(rawFeatures)) {
      return invalid("invalid_features", `features must be an array, got ${describe(rawFeatures)}`);
    }
    if (rawFeatures.length !== featureCount) {
      return invalid(
        "wrong_feature_count",
        `features has ${rawFeatures.length} values, expected ${featureCount}`,
      );
    }
    // Copy while checking: the row must not alias the caller's array (or a decoder's buffer).
    const features = new Array<number>(featureCount);
    for (let i = 0; i < featureCount; i++) {
      const value: unknown = rawFeatures[i];
      if (typeof value !== "number") {
        return invalid("invalid_features", `features[${i}] is ${describe(value)}, expected a number`);
      }
      if (!Number.isFinite(value)) {
        return invalid("non_finite_feature", `features[${i}] is ${String(value)}`);
      }
      features[i] = value;
    }
    return { ok: true, row: { store_id: storeId, features } };
  }

  function validateObject(obj: unknown): Validation {
    try {
      return checkObject(obj);
    } catch {
      // Only reachable with exotic objects (throwing getters, revoked proxies) from a decoder.
      return invalid("not_an_object", "fields could not be read");
    }
  }

  function validateBytes(value: Buffer | null): Validation {
    if (value === null || value === undefined || value.length === 0) {
      return invalid("empty_message", "message value is empty");
    }
    if (value.length > maxMessageBytes) {
      return invalid("too_large", `message value has ${value.length} bytes, at most ${maxMessageBytes}`);
    }
    let text: string;
    try {
      text = decoder.decode(value);
    } catch {
      return invalid("malformed_json", "message value is not valid UTF-8");
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      // V8's message quotes part of the payload; keep only the position it names, if any.
      const position = error instanceof Error ? /position (\d+)/.exec(error.message)?.[1] : undefined;
      return invalid(
        "malformed_json",
        `message value is not JSON${position ? ` (at position ${position})` : ""}`,
      );
    }
    return validateObject(parsed);
  }

  return Object.freeze({ validateBytes, validateObject });
}
