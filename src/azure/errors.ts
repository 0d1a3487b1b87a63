/**
 * Errors the endpoint client raises. `retriable` tells the caller whether trying the same operation again
 * later can succeed (kafkajs-style); transport-level retries have already been made by the pipeline.
 */
export class EndpointError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly retriable: boolean;

  constructor(
    message: string,
    options: { status?: number; code?: string; retriable: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = "EndpointError";
    this.status = options.status;
    this.code = options.code;
    this.retriable = options.retriable;
  }
}
