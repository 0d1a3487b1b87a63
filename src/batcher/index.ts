export { type Batcher, type BatcherOptions, createBatcher, type TimerHandle } from "./batcher.ts";
export {
  type BatchFilePlan,
  planBatchFiles,
  planBatchFilesStepwise,
  runSteps,
  serializeBatchFile,
  serializeBatchFileSlices,
} from "./files.ts";
export {
  memberAt,
  packMembers,
  packMembersStepwise,
  sourceAt,
  storeIdAt,
  unpackMembers,
} from "./members.ts";
export {
  type BatchPolicy,
  type BatchPolicyOptions,
  type BatchSize,
  batchSizeBytes,
  createBatchPolicy,
  EMPTY_BATCH,
  joinSerializedRows,
  rowSizeBytes,
  serializeBatch,
  serializeRow,
} from "./policy.ts";
