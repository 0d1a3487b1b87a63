/**
 * Runs the emulator as its own process (demo, benchmarks, manual tries). Configured by EMULATOR_* variables (see
 * README.md); prints one JSON line `{"event":"listening","url":...}` on stdout once it accepts requests, so a parent
 * process can wait for that line; stops cleanly on SIGTERM/SIGINT.
 */
import { validateFaults } from "./options.ts";
import { createEmulator, type Emulator } from "./server.ts";

function readEnv(env: NodeJS.ProcessEnv): Parameters<typeof createEmulator>[0] {
  const connectionString = env.EMULATOR_BLOB_CONNECTION_STRING;
  if (connectionString === undefined || connectionString === "") {
    throw new TypeError("EMULATOR_BLOB_CONNECTION_STRING is required");
  }
  const number = (name: string): number | undefined => {
    const text = env[name];
    if (text === undefined || text === "") return undefined;
    const value = Number(text);
    if (!Number.isFinite(value)) throw new TypeError(`${name} must be a number, got ${JSON.stringify(text)}`);
    return value;
  };
  const text = (name: string): string | undefined => (env[name] === "" ? undefined : env[name]);
  let faults: unknown;
  if (text("EMULATOR_FAULTS") !== undefined) {
    try {
      faults = JSON.parse(env.EMULATOR_FAULTS as string);
    } catch {
      throw new TypeError("EMULATOR_FAULTS must be JSON (an EmulatorFaults object)");
    }
  }
  const authority = text("EMULATOR_AUTH_AUTHORITY");
  const tenantId = text("EMULATOR_AUTH_TENANT_ID");
  if ((authority === undefined) !== (tenantId === undefined)) {
    throw new TypeError(
      "EMULATOR_AUTH_AUTHORITY and EMULATOR_AUTH_TENANT_ID go together: set both, or neither",
    );
  }
  const allowLocalDev = text("EMULATOR_AUTH_ALLOW_LOCAL_DEV");
  if (allowLocalDev !== undefined && allowLocalDev !== "true" && allowLocalDev !== "false") {
    throw new TypeError(
      `EMULATOR_AUTH_ALLOW_LOCAL_DEV must be true or false, got ${JSON.stringify(allowLocalDev)}`,
    );
  }
  let datastores: unknown;
  if (text("EMULATOR_DATASTORES") !== undefined) {
    try {
      datastores = JSON.parse(env.EMULATOR_DATASTORES as string);
    } catch {
      throw new TypeError('EMULATOR_DATASTORES must be JSON ({"<datastore>": "<container>", ...})');
    }
  }
  const options = {
    blobConnectionString: connectionString,
    auth:
      authority === undefined
        ? undefined
        : { authority, tenantId: tenantId as string, allowLocalDevTokens: allowLocalDev === "true" },
    host: text("EMULATOR_HOST"),
    port: number("EMULATOR_PORT"),
    outputContainer: text("EMULATOR_OUTPUT_CONTAINER"),
    outputPathTemplate: text("EMULATOR_OUTPUT_PATH_TEMPLATE"),
    coldStartMs: number("EMULATOR_COLD_START_MS"),
    runMs: number("EMULATOR_RUN_MS"),
    cancelMs: number("EMULATOR_CANCEL_MS"),
    datastores,
    seed: number("EMULATOR_SEED"),
    faults: faults === undefined ? undefined : validateFaults(faults, "EMULATOR_FAULTS"),
  };
  // Unset variables mean "use the default": drop them so the options bag only holds what was given.
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as unknown as Parameters<typeof createEmulator>[0];
}

async function main(): Promise<void> {
  let emulator: Emulator;
  try {
    emulator = await createEmulator(readEnv(process.env));
  } catch (error) {
    process.stderr.write(`${JSON.stringify({ event: "error", message: (error as Error).message })}\n`);
    process.exitCode = 2;
    return;
  }
  process.stdout.write(
    `${JSON.stringify({ event: "listening", url: emulator.baseUrl, scoringUri: emulator.scoringUri })}\n`,
  );
  const stop = (signal: string): void => {
    emulator.close().then(
      // Exit explicitly: idle keep-alive sockets to blob storage would otherwise hold the process for seconds.
      () => process.stdout.write(`${JSON.stringify({ event: "stopped", signal })}\n`, () => process.exit()),
      (error: unknown) => {
        process.stderr.write(`${JSON.stringify({ event: "error", message: String(error) })}\n`);
        process.exitCode = 1;
      },
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

await main();
