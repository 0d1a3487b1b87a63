/**
 * A contender of the end-to-end benchmark (the baseline pipe or one connector instance) in a child process,
 * asked over IPC. Every request has a time limit; `close` stops the child and, past a grace period, kills it.
 */
import { type ChildProcess, fork } from "node:child_process";
import type { Progress, Report } from "./connectorProcess.ts";

export interface MemoryFigures {
  readonly heapUsed: number;
  readonly rss: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly maxRss: number;
}

export interface Contender {
  readonly name: string;
  readonly pid: number;
  start(): Promise<{ startedAtMs: number; readyAtMs: number }>;
  progress(): Promise<Progress>;
  memory(): Promise<MemoryFigures>;
  report(): Promise<Report>;
  /** Stops it (the connector's own shutdown), bounded; kills it when that does not end in time. */
  close(graceMs?: number): Promise<void>;
}

export function spawnContender(
  name: string,
  file: URL,
  env: Readonly<Record<string, string>>,
  { requestTimeoutMs = 120_000 } = {},
): Contender {
  // BENCH_CPU_PROF=<folder>: a V8 CPU profile of each contender (open it in Chrome DevTools > Performance),
  // named after it, written when it exits.
  const profileDir = process.env.BENCH_CPU_PROF;
  const profile = profileDir
    ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`]
    : [];
  const child: ChildProcess = fork(file, [], {
    execArgv: ["--expose-gc", ...profile],
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let next = 0;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let exited = false;
  child.on("message", (message: { id: number; ok: boolean; result?: unknown; error?: string }) => {
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.ok) waiter?.resolve(message.result);
    else waiter?.reject(new Error(`${name}: ${message.error}`));
  });
  const exitedPromise = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = true;
      for (const waiter of pending.values())
        waiter.reject(new Error(`${name} exited (${signal ?? `code ${code}`})`));
      pending.clear();
      resolve();
    }),
  );

  function request<T>(cmd: string, timeoutMs = requestTimeoutMs): Promise<T> {
    if (exited) return Promise.reject(new Error(`${name} is not running`));
    const id = next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ id, cmd });
    });
  }

  return {
    name,
    pid: child.pid ?? -1,
    start: () => request("start"),
    progress: () => request("progress", 10_000),
    memory: () => request("memory", 30_000),
    report: () => request("report", 30_000),
    async close(graceMs = 20_000) {
      if (exited) return;
      await request("stop", graceMs).catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exitedPromise;
      clearTimeout(timer);
    },
  };
}
