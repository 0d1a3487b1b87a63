/** Settings of the batching policy (policy.ts): when a micro-batch is sealed. */
import { integer } from "../config/parsers.ts";
import { defineSettings, type OptionsOf } from "../config/spec.ts";

export const BATCH_SETTINGS = defineSettings({
  maxRecords: {
    env: "FC_BATCH_MAX_RECORDS",
    default: "1000",
    description: "A batch is sealed when it holds this many events",
    parser: integer(1, 1000000),
  },
  maxBytes: {
    env: "FC_BATCH_MAX_BYTES",
    default: "4194304",
    description: "A batch is sealed before its file would exceed this size",
    parser: integer(1024, 268435456),
  },
  maxWaitMs: {
    env: "FC_BATCH_MAX_WAIT_MS",
    default: "30000",
    description: "A batch is sealed this long after its first event at the latest",
    parser: integer(10, 3600000),
  },
});
export type BatchSettings = OptionsOf<typeof BATCH_SETTINGS>;
