/**
 * The local stack for people: `npm run stack:start` starts Kafka, the schema registry, Azurite and the
 * batch-endpoint emulator in the background and prints where they listen; `npm run stack:stop` stops them.
 *
 * `npm run stack:start -- --identity` adds the real identity path: Azurite over HTTPS accepting Entra tokens, the
 * local token service, and the emulator validating its tokens; it prints the environment a connector needs for it.
 *
 * Settings (environment): FC_KAFKA_VERSION (default 4.1.1; 3.9.y selects the 3.9 line), FC_STACK_KAFKA_PORT,
 * FC_STACK_KAFKA_CONTROLLER_PORT, FC_STACK_REGISTRY_PORT, FC_STACK_AZURITE_PORT, FC_STACK_EMULATOR_PORT,
 * FC_STACK_TOKEN_SERVICE_PORT, FC_STACK_CACHE (artifact cache), FC_STACK_HOME (runtime folder, default .stack/).
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
    tokenService: portFromEnv("FC_STACK_TOKEN_SERVICE_PORT", DEFAULT_PORTS.tokenService ?? 38443),
  };
}

async function main(command: string | undefined, args: string[]): Promise<void> {
  const name = "local";
  switch (command) {
    case "start": {
      const started = Date.now();
      const identity = args.includes("--identity");
      const stack = await startStack({
        name,
        kafkaVersion: process.env.FC_KAFKA_VERSION || DEFAULT_KAFKA_VERSION,
        ports: portsFromEnv(),
        withEmulator: true,
        identity,
      });
      const e = stack.endpoints;
      console.log(
        `Local stack started in ${((Date.now() - started) / 1000).toFixed(1)} s (logs in ${stack.dir})`,
      );
      console.log(`  Kafka ${e.kafkaVersion}        ${e.kafkaBrokers.join(",")}`);
      console.log(`  Schema registry    ${e.registryUrl}`);
      console.log(`  Azurite (blob)     ${e.blobEndpoint}`);
      console.log(`  Batch endpoint     ${e.emulatorScoringUri} (emulator: stands in for Azure ML locally)`);
      if (e.identity && e.caFile) {
        const id = e.identity;
        console.log(
          `  Token service      ${id.authorityHost}/${id.tenantId} (stands in for Entra ID locally)`,
        );
        console.log(
          "A connector on the real identity path (blob by account URL, tokens from @azure/identity):",
        );
        for (const line of [
          `NODE_EXTRA_CA_CERTS=${e.caFile}`,
          `AZURE_AUTHORITY_HOST=${id.authorityHost}`,
          `AZURE_TENANT_ID=${id.tenantId}`,
          `AZURE_CLIENT_ID=${id.clientId}`,
          `AZURE_CLIENT_SECRET="$(cat ${id.clientSecretFile})"   # or: AZURE_FEDERATED_TOKEN_FILE=${id.federatedTokenFile}`,
          "AZURE_TOKEN_CREDENTIALS=prod",
          "FC_AZURE_CREDENTIAL=default",
          "FC_AZURE_DISABLE_INSTANCE_DISCOVERY=true",
          `FC_INPUT_STORAGE_ACCOUNT_URL=${e.blobEndpoint}`,
        ]) {
          console.log(`  export ${line}`);
        }
      }
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
      console.error("usage: stack/src/cli.ts start [--identity] | stop [--all] | status");
      process.exitCode = 2;
  }
}

main(process.argv[2], process.argv.slice(3)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
