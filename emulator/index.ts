/** The Azure ML batch endpoint emulator: a local stand-in for tests, the demo and benchmarks. See README.md. */
export type { JobFaultPlan, RequestFaultDecision, RequestKind } from "./faults.ts";
export { DEFAULT_JOB_ERROR } from "./faults.ts";
export { formatPrediction, predict, round8 } from "./formula.ts";
export type { ApiFlavor, InputType, JobError, JobSnapshot } from "./jobs.ts";
export type {
  ArmWorkspace,
  EmulatorApi,
  EmulatorFaults,
  EmulatorOptions,
  FailJobsFault,
  FaultFrequency,
  FaultTarget,
  JobErrorBody,
  MalformedRowsFault,
  MissingRowsFault,
  OutputDelimiter,
  OutputShape,
  RequestFault,
  StatusJourneyFault,
  ThrottleFault,
} from "./options.ts";
export { DEFAULT_STATUS_JOURNEY, EMULATOR_DEFAULTS, validateFaults } from "./options.ts";
export { createEmulator, type Emulator } from "./server.ts";
