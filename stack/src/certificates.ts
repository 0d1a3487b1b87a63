/**
 * A throwaway certificate authority and a broker certificate signed by it, made with openssl, for the local
 * broker's TLS listener, and client certificates for mutual TLS. Test material only: the keys are not
 * encrypted on disk (the PKCS12 keystore has a fixed password) and everything is valid for 30 days.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireProgram } from "./processes.ts";

export interface BrokerCertificates {
  /** PEM of the CA that signed the broker's certificate: what clients trust (FC_KAFKA_SSL_CA_FILE). */
  readonly caFile: string;
  /** Its private key (unencrypted): signs client certificates for mutual TLS (issueClientCertificate). */
  readonly caKeyFile: string;
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

/** A self-signed CA, ca.pem and ca.key, in `dir`. */
function createCa(dir: string, subject: string): void {
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
      "-days",
      "30",
      "-subj",
      subject,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
}

/**
 * Makes (or, when `dir` already holds them, reuses) a CA and a broker certificate for `localhost` and
 * `127.0.0.1`, and the broker's PKCS12 keystore.
 */
export function ensureBrokerCertificates(dir: string): BrokerCertificates {
  const files: BrokerCertificates = {
    caFile: join(dir, "ca.pem"),
    caKeyFile: join(dir, "ca.key"),
    certFile: join(dir, "broker.pem"),
    keystoreFile: join(dir, "broker.p12"),
    keystorePassword: KEYSTORE_PASSWORD,
  };
  if ([files.caFile, files.caKeyFile, files.keystoreFile].every((file) => existsSync(file))) return files;
  requireProgram("openssl", "version", OPENSSL_HINT);
  mkdirSync(dir, { recursive: true });
  createCa(dir, `/CN=forecast-connector local CA ${randomBytes(4).toString("hex")}`);
  issueLocalhostCertificate(dir, "broker");
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

/** A CA of its own, unrelated to the broker's: a client trusting it must be refused, and so must its certificates. */
export function createUnrelatedCa(dir: string): { caFile: string; caKeyFile: string } {
  requireProgram("openssl", "version", OPENSSL_HINT);
  mkdirSync(dir, { recursive: true });
  createCa(dir, "/CN=an unrelated CA");
  return { caFile: join(dir, "ca.pem"), caKeyFile: join(dir, "ca.key") };
}

export interface ClientCertificate {
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * A client certificate for `name` signed by the given CA (the broker's, for mutual TLS), in `dir`: the
 * certificate and its PKCS8 key, encrypted with AES-256 when a passphrase is given.
 */
export function issueClientCertificate(
  ca: { caFile: string; caKeyFile: string },
  dir: string,
  name: string,
  passphrase?: string,
): ClientCertificate {
  requireProgram("openssl", "version", OPENSSL_HINT);
  mkdirSync(dir, { recursive: true });
  signCertificate(dir, ca, {
    name,
    keyFile: `${name}.plain.key`,
    subject: `/CN=${name}`,
    extensions: ["keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"],
  });
  const keyFile = join(dir, `${name}.key`);
  openssl(
    passphrase === undefined
      ? ["pkcs8", "-topk8", "-nocrypt", "-in", `${name}.plain.key`, "-out", keyFile]
      : [
          "pkcs8",
          "-topk8",
          "-v2",
          "aes-256-cbc",
          "-in",
          `${name}.plain.key`,
          "-out",
          keyFile,
          "-passout",
          `pass:${passphrase}`,
        ],
    dir,
  );
  rmSync(join(dir, `${name}.plain.key`));
  return { certFile: join(dir, `${name}.pem`), keyFile };
}

export interface ServerCertificates {
  /** PEM of the CA: what clients trust (NODE_EXTRA_CA_CERTS). */
  readonly caFile: string;
  /** PEM of the server certificate (subject alternative names: localhost, 127.0.0.1). */
  readonly certFile: string;
  /** Its PKCS8 PEM key, unencrypted (Azurite's --key and Node's https server read it). */
  readonly keyFile: string;
}

/**
 * Makes (or, when `dir` already holds them, reuses) a CA and one HTTPS server certificate for `localhost` and
 * `127.0.0.1`, shared by the local HTTPS services (the token service, Azurite). Test material only.
 */
export function ensureServerCertificates(dir: string): ServerCertificates {
  const files: ServerCertificates = {
    caFile: join(dir, "ca.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
  };
  if ([files.caFile, files.certFile, files.keyFile].every((file) => existsSync(file))) return files;
  requireProgram("openssl", "version", OPENSSL_HINT);
  mkdirSync(dir, { recursive: true });
  createCa(dir, `/CN=forecast-connector local CA ${randomBytes(4).toString("hex")}`);
  issueLocalhostCertificate(dir, "server");
  return files;
}

/**
 * Issues `<name>.key` and `<name>.pem` in `dir`, signed by the CA there (ca.pem, ca.key): a TLS server
 * certificate for localhost and 127.0.0.1.
 */
function issueLocalhostCertificate(dir: string, name: string): void {
  signCertificate(
    dir,
    { caFile: join(dir, "ca.pem"), caKeyFile: join(dir, "ca.key") },
    {
      name,
      keyFile: `${name}.key`,
      subject: "/CN=localhost",
      extensions: [
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ],
    },
  );
}

/**
 * A new RSA key (`keyFile`, unencrypted) and its certificate `<name>.pem` in `dir`, signed by `ca`, valid for
 * 30 days, with `extensions` (an end-entity certificate: never a CA).
 */
function signCertificate(
  dir: string,
  ca: { caFile: string; caKeyFile: string },
  cert: { name: string; keyFile: string; subject: string; extensions: readonly string[] },
): void {
  const ext = `${cert.name}.ext`;
  writeFileSync(join(dir, ext), ["basicConstraints=critical,CA:FALSE", ...cert.extensions, ""].join("\n"));
  openssl(
    [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      cert.keyFile,
      "-out",
      `${cert.name}.csr`,
      "-subj",
      cert.subject,
    ],
    dir,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${cert.name}.csr`,
      "-CA",
      ca.caFile,
      "-CAkey",
      ca.caKeyFile,
      "-set_serial",
      `0x${randomBytes(8).toString("hex")}`,
      "-out",
      `${cert.name}.pem`,
      "-days",
      "30",
      "-extfile",
      ext,
    ],
    dir,
  );
}
