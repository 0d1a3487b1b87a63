import { defineConfig } from "vitest/config";
import { DEFAULT_TEST_LOG_LEVEL } from "./test/helpers/expectedNoise.ts";

export default defineConfig({
  test: {
    env: {
      // Test producers use kafkajs's default partitioner knowingly: no need to be told at each one.
      KAFKAJS_NO_PARTITIONER_WARNING: "1",
      // The connector's logger in the harness (test/helpers/connectorHarness.ts) logs at this level: the
      // deliberate fault tests' errors stay out of a green run unless asked for (FC_TEST_LOG_LEVEL=warn).
      FC_TEST_LOG_LEVEL: process.env.FC_TEST_LOG_LEVEL || DEFAULT_TEST_LOG_LEVEL,
    },
    // Drops kafkajs's TimeoutNegativeWarning (only that warning) and the test clients' kafkajs log lines below
    // FC_TEST_LOG_LEVEL.
    setupFiles: ["test/helpers/expectedNoise.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Finds (or starts) Kafka, the schema registry and Azurite once for all integration files, and says
          // which: FC_TEST_* variables, the local stack, or containers (FC_TEST_SERVICES=local|containers).
          globalSetup: ["test/helpers/globalSetup.ts"],
          testTimeout: 120_000,
          hookTimeout: 240_000,
          // One broker on two cores: files run one after another so timings stay honest.
          fileParallelism: false,
        },
      },
    ],
  },
});
