/**
 * The local stack for people: `npm run stack:start` starts Kafka, the schema registry, Azurite and the
 * batch-endpoint emulator in the background and prints where they listen; `npm run stack:stop` stops them.
 *
 * Settings (environment): FC_KAFKA_VERSION (default 4.1.1; 3.9.y selects the 3.9 line), FC_STACK_KAFKA_PORT,
 * FC_STACK_KAFKA_CONTROLLER_PORT, FC_STACK_REGISTRY_PORT, FC_STACK_AZURITE_PORT, FC_STACK_EMULATOR_PORT,
 * FC_STACK_CACHE (artifact cache), FC_STACK_HOME (runtime folder, default .stack/).
 */
import "../../scripts/requireNode.cjs"; // first: stops on a too-old Node before anything else loads
import { DEFAULT_KAFKA_VERSION } from "./artifacts.ts";
import {
  DEFAULT_PORTS,
  listStacks,
  readStackState,
  type StackPorts,
  startStack,
  stopStack,
} from "./stack.ts";

function portFromEnv(variable: string, fallback: number): number {
  const raw = process.env[variable];
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${variable} must be a TCP port (1-65535), got "${raw}"`);
  }
  return port;
}

export function portsFromEnv(): StackPorts {
  return {
    kafka: portFromEnv("FC_STACK_KAFKA_PORT", DEFAULT_PORTS.kafka),
    kafkaController: portFromEnv("FC_STACK_KAFKA_CONTROLLER_PORT", DEFAULT_PORTS.kafkaController),
    registry: portFromEnv("FC_STACK_REGISTRY_PORT", DEFAULT_PORTS.registry),
    azurite: portFromEnv("FC_STACK_AZURITE_PORT", DEFAULT_PORTS.azurite),
    emulator: portFromEnv("FC_STACK_EMULATOR_PORT", DEFAULT_PORTS.emulator),
  };
}

async function main(command: string | undefined, args: string[]): Promise<void> {
  const name = "local";
  switch (command) {
    case "start": {
      const started = Date.now();
      const stack = await startStack({
        name,
        kafkaVersion: process.env.FC_KAFKA_VERSION || DEFAULT_KAFKA_VERSION,
        ports: portsFromEnv(),
        withEmulator: true,
      });
      const e = stack.endpoints;
      console.log(
        `Local stack started in ${((Date.now() - started) / 1000).toFixed(1)} s (logs in ${stack.dir})`,
      );
      console.log(`  Kafka ${e.kafkaVersion}        ${e.kafkaBrokers.join(",")}`);
      console.log(`  Schema registry    ${e.registryUrl}`);
      console.log(`  Azurite (blob)     ${e.blobEndpoint}`);
      console.log(`  Batch endpoint     ${e.emulatorScoringUri} (emulator: stands in for Azure ML locally)`);
      console.log("Stop it with: npm run stack:stop");
      return;
    }
    case "stop": {
      // --all also stops stacks left behind by interrupted test runs (.stack/test-<pid>/).
      const names = args.includes("--all") ? listStacks() : [name];
      for (const n of names) {
        const stopped = await stopStack(n);
        console.log(stopped.length ? `Stopped ${n}: ${stopped.join(", ")}` : `Nothing running for ${n}.`);
      }
      return;
    }
    case "status": {
      const state = readStackState(name);
      console.log(state ? JSON.stringify(state, null, 2) : "The local stack is not running.");
      return;
    }
    default:
      console.error("usage: stack/src/cli.ts start | stop [--all] | status");
      process.exitCode = 2;
  }
}

main(process.argv[2], process.argv.slice(3)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
