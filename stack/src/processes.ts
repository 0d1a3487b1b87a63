import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A service process started by the stack: its own process group, output appended to a log file. */
export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<string>;
}

export interface SpawnServiceOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Starts a service detached in its own process group so that stopping it also stops whatever it forked,
 * and so that `stack stop` from another process can reach it by pid.
 */
export function spawnService(options: SpawnServiceOptions): ServiceProcess {
  const log = openSync(options.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ["ignore", log, log],
    });
  } finally {
    closeSync(log);
  }
  if (child.pid === undefined) throw new Error(`could not start ${options.name} (${options.command})`);
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ?? String(code)));
    child.once("error", (error) => resolve(`error: ${error.message}`));
  });
  child.unref();
  return { name: options.name, pid: child.pid, logFile: options.logFile, exited };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the process group, then SIGKILL if it has not gone within graceMs. */
export async function stopProcessGroup(pid: number, graceMs = 10_000): Promise<void> {
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone, or not a group leader: fall back to the process itself.
      try {
        process.kill(pid, signal);
      } catch {}
    }
  };
  if (!isAlive(pid)) return;
  signalGroup("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) signalGroup("SIGKILL");
  while (isAlive(pid)) await sleep(50);
}

/** Synchronous last resort for process 'exit' handlers, where no promise can be awaited. */
export function killProcessGroupNow(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {}
}

/**
 * Polls `probe` until it resolves true, the process dies, or the timeout expires. A service that never
 * became ready is stopped before the error is thrown, so a failed start leaves nothing behind.
 */
export async function waitUntilReady(
  service: ServiceProcess,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  let dead: string | undefined;
  void service.exited.then((how) => {
    dead = how;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (dead !== undefined) {
      throw new Error(`${service.name} exited (${dead}) before it was ready; see ${service.logFile}`);
    }
    if (await probe().catch(() => false)) return;
    await sleep(250);
  }
  await stopProcessGroup(service.pid);
  throw new Error(`${service.name} was not ready within ${timeoutMs} ms; see ${service.logFile}`);
}

/** Asks the OS for a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Fails with an install hint when a required program is missing. */
export function requireProgram(program: string, versionArg: string, hint: string): void {
  const result = spawnSync(program, [versionArg], { stdio: "ignore" });
  if (result.error || result.status !== 0) {
    throw new Error(`${program} is required to run the local stack but was not found on PATH. ${hint}`);
  }
}
