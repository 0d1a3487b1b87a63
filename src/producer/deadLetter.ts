import type { IHeaders } from "kafkajs";
import type { InvalidReason } from "../consumer/validate.ts";
import type { SourceRef } from "../types.ts";

/**
 * Why a record went to the dead-letter topic. Bounded: it is a metric label and a header consumers filter on.
 * Invalid events carry their validation reason; the others come from the job's life.
 */
export type DeadLetterReason = InvalidReason | "missing_prediction" | "job_failed";

/** One record for the dead-letter topic: the original key and bytes, and headers saying why and whence. */
export interface DeadLetter {
  readonly source: SourceRef;
  readonly reason: DeadLetterReason;
  readonly detail: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly originalHeaders?: IHeaders;
  /** Set when value is the first bytes only of an event too large to republish whole: its original size. */
  readonly truncatedFromBytes?: number;
  readonly jobId?: string;
  readonly batchId?: string;
}

/** Header names on dead-letter records. */
export const DLQ_HEADERS = {
  reason: "dlq.reason",
  detail: "dlq.detail",
  sourceTopic: "dlq.source.topic",
  sourcePartition: "dlq.source.partition",
  sourceOffset: "dlq.source.offset",
  sourceTimestamp: "dlq.source.timestamp",
  failedAt: "dlq.failed.at",
  jobId: "dlq.job.id",
  batchId: "dlq.batch.id",
  truncatedFromBytes: "dlq.value.truncated.from.bytes",
  originalHeadersDropped: "dlq.original.headers.dropped",
} as const;

export function deadLetterHeaders(letter: DeadLetter, failedAt: Date): IHeaders {
  return {
    // The event's own headers travel along; ours win on a clash.
    ...letter.originalHeaders,
    [DLQ_HEADERS.reason]: letter.reason,
    [DLQ_HEADERS.detail]: letter.detail,
    [DLQ_HEADERS.sourceTopic]: letter.source.topic,
    [DLQ_HEADERS.sourcePartition]: String(letter.source.partition),
    [DLQ_HEADERS.sourceOffset]: letter.source.offset,
    [DLQ_HEADERS.sourceTimestamp]: String(letter.source.timestampMs),
    [DLQ_HEADERS.failedAt]: failedAt.toISOString(),
    ...(letter.jobId ? { [DLQ_HEADERS.jobId]: letter.jobId } : {}),
    ...(letter.batchId ? { [DLQ_HEADERS.batchId]: letter.batchId } : {}),
    ...(letter.truncatedFromBytes !== undefined
      ? { [DLQ_HEADERS.truncatedFromBytes]: String(letter.truncatedFromBytes) }
      : {}),
  };
}

/** Default bound of one dead-letter record: the broker's default message.max.bytes (1 MiB) less a margin. */
export const DEFAULT_DEAD_LETTER_MAX_BYTES = 1024 * 1024 - 4096;

/** What a record costs against message.max.bytes, roughly: key, value, headers, and a margin for framing. */
function recordBytes(key: Buffer | string | null, value: Buffer | null, headers: IHeaders): number {
  let size = 128 + (key === null ? 0 : Buffer.byteLength(key)) + (value?.length ?? 0);
  for (const [name, header] of Object.entries(headers)) {
    size += Buffer.byteLength(name) + 8;
    const values = Array.isArray(header) ? header : [header];
    for (const v of values)
      size += v === undefined ? 0 : Buffer.isBuffer(v) ? v.length : Buffer.byteLength(String(v));
  }
  return size;
}

/**
 * A dead letter as a Kafka record that always fits in `maxBytes`: if the event's own headers and bytes do
 * not fit beside ours, the original headers are dropped first (their count in a header), then the value is
 * cut (its original size in a header), so a dead letter can never be refused for its size and stall its
 * partition (docs/architecture.md, "Retries").
 */
export function deadLetterMessage(
  letter: DeadLetter,
  failedAt: Date,
  maxBytes: number = DEFAULT_DEAD_LETTER_MAX_BYTES,
): { key: Buffer | null; value: Buffer | null; headers: IHeaders; timestamp: string } {
  let fitted = letter;
  let headers = deadLetterHeaders(fitted, failedAt);
  const hasOriginalHeaders =
    letter.originalHeaders !== undefined && Object.keys(letter.originalHeaders).length > 0;
  if (recordBytes(letter.key, letter.value, headers) > maxBytes && hasOriginalHeaders) {
    const { originalHeaders, ...rest } = letter;
    fitted = rest;
    headers = {
      ...deadLetterHeaders(fitted, failedAt),
      [DLQ_HEADERS.originalHeadersDropped]: String(Object.keys(originalHeaders ?? {}).length),
    };
  }
  const overflow = recordBytes(fitted.key, fitted.value, headers) - maxBytes;
  if (overflow > 0 && fitted.value !== null) {
    const keep = Math.max(0, fitted.value.length - overflow - 64);
    fitted = {
      ...fitted,
      value: fitted.value.subarray(0, keep),
      truncatedFromBytes: letter.truncatedFromBytes ?? letter.value?.length ?? 0,
    };
    headers = {
      ...deadLetterHeaders(fitted, failedAt),
      ...(headers[DLQ_HEADERS.originalHeadersDropped] !== undefined
        ? { [DLQ_HEADERS.originalHeadersDropped]: headers[DLQ_HEADERS.originalHeadersDropped] }
        : {}),
    };
  }
  return { key: fitted.key, value: fitted.value, headers, timestamp: String(failedAt.getTime()) };
}
