/**
 * The connector's CLI (`node src/cli.ts run`) as a child process, as a person or a pod starts it: for the tests
 * that check what it prints, how it exits and what it leaks.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

export interface CliRun {
  readonly child: ChildProcess;
  readonly exitCode: Promise<number | null>;
  /** Everything it wrote so far, stdout and stderr interleaved. */
  output(): string;
}

/**
 * A child's environment: only PATH and NODE_EXTRA_CA_CERTS of the test's own (the local stack's Azurite and
 * token service serve HTTPS with the tests' CA: test/helpers/globalSetup.ts), then `env`.
 */
export function cliEnv(env: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    ...env,
  };
}

export function runCli(env: Record<string, string>): CliRun {
  const child = spawn(process.execPath, [CLI, "run"], {
    env: cliEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const exitCode = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exitCode, output: () => output };
}
