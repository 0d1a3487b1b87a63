/**
 * A throwaway certificate authority and a broker certificate signed by it, made with openssl, for the local
 * broker's TLS listener. Test material only: the keys are not encrypted on disk (the PKCS12 keystore has a
 * fixed password) and are valid for 30 days.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireProgram } from "./processes.ts";

export interface BrokerCertificates {
  /** PEM of the CA that signed the broker's certificate: what clients trust (FC_KAFKA_SSL_CA_FILE). */
  readonly caFile: string;
  /** PEM of the broker's certificate (subject alternative names: localhost, 127.0.0.1). */
  readonly certFile: string;
  /** PKCS12 keystore of the broker: its key, its certificate and the CA. */
  readonly keystoreFile: string;
  readonly keystorePassword: string;
}

const OPENSSL_HINT = "It makes the TLS listener's certificates (Debian: apt-get install openssl).";

/** Not a secret: the keystore only ever holds a test key, next to which this password is written anyway. */
const KEYSTORE_PASSWORD = "forecast-connector-local";

function openssl(args: readonly string[], cwd: string): void {
  const result = spawnSync("openssl", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (result.status !== 0) {
    throw new Error(`openssl ${args[0]} failed in ${cwd}:\n${result.stderr || result.stdout}`);
  }
}

/**
 * Makes (or, when `dir` already holds them, reuses) a CA and a broker certificate for `localhost` and
 * `127.0.0.1`, and the broker's PKCS12 keystore.
 */
export function ensureBrokerCertificates(dir: string): BrokerCertificates {
  const files: BrokerCertificates = {
    caFile: join(dir, "ca.pem"),
    certFile: join(dir, "broker.pem"),
    keystoreFile: join(dir, "broker.p12"),
    keystorePassword: KEYSTORE_PASSWORD,
  };
  if ([files.caFile, files.certFile, files.keystoreFile].every((file) => existsSync(file))) return files;
  requireProgram("openssl", "version", OPENSSL_HINT);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "broker.ext"),
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "",
    ].join("\n"),
  );
  const days = ["-days", "30"];
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      ...days,
      "-subj",
      `/CN=forecast-connector local CA ${randomBytes(4).toString("hex")}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  openssl(
    [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "broker.key",
      "-out",
      "broker.csr",
      "-subj",
      "/CN=localhost",
    ],
    dir,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "broker.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-set_serial",
      `0x${randomBytes(8).toString("hex")}`,
      "-out",
      "broker.pem",
      ...days,
      "-extfile",
      "broker.ext",
    ],
    dir,
  );
  openssl(
    [
      "pkcs12",
      "-export",
      "-in",
      "broker.pem",
      "-inkey",
      "broker.key",
      "-certfile",
      "ca.pem",
      "-name",
      "broker",
      "-out",
      "broker.p12",
      "-passout",
      `pass:${KEYSTORE_PASSWORD}`,
    ],
    dir,
  );
  return files;
}

/** Another CA, unrelated to the broker's: for checking that a client trusting it is refused. */
export function createUnrelatedCa(dir: string): string {
  requireProgram("openssl", "version", OPENSSL_HINT);
  mkdirSync(dir, { recursive: true });
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "other-ca.key",
      "-out",
      "other-ca.pem",
      "-days",
      "30",
      "-subj",
      "/CN=an unrelated CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
    ],
    dir,
  );
  return join(dir, "other-ca.pem");
}
