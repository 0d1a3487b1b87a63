import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Test producers use kafkajs's default partitioner knowingly: no need to be told at each one.
    env: { KAFKAJS_NO_PARTITIONER_WARNING: "1" },
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Starts (or finds) Kafka, the schema registry and Azurite once for all integration files.
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
