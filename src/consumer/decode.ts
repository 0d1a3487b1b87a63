import type { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import { type AvroBoundsPlan, checkAvroBounds, compileAvroBounds } from "./avroBounds.ts";
import type { EventValidator, Validation } from "./validate.ts";

/** The Confluent wire format starts with a zero "magic" byte, which no JSON text can start with. */
const CONFLUENT_MAGIC_BYTE = 0;

/**
 * The schema registry could not be asked (down, unreachable, throttling): not the event's fault, so it must
 * not be dead-lettered. The caller leaves the event unconsumed and tries again later.
 */
export class RegistryUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`schema registry unavailable: ${messageOf(cause)}`, { cause });
    this.name = "RegistryUnavailableError";
  }
}

/**
 * The registry client reports every HTTP failure as a ResponseError with a status, network errors included
 * (as status 400). Only "no such schema" (404) says the event itself is bad. Anything else thrown (an Error
 * of another kind, or not an Error at all: undefined, a string) is not an outage.
 */
function isRegistryOutage(error: unknown): boolean {
  if (error === null || (typeof error !== "object" && typeof error !== "function")) return false;
  try {
    const { name, status } = error as { name?: unknown; status?: unknown };
    return name === "ResponseError" && typeof status === "number" && status !== 404;
  } catch {
    return false;
  }
}

/** A thrown value's message, for a detail: whatever was thrown, without throwing. */
function messageOf(error: unknown): string {
  try {
    if (error !== null && (typeof error === "object" || typeof error === "function")) {
      const message = (error as { message?: unknown }).message;
      if (typeof message === "string") return message;
    }
    return String(error);
  } catch {
    return "an unprintable value was thrown";
  }
}

/**
 * One deadline for all the registry calls of an event. The registry client has no timeout of its own: a
 * black-holed registry would hold the fetch handler.
 */
function deadline(ms: number): {
  readonly race: <T>(promise: Promise<T>) => Promise<T>;
  readonly clear: () => void;
} {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RegistryUnavailableError(new Error(`no answer within ${ms} ms`))),
      ms,
    );
  });
  return {
    race: (promise) => Promise.race([promise, expired]),
    clear: () => clearTimeout(timer),
  };
}

export interface EventDecoder {
  /**
   * JSON or Avro (Confluent wire format, recognised by its magic byte) to a validated row. Throws only
   * RegistryUnavailableError; every problem of the event itself is a Validation with its reason.
   */
  decode(value: Buffer | null): Promise<Validation>;
  /**
   * The same, without a promise, for an event that needs no registry (JSON, or too large to decode):
   * undefined for one that does, which goes through decode. Optional: a decoder without it is always awaited.
   */
  decodeSync?(value: Buffer | null): Validation | undefined;
}

/**
 * What the decoder uses of the registry client. `getSchema` gives the writer's schema of an id, so that the
 * Avro body can be checked (src/consumer/avroBounds.ts) before the client's decode hands it to avsc; a client
 * without it (a test double) has its bodies decoded unchecked.
 */
export type EventDecoderRegistry = Pick<SchemaRegistry, "decode"> &
  Partial<Pick<SchemaRegistry, "getSchema">>;

/** Writer schemas compiled per schema id, at most this many (the oldest is forgotten first). */
const MAX_CACHED_SCHEMAS = 1_000;

export function createEventDecoder(options: {
  readonly schemaRegistry: EventDecoderRegistry;
  readonly validator: EventValidator;
  readonly maxMessageBytes: number;
  /**
   * Longest wait for the registry (only on a schema id's first use): the fetch handler must return well
   * within the session timeout. Default 5 s; past it the event is left for the next fetch.
   */
  readonly registryTimeoutMs?: number;
}): EventDecoder {
  const registry = options.schemaRegistry;
  /** By schema id: its compiled writer schema, or null when it is not an Avro schema (nothing to check). */
  const plans = new Map<number, AvroBoundsPlan | null>();

  function remember(schemaId: number, plan: AvroBoundsPlan | null): void {
    if (plans.size >= MAX_CACHED_SCHEMAS) {
      const oldest = plans.keys().next();
      if (oldest.done !== true) plans.delete(oldest.value);
    }
    plans.set(schemaId, plan);
  }

  function decodeFailed(schemaId: number, why: string): Validation {
    return {
      ok: false,
      reason: "schema_decode_failed",
      detail: `Avro event (schema id ${schemaId}) could not be decoded: ${why}`.slice(0, 300),
    };
  }

  const needsRegistry = (value: Buffer | null): value is Buffer =>
    value !== null &&
    value.length >= 5 &&
    value[CONFLUENT_MAGIC_BYTE] === 0 &&
    value.length <= options.maxMessageBytes;

  return {
    decodeSync(value) {
      return needsRegistry(value) ? undefined : options.validator.validateBytes(value);
    },
    async decode(value) {
      if (!needsRegistry(value)) return options.validator.validateBytes(value);
      const schemaId = value.readInt32BE(1);
      const registryDeadline = deadline(options.registryTimeoutMs ?? 5000);
      let decoded: unknown;
      try {
        let plan = plans.get(schemaId);
        if (plan === undefined && typeof registry.getSchema === "function") {
          // Cached by the client too: decode below asks it for the same schema and gets it without a request.
          plan = compileAvroBounds(await registryDeadline.race(registry.getSchema(schemaId))) ?? null;
          remember(schemaId, plan);
        }
        // avsc trusts the body's counts and lengths (10 bytes can make it allocate and loop for seconds, on
        // this thread): a body that claims more than it holds never reaches it.
        const problem = plan ? checkAvroBounds(plan, value.subarray(5)) : undefined;
        if (problem !== undefined) return decodeFailed(schemaId, problem);
        decoded = await registryDeadline.race(registry.decode(value));
      } catch (error) {
        if (error instanceof RegistryUnavailableError) throw error;
        if (isRegistryOutage(error)) throw new RegistryUnavailableError(error);
        return decodeFailed(schemaId, messageOf(error));
      } finally {
        registryDeadline.clear();
      }
      return options.validator.validateObject(decoded);
    },
  };
}
