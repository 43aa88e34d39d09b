// The agent's PKCS#10 certificate request (RFC 2986), DER-encoded by hand over node:crypto.
// It has one shape: subject CN=<name>, an EC P-256 key, no attributes, signed with
// ECDSA-SHA256 (proof of possession; the CA checks the key type and the signature, and
// names the certificate after the host id, not the CN). Encoding this one shape here keeps
// @peculiar/x509 (with asn1js, tsyringe and reflect-metadata, ~0.5 MB of bundle and
// ~3.4 MB of heap once loaded) out of the agent, which would otherwise keep it after
// enrolling. The API reads requests with @peculiar/x509 (src/protocol/pki.ts).
import { createPublicKey, sign, type KeyObject } from "node:crypto";

/** A DER length: short form below 128, else 0x8N and N big-endian bytes. */
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const der = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
};

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OID = 0x06;
const UTF8_STRING = 0x0c;
const CONTEXT_0 = 0xa0;
/** 2.5.4.3 (commonName). */
const OID_CN = Buffer.from([0x55, 0x04, 0x03]);
/** 1.2.840.10045.4.3.2 (ecdsa-with-SHA256; no parameters). */
const OID_ECDSA_SHA256 = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

/** A PKCS#10 request (PEM) for `privateKey` (EC P-256), signed by it (proof of possession). */
export async function createCsr(privateKey: KeyObject, commonName: string): Promise<string> {
  if (privateKey.asymmetricKeyType !== "ec" || privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1")
    throw new Error("a certificate request needs an EC P-256 private key");
  const subject = der(SEQUENCE, der(SET, der(SEQUENCE, der(OID, OID_CN), der(UTF8_STRING, Buffer.from(commonName)))));
  const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  const info = der(SEQUENCE, der(INTEGER, Buffer.from([0])), subject, spki, der(CONTEXT_0));
  const signature = sign("sha256", info, { key: privateKey, dsaEncoding: "der" });
  const request = der(
    SEQUENCE,
    info,
    der(SEQUENCE, der(OID, OID_ECDSA_SHA256)),
    der(BIT_STRING, Buffer.from([0]), signature),
  );
  const b64 = request.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64.replace(/\n$/, "")}\n-----END CERTIFICATE REQUEST-----\n`;
}
