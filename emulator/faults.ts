/**
 * Decides which request and which job gets which fault. Counts are "the next N" (deterministic); once a count is used
 * up, a rate fires with that probability per request/job, drawn from a PRNG seeded per fault kind, so runs repeat.
 * Replacing the faults resets counters and PRNG streams: what happens after `setFaults` depends only on the seed, the
 * faults and the requests that follow.
 */
import type {
  EmulatorApi,
  EmulatorFaults,
  FaultFrequency,
  FaultTarget,
  JobErrorBody,
  MissingRowsFault,
  OutputShape,
  RequestFault,
} from "./options.ts";
import { DEFAULT_STATUS_JOURNEY, validateFaults } from "./options.ts";
import { createRandom, deriveSeed, type Random } from "./prng.ts";

/** The request kinds faults can target: POST /jobs, GET /jobs/{name}, and the ARM job GET and cancel. */
export type RequestKind = Exclude<FaultTarget, "any" | "arm">;

/** Which API a request kind belongs to: what an audience-aware token check needs to know. */
export function apiOf(kind: RequestKind): EmulatorApi {
  return kind === "arm_status" || kind === "arm_cancel" ? "arm" : "data-plane";
}

/**
 * What a failed scoring run reports, as batch jobs do when the user's script raises: a UserError saying the
 * process exited, with details naming the script.
 */
export const DEFAULT_JOB_ERROR: JobErrorBody = Object.freeze({
  code: "UserError",
  message:
    "Execution failed. User process 'python' exited with status code 1. Please check log file 'user_logs/std_log.txt' for error details. Error: RuntimeError: emulated scoring failure (failJobs fault)",
  details: Object.freeze([
    Object.freeze({
      code: "ScriptExecution.UserProcessExited",
      message: "The scoring script's run() raised: RuntimeError: emulated scoring failure",
      target: "score.py",
    }),
  ]),
});

export type RequestFaultDecision =
  | { readonly type: "dropConnection" }
  | { readonly type: "throttle"; readonly retryAfterSeconds: number }
  | { readonly type: "serverError" };

/** The faults one job was given when it was created; recorded in its snapshot. */
export interface JobFaultPlan {
  readonly outcome: "complete" | "fail" | "stuck";
  /** With outcome "fail": the error body the job reports. */
  readonly error?: JobErrorBody;
  /** Statuses reported before the end (statusJourney fault), in order. */
  readonly journey?: readonly string[];
  readonly missingRows?: MissingRowsFault;
  readonly malformedRows?: number;
  readonly outputShape?: OutputShape;
  /** Seed of this job's row-level draws (missing rows at a rate, shuffles): scoring it twice gives one result. */
  readonly rowSeed: number;
}

export interface FaultDecider {
  /** The faults now in force. */
  current(): EmulatorFaults;
  /** Replaces all faults (validated), resetting counters and PRNG streams. */
  set(faults: unknown): void;
  /** The fault, if any, for an endpoint request about to be handled. At most one fires; see PRIORITY. */
  decideRequest(kind: RequestKind): RequestFaultDecision | undefined;
  /** Whether the response to a successful submit is lost (the job exists all the same). */
  decideLoseSubmitResponse(): boolean;
  /** The job-level faults of a job being created. */
  decideJob(): JobFaultPlan;
}

/** Kinds of request fault in the order they are tried: the first that fires wins and the others keep their counts. */
const PRIORITY = ["dropConnection", "throttle", "serverError"] as const;

interface Counter {
  remaining: number;
  readonly rate: number;
  readonly random: Random;
}

export function createFaultDecider(initial: EmulatorFaults, seed: number): FaultDecider {
  let faults: EmulatorFaults = validateFaults(initial);
  let counters = new Map<string, Counter>();
  let jobSequence = 0;

  function reset(): void {
    counters = new Map();
    for (const kind of Object.keys(faults) as (keyof EmulatorFaults)[]) {
      const f = faults[kind] as (FaultFrequency & { rate?: number }) | undefined;
      counters.set(kind, {
        remaining: typeof f?.count === "number" ? f.count : 0,
        rate: typeof f?.rate === "number" ? f.rate : 0,
        random: createRandom(deriveSeed(seed, kind)),
      });
    }
  }

  /** Consumes one occurrence: first the count, then the rate. Draws from the PRNG only when a rate is set. */
  function fires(kind: string): boolean {
    const counter = counters.get(kind);
    if (counter === undefined) return false;
    if (counter.remaining > 0) {
      counter.remaining--;
      return true;
    }
    return counter.rate > 0 && counter.random() < counter.rate;
  }

  reset();

  return {
    current: () => faults,
    set(next) {
      faults = validateFaults(next);
      reset();
    },
    decideRequest(kind) {
      for (const name of PRIORITY) {
        const fault = faults[name] as RequestFault | undefined;
        if (fault === undefined) continue;
        const on = fault.on ?? "any";
        if (on !== "any" && on !== kind && !(on === "arm" && apiOf(kind) === "arm")) continue;
        if (!fires(name)) continue;
        if (name === "throttle") {
          return { type: "throttle", retryAfterSeconds: faults.throttle?.retryAfterSeconds ?? 1 };
        }
        return { type: name };
      }
      return undefined;
    },
    decideLoseSubmitResponse: () => fires("loseSubmitResponse"),
    decideJob() {
      jobSequence++;
      // A failing job is not also stuck: the stuck counter is only consumed by jobs that would otherwise finish.
      const outcome = fires("failJobs") ? "fail" : fires("stuckJobs") ? "stuck" : "complete";
      const plan: {
        outcome: JobFaultPlan["outcome"];
        error?: JobErrorBody;
        journey?: readonly string[];
        rowSeed: number;
        missingRows?: MissingRowsFault;
        malformedRows?: number;
        outputShape?: OutputShape;
      } = { outcome, rowSeed: deriveSeed(seed, `job-${jobSequence}`) };
      if (outcome === "fail") plan.error = faults.failJobs?.error ?? DEFAULT_JOB_ERROR;
      if (fires("statusJourney")) plan.journey = faults.statusJourney?.statuses ?? DEFAULT_STATUS_JOURNEY;
      if (faults.missingRows !== undefined) plan.missingRows = faults.missingRows;
      if (faults.malformedRows?.count) plan.malformedRows = faults.malformedRows.count;
      if (faults.outputShape !== undefined) plan.outputShape = faults.outputShape;
      return Object.freeze(plan);
    },
  };
}
