/**
 * Runs the local token service (tokenService.ts) as its own process for the local stack (`npm run stack:start --
 * --identity`): one tenant, one application with a client secret and a federated credential for a Kubernetes-style
 * service account. It writes the secret and a federated token (valid 24 hours) as files readable by the owner only,
 * never prints them, and prints one JSON line `{"event":"listening",...}` once it accepts requests.
 *
 * Environment: TOKEN_SERVICE_DIR (required: certificates in <dir>/../tls, files written here), TOKEN_SERVICE_PORT
 * (default 0), TOKEN_SERVICE_LIFETIME_SECONDS (default 3600), TOKEN_SERVICE_CERT_FILE, TOKEN_SERVICE_KEY_FILE.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServiceAccountTokenIssuer } from "./kubernetesIssuer.ts";
import { startTokenService } from "./tokenService.ts";

export const LOCAL_SERVICE_ACCOUNT = { namespace: "forecasting", name: "forecast-connector" } as const;

const env = process.env;
const dir = env.TOKEN_SERVICE_DIR;
if (!dir || !env.TOKEN_SERVICE_CERT_FILE || !env.TOKEN_SERVICE_KEY_FILE) {
  process.stderr.write(
    `${JSON.stringify({ event: "error", message: "TOKEN_SERVICE_DIR, TOKEN_SERVICE_CERT_FILE and TOKEN_SERVICE_KEY_FILE are required" })}\n`,
  );
  process.exit(2);
}
const tenantId = randomUUID();
const clientId = randomUUID();
const secret = randomBytes(24).toString("base64url");
const k8s = createServiceAccountTokenIssuer();
const service = await startTokenService({
  tenantId,
  tls: { certFile: env.TOKEN_SERVICE_CERT_FILE, keyFile: env.TOKEN_SERVICE_KEY_FILE },
  clients: [
    {
      clientId,
      secret,
      federated: [
        {
          issuer: k8s.issuer,
          subject: k8s.subject(LOCAL_SERVICE_ACCOUNT.namespace, LOCAL_SERVICE_ACCOUNT.name),
        },
      ],
    },
  ],
  trustedIssuers: { [k8s.issuer]: k8s.key.publicKey },
  tokenLifetimeSeconds: Number(env.TOKEN_SERVICE_LIFETIME_SECONDS || 3600),
  port: Number(env.TOKEN_SERVICE_PORT || 0),
});
const clientSecretFile = join(dir, "client-secret");
const federatedTokenFile = join(dir, "federated-token");
writeFileSync(clientSecretFile, secret, { mode: 0o600 });
writeFileSync(
  federatedTokenFile,
  k8s.issue({
    namespace: LOCAL_SERVICE_ACCOUNT.namespace,
    serviceAccount: LOCAL_SERVICE_ACCOUNT.name,
    lifetimeSeconds: 24 * 3600,
  }),
  { mode: 0o600 },
);
process.stdout.write(
  `${JSON.stringify({
    event: "listening",
    authorityHost: service.authorityHost,
    tenantId,
    clientId,
    clientSecretFile,
    federatedTokenFile,
  })}\n`,
);
const stop = () => {
  void service.close().then(() => process.exit());
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
