/**
 * The statuses an Azure ML job can report, and what each means to the connector (docs/endpoint-contract.md,
 * "Job statuses"). Only Completed, Failed and Canceled end a job. Every other status, known or not, is waited
 * out under the job's timeout: NotResponding can recover, Paused and Scheduled can resume, CancelRequested
 * becomes Canceled, and a status the service adds later must not end (or hang) a batch.
 */
import type { KnownJobStatus } from "../types.ts";

/** Every status the service and its SDK document, in lifecycle order. */
export const KNOWN_JOB_STATUSES = [
  "NotStarted",
  "Scheduled",
  "Starting",
  "Provisioning",
  "Preparing",
  "Queued",
  "Running",
  "NotResponding",
  "Paused",
  "Finalizing",
  "CancelRequested",
  "Completed",
  "Failed",
  "Canceled",
  "Unknown",
] as const satisfies readonly KnownJobStatus[];

export const TERMINAL_JOB_STATUSES: ReadonlySet<string> = new Set(["Completed", "Failed", "Canceled"]);

const KNOWN: ReadonlySet<string> = new Set(KNOWN_JOB_STATUSES);

export function isKnownJobStatus(status: string): status is KnownJobStatus {
  return KNOWN.has(status);
}

export function isTerminalJobStatus(status: string): boolean {
  return TERMINAL_JOB_STATUSES.has(status);
}

/** A metric label for a status: the status itself when known, "other" otherwise (a bounded label set). */
export function jobStatusLabel(status: string): string {
  return KNOWN.has(status) ? status : "other";
}
