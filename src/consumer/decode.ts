import type { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import type { EventValidator, Validation } from "./validate.ts";

/** The Confluent wire format starts with a zero "magic" byte, which no JSON text can start with. */
const CONFLUENT_MAGIC_BYTE = 0;

/**
 * The schema registry could not be asked (down, unreachable, throttling): not the event's fault, so it must
 * not be dead-lettered. The caller leaves the event unconsumed and tries again later.
 */
export class RegistryUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`schema registry unavailable: ${(cause as Error).message}`, { cause });
    this.name = "RegistryUnavailableError";
  }
}

/**
 * The registry client reports every HTTP failure as a ResponseError with a status, network errors included
 * (as status 400). Only "no such schema" (404) says the event itself is bad.
 */
function isRegistryOutage(error: unknown): boolean {
  const status = (error as { status?: unknown }).status;
  return (error as Error).name === "ResponseError" && typeof status === "number" && status !== 404;
}

/** The registry client has no timeout of its own: a black-holed registry would hold the fetch handler. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RegistryUnavailableError(new Error(`no answer within ${ms} ms`))),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface EventDecoder {
  /**
   * JSON or Avro (Confluent wire format, recognised by its magic byte) to a validated row. Throws only
   * RegistryUnavailableError; every problem of the event itself is a Validation with its reason.
   */
  decode(value: Buffer | null): Promise<Validation>;
}

export function createEventDecoder(options: {
  readonly schemaRegistry: Pick<SchemaRegistry, "decode">;
  readonly validator: EventValidator;
  readonly maxMessageBytes: number;
  /**
   * Longest wait for the registry (only on a schema id's first use): the fetch handler must return well
   * within the session timeout. Default 5 s; past it the event is left for the next fetch.
   */
  readonly registryTimeoutMs?: number;
}): EventDecoder {
  return {
    async decode(value) {
      const isAvro = value !== null && value.length >= 5 && value[CONFLUENT_MAGIC_BYTE] === 0;
      if (!isAvro || value.length > options.maxMessageBytes) return options.validator.validateBytes(value);
      let decoded: unknown;
      try {
        // The registry client caches schemas by id: only the first event of a schema costs a request.
        decoded = await withTimeout(options.schemaRegistry.decode(value), options.registryTimeoutMs ?? 5000);
      } catch (error) {
        if (error instanceof RegistryUnavailableError) throw error;
        if (isRegistryOutage(error)) throw new RegistryUnavailableError(error);
        return {
          ok: false,
          reason: "schema_decode_failed",
          detail:
            `Avro event (schema id ${value.readInt32BE(1)}) could not be decoded: ${(error as Error).message}`.slice(
              0,
              300,
            ),
        };
      }
      return options.validator.validateObject(decoded);
    },
  };
}
