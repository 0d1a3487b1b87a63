/**
 * The child side of a contender process (bench/e2e/contender.ts is the parent's): requests come as IPC messages
 * `{id, cmd}`, each is answered `{id, ok, result | error}`; after "stop" the child lets go of the channel. When
 * the parent goes away the child stops (`shutdown`) and exits, at the latest after `graceMs`.
 */
export type Command = "start" | "progress" | "memory" | "report" | "stop";
export type Request = { id: number; cmd: Command };

export function answerParent(
  handle: (request: Request) => Promise<unknown>,
  shutdown: () => Promise<unknown>,
  graceMs: number,
): void {
  process.on("message", (request: Request) => {
    handle(request).then(
      (result) => {
        process.send?.({ id: request.id, ok: true, result });
        if (request.cmd === "stop") process.disconnect();
      },
      (error: Error) => process.send?.({ id: request.id, ok: false, error: error.stack ?? String(error) }),
    );
  });
  // The parent gone: nothing left to measure for.
  process.on("disconnect", () => {
    setTimeout(() => process.exit(0), graceMs).unref();
    void shutdown().finally(() => process.exit(0));
  });
}
