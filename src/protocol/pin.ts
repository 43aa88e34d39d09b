// Names and pins of the agent channel's mutual TLS (docs/security.md, "Transport"), with
// node:crypto alone so the agent loads no X.509 library to start: keys are ECDSA P-256;
// the host a client certificate speaks for is its URI SAN `urn:palisade:host:<host id>`;
// the enrollment token carries the CA certificate's SHA-256 as `<secret>.<64 hex>`.
import { createHash, generateKeyPairSync } from "node:crypto";

export const HOST_URI_PREFIX = "urn:palisade:host:";

/** A new ECDSA P-256 private key as PKCS#8 PEM. */
export function newPrivateKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "P-256" })
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();
}

/** SHA-256 of a certificate's DER, lowercase hex (what the enrollment token pins). */
export function fingerprintOfDer(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

/** The host id named by a verified peer certificate's `subjectaltname` (node's string form), if any. */
export function hostIdOfSubjectAltName(san: string | undefined): string | undefined {
  if (!san) return undefined;
  const ids = san
    .split(/,\s*/)
    .filter((e) => e.startsWith(`URI:${HOST_URI_PREFIX}`))
    .map((e) => e.slice(`URI:${HOST_URI_PREFIX}`.length));
  // Exactly one: a certificate naming two hosts is not one this CA issues.
  return ids.length === 1 && /^[0-9a-f-]{36}$/i.test(ids[0]!) ? ids[0] : undefined;
}

const PIN_RE = /^(.+)\.([0-9a-f]{64})$/;

/** An enrollment token as shown to the admin: the secret, and the CA pin when TLS is on. */
export function splitEnrollToken(token: string): { secret: string; pin: string | undefined } {
  const m = PIN_RE.exec(token.trim());
  return m ? { secret: m[1]!, pin: m[2]! } : { secret: token.trim(), pin: undefined };
}

export function joinEnrollToken(secret: string, pin: string | undefined): string {
  return pin ? `${secret}.${pin}` : secret;
}
