// The agent's hand-encoded certificate request, read back by the decoder the API's CA uses
// (@peculiar/x509): the CA accepts it only when the key is EC P-256 and the signature
// verifies (src/api/tls/ca.ts).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { createCsr } from "../../../src/protocol/csr.ts";
import { newPrivateKeyPem, x509 } from "../../../src/protocol/pki.ts";

describe("createCsr", () => {
  for (const name of ["edge-1", "h".repeat(200), "hôte-ü"]) {
    it(`encodes a request the CA's decoder reads and verifies (CN of ${name.length} characters)`, async () => {
      const key = createPrivateKey(newPrivateKeyPem());
      const csr = new x509.Pkcs10CertificateRequest(await createCsr(key, name));
      assert.equal(csr.subject, `CN=${name}`);
      assert.equal((csr.publicKey.algorithm as EcKeyAlgorithm).namedCurve, "P-256");
      assert.equal(await csr.verify(), true);
      const ours = key.export({ format: "jwk" });
      const theirs = await webcryptoJwk(csr);
      assert.deepEqual([theirs.x, theirs.y], [ours.x, ours.y], "the request carries the key's public half");
    });
  }

  it("a request whose signature was made by another key does not verify", async () => {
    const pem = await createCsr(createPrivateKey(newPrivateKeyPem()), "edge-1");
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der.writeUInt8(der.readUInt8(der.length - 5) ^ 0x01, der.length - 5); // a bit of the signature
    const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n");
    const csr = new x509.Pkcs10CertificateRequest(
      `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`,
    );
    assert.equal(await csr.verify().catch(() => false), false);
  });

  it("refuses a key that is not EC P-256", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
    await assert.rejects(createCsr(privateKey, "edge-1"), /EC P-256/);
  });
});

async function webcryptoJwk(csr: x509.Pkcs10CertificateRequest): Promise<JsonWebKey> {
  const { webcrypto } = await import("node:crypto");
  const key = await csr.publicKey.export(webcrypto as unknown as Crypto);
  return webcrypto.subtle.exportKey("jwk", key as never);
}
