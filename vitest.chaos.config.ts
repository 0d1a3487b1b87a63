import { defineConfig } from "vitest/config";

/**
 * The chaos suite (`npm run test:chaos`, also run by .ci/run): the connector as real processes on the real
 * local stack, killed, stopped, paused and restarted while its jobs run. Kept out of `npm test` for its length.
 */
export default defineConfig({
  test: {
    name: "chaos",
    include: ["test/chaos/**/*.test.ts"],
    env: { KAFKAJS_NO_PARTITIONER_WARNING: "1" },
    globalSetup: ["test/helpers/globalSetup.ts"],
    testTimeout: 240_000,
    hookTimeout: 240_000,
    fileParallelism: false,
  },
});
