/**
 * RS256 JSON Web Tokens with Node's crypto only, for the local token service and the Kubernetes-style issuer of
 * federated tokens: signing keys published as a JWKS, and the signature check of an incoming assertion.
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";

export interface SigningKey {
  /** Key id in the JWT header and the JWKS (a JWK thumbprint, as Entra's kid and x5t are a hash too). */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** The public half as a JWKS entry, as Entra publishes its keys (kty, use, kid, x5t, n, e). */
export interface PublicJwk {
  readonly kty: "RSA";
  readonly use: "sig";
  readonly kid: string;
  readonly x5t: string;
  readonly n: string;
  readonly e: string;
}

export type JwtClaims = Readonly<Record<string, unknown>>;

export function createSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const { n, e } = publicKey.export({ format: "jwk" }) as { n: string; e: string };
  // RFC 7638 thumbprint: the required members, in lexicographic order.
  const kid = createHash("sha256")
    .update(JSON.stringify({ e, kty: "RSA", n }))
    .digest("base64url");
  return { kid, privateKey, publicKey };
}

export function publicJwk(key: SigningKey): PublicJwk {
  const { n, e } = key.publicKey.export({ format: "jwk" }) as { n: string; e: string };
  return { kty: "RSA", use: "sig", kid: key.kid, x5t: key.kid, n, e };
}

function encodePart(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

export function signJwt(claims: JwtClaims, key: SigningKey): string {
  const input = `${encodePart({ typ: "JWT", alg: "RS256", kid: key.kid, x5t: key.kid })}.${encodePart(claims)}`;
  return `${input}.${sign("RSA-SHA256", Buffer.from(input), key.privateKey).toString("base64url")}`;
}

export interface DecodedJwt {
  readonly header: Readonly<Record<string, unknown>>;
  readonly claims: JwtClaims;
  readonly signingInput: string;
  readonly signature: Buffer;
}

/** Splits and parses a compact JWT; undefined when it is not one (no signature check). */
export function decodeJwt(token: string): DecodedJwt | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  const [header, payload, signature] = parts as [string, string, string];
  try {
    const h = JSON.parse(Buffer.from(header, "base64url").toString("utf8")) as unknown;
    const c = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as unknown;
    if (typeof h !== "object" || h === null || typeof c !== "object" || c === null) return undefined;
    return {
      header: h as Record<string, unknown>,
      claims: c as JwtClaims,
      signingInput: `${header}.${payload}`,
      signature: Buffer.from(signature, "base64url"),
    };
  } catch {
    return undefined;
  }
}

/** True when an RS256 JWT's signature verifies with the public key (a KeyObject or a PEM). */
export function verifyRs256(jwt: DecodedJwt, publicKey: KeyObject | string): boolean {
  if (jwt.header.alg !== "RS256") return false;
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  return verify("RSA-SHA256", Buffer.from(jwt.signingInput), key, jwt.signature);
}
