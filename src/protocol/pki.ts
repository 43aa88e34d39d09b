// X.509 pieces of the API's CA (docs/security.md, "Transport"): certificates and CSRs
// read and encoded by @peculiar/x509 over node's WebCrypto. The agent does not load it:
// its CSR is encoded by csr.ts (re-exported here); names and pins are in pin.ts.
import "reflect-metadata"; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import * as x509 from "@peculiar/x509";
import { createPublicKey, webcrypto, type KeyObject } from "node:crypto";
import { fingerprintOfDer } from "./pin.ts";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

export const EC_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
export { createCsr } from "./csr.ts";
export {
  fingerprintOfDer,
  HOST_URI_PREFIX,
  hostIdOfSubjectAltName,
  joinEnrollToken,
  newPrivateKeyPem,
  splitEnrollToken,
} from "./pin.ts";

/** A node KeyObject (private, EC P-256) as a WebCrypto key pair for @peculiar/x509. */
export async function webKeys(privateKey: KeyObject): Promise<CryptoKeyPair> {
  const algo = { name: "ECDSA", namedCurve: "P-256" };
  const priv = await webcrypto.subtle.importKey(
    "pkcs8",
    privateKey.export({ type: "pkcs8", format: "der" }),
    algo,
    false,
    ["sign"],
  );
  const pub = await webcrypto.subtle.importKey(
    "spki",
    createPublicKey(privateKey).export({ type: "spki", format: "der" }),
    algo,
    true,
    ["verify"],
  );
  return { privateKey: priv as unknown as CryptoKey, publicKey: pub as unknown as CryptoKey };
}

export function fingerprintOfPem(pem: string): string {
  return fingerprintOfDer(new Uint8Array(new x509.X509Certificate(pem).rawData));
}
