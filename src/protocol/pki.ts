// X.509 pieces both ends of the agent channel need (docs/security.md, "Transport"):
// certificates and CSRs encoded by @peculiar/x509 over node's WebCrypto. The agent loads
// this module only when it makes a CSR (enrollment, renewal); names and pins are in pin.ts.
import "reflect-metadata"; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import * as x509 from "@peculiar/x509";
import { createPublicKey, webcrypto, type KeyObject } from "node:crypto";
import { fingerprintOfDer } from "./pin.ts";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

export const EC_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
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

/** A PKCS#10 request (PEM) for `privateKey`, signed by it (proof of possession). */
export async function createCsr(privateKey: KeyObject, commonName: string): Promise<string> {
  const keys = await webKeys(privateKey);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [commonName] }],
    keys,
    signingAlgorithm: EC_ALG,
  });
  return csr.toString("pem");
}

export function fingerprintOfPem(pem: string): string {
  return fingerprintOfDer(new Uint8Array(new x509.X509Certificate(pem).rawData));
}
