/**
 * The local stack a benchmark runs on: the one bench/run.ts started (its endpoints in BENCH_STACK), or, for a
 * benchmark run alone, one of its own under the name "bench" on free ports, stopped by `stop`.
 */
import { freeStackPorts, startStack } from "../stack/src/stack.ts";
import type { StackEndpoints } from "../stack/src/types.ts";

export interface BenchStack {
  readonly endpoints: StackEndpoints;
  /** Pids of the services this process started (none when the stack came from BENCH_STACK). */
  readonly ownPids: readonly number[];
  stop(): Promise<void>;
}

export async function benchStack(): Promise<BenchStack> {
  if (process.env.BENCH_STACK) {
    return {
      endpoints: JSON.parse(process.env.BENCH_STACK) as StackEndpoints,
      ownPids: [],
      stop: async () => {},
    };
  }
  console.log('starting the local stack (name "bench")...');
  const running = await startStack({ name: "bench", ports: await freeStackPorts() });
  return { endpoints: running.endpoints, ownPids: running.processes.map((p) => p.pid), stop: running.stop };
}
