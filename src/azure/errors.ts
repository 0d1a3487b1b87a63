/**
 * The service's error body, as Azure ML and ARM write it: `{"error": {"code", "message", "details": [...]}}`,
 * details being errors of the same shape (often with a `target`). Kept whole so that logs and dead letters
 * say what the service said (docs/endpoint-contract.md, "Errors").
 */
export interface ServiceErrorBody {
  readonly code?: string;
  readonly message?: string;
  readonly target?: string;
  readonly details?: readonly ServiceErrorBody[];
}

/** Nesting and entries kept from a body: enough for a person, bounded for a Kafka header. */
const MAX_DEPTH = 3;
const MAX_DETAILS = 10;
const MAX_TEXT = 2000;

/** Reads an error body defensively: only string fields are kept, depth and breadth bounded. */
export function readServiceError(raw: unknown, depth = 0): ServiceErrorBody | undefined {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  const object = raw as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === "string" ? value.slice(0, MAX_TEXT) : undefined);
  const code = text(object.code);
  const message = text(object.message);
  const target = text(object.target);
  const details =
    depth < MAX_DEPTH && Array.isArray(object.details)
      ? object.details
          .slice(0, MAX_DETAILS)
          .map((detail) => readServiceError(detail, depth + 1))
          .filter((detail): detail is ServiceErrorBody => detail !== undefined)
      : [];
  if (code === undefined && message === undefined && details.length === 0) return undefined;
  return {
    ...(code !== undefined ? { code } : {}),
    ...(message !== undefined ? { message } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(details.length > 0 ? { details } : {}),
  };
}

/**
 * One line for logs and the dead-letter detail: `Code: message (target) [details: Code: message; ...]`.
 * Bounded: the dead-letter topic's record size caps what a header may hold.
 */
export function describeServiceError(error: ServiceErrorBody, maxLength = 1500): string {
  const one = (e: ServiceErrorBody): string => {
    const head = [e.code, e.message].filter((part) => part !== undefined && part !== "").join(": ");
    const target = e.target ? ` (${e.target})` : "";
    const details = e.details?.length ? ` [details: ${e.details.map(one).join("; ")}]` : "";
    return `${head || "error"}${target}${details}`;
  };
  const line = one(error);
  return line.length > maxLength ? `${line.slice(0, maxLength - 1)}…` : line;
}

/**
 * Errors the endpoint client raises. `retriable` tells the caller whether trying the same operation again
 * later can succeed (kafkajs-style); transport-level retries have already been made by the pipeline.
 */
export class EndpointError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  /** The service's error body, when it sent one. */
  readonly serviceError: ServiceErrorBody | undefined;
  readonly retriable: boolean;

  constructor(
    message: string,
    options: {
      status?: number;
      code?: string;
      serviceError?: ServiceErrorBody;
      retriable: boolean;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "EndpointError";
    this.status = options.status;
    this.code = options.code;
    this.serviceError = options.serviceError;
    this.retriable = options.retriable;
  }
}
