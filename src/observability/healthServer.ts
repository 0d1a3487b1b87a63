import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HealthServerOptions {
  readonly port: number;
  readonly host?: string;
  readonly registry: Registry;
  /** Alive: the process's loop turns and the pipeline has not failed for good. */
  readonly isAlive: () => boolean;
  /** Ready: connected to Kafka and consuming (not shutting down). */
  readonly isReady: () => boolean;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** /metrics (Prometheus text format), /healthz (liveness) and /readyz (readiness) for the SREs and Kubernetes. */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    const probe = (ok: boolean) => {
      response.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
      response.end(ok ? "ok\n" : "not ok\n");
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405).end();
    } else if (path === "/metrics") {
      options.registry.metrics().then(
        (text) => {
          response.writeHead(200, { "content-type": options.registry.contentType });
          response.end(text);
        },
        () => response.writeHead(500).end(),
      );
    } else if (path === "/healthz") {
      probe(options.isAlive());
    } else if (path === "/readyz") {
      probe(options.isReady());
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "0.0.0.0", () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : options.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
