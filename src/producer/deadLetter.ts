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
