// The stored CA row is checked, not trusted: the decrypted key must be cert_pem's, the
// fingerprint column must be cert_pem's SHA-256 (tokens pin one computed from the
// certificate), and the key is encrypted with the certificate as associated data, so a
// key_encrypted moved beside another certificate does not decrypt. A row written before the
// associated data (v1) still loads and is rewritten. Renewals are capped per host.
import assert from "node:assert/strict";
import { createCipheriv, createHash, createPrivateKey, hkdfSync, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { AgentCa, caFingerprint, CaError, decryptKey, ensureCa } from "../../src/api/tls/ca.ts";
import { silentLog, startAgentServer } from "../../src/api/grpc/index.ts";
import { AgentServiceClient } from "../../src/protocol/agent.ts";
import { createCsr, fingerprintOfPem, newPrivateKeyPem } from "../../src/protocol/pki.ts";
import { clientCredentials } from "../../src/agent/tls.ts";
import { startTestApp, type TestApp } from "../support/app.ts";

const SECRET = "ca-row-test-secret-key-0123456789abcdef";
let t: TestApp;
before(async () => {
  t = await startTestApp();
});
after(async () => {
  await t?.close();
});

const row = () => t.db.certificateAuthority.findUniqueOrThrow({ where: { id: 1 } });
const refused = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof CaError && e.code === code && re.test(e.message);

/** The v1 format: as encryptKey wrote it before associated data. */
function encryptV1(pem: string, secret: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = Buffer.from(hkdfSync("sha256", secret, salt, "palisade certificate authority key v1", 32));
  const c = createCipheriv("aes-256-gcm", key, iv);
  const ct = Buffer.concat([c.update(pem, "utf8"), c.final()]);
  return ["v1", salt, iv, c.getAuthTag(), ct]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(".");
}

describe("the stored CA row", () => {
  test("a key moved beside another certificate, a swapped certificate or a wrong fingerprint column is refused", async () => {
    const ca = await ensureCa(t.db, SECRET);
    const good = await row();
    assert.match(good.keyEncrypted, /^v2\./);
    assert.equal(await caFingerprint(t.db), ca.fingerprint);
    const other = await AgentCa.create();
    try {
      // Another CA's certificate beside this key: the associated data no longer matches.
      await t.db.certificateAuthority.update({
        where: { id: 1 },
        data: { certPem: other.ca.certPem, fingerprint: other.ca.fingerprint },
      });
      await assert.rejects(ensureCa(t.db, SECRET), refused("secret_key_wrong", /belongs to another CA certificate/));
      // The fingerprint column alone changed: refused, and tokens pin the certificate's anyway.
      await t.db.certificateAuthority.update({
        where: { id: 1 },
        data: { certPem: good.certPem, fingerprint: "0".repeat(64) },
      });
      await assert.rejects(ensureCa(t.db, SECRET), refused("ca_corrupt", /fingerprint column/));
      assert.equal(await caFingerprint(t.db), ca.fingerprint, "computed from cert_pem, not read from the column");
      // A v1 (no associated data) key that is not cert_pem's: the key check catches it.
      await t.db.certificateAuthority.update({
        where: { id: 1 },
        data: { fingerprint: good.fingerprint, keyEncrypted: encryptV1(other.keyPem, SECRET) },
      });
      await assert.rejects(ensureCa(t.db, SECRET), refused("ca_corrupt", /decrypted key is not the key of cert_pem/));
    } finally {
      await t.db.certificateAuthority.update({
        where: { id: 1 },
        data: { certPem: good.certPem, fingerprint: good.fingerprint, keyEncrypted: good.keyEncrypted },
      });
    }
  });

  test("a v1 row (no associated data) still loads and is rewritten as v2", async () => {
    const ca = await ensureCa(t.db, SECRET);
    const good = await row();
    // Recover the key through a v2 decrypt, store it as v1.
    const keyPem = decryptKey(good.keyEncrypted, SECRET, good.certPem);
    await t.db.certificateAuthority.update({ where: { id: 1 }, data: { keyEncrypted: encryptV1(keyPem, SECRET) } });
    const again = await ensureCa(t.db, SECRET);
    assert.equal(again.fingerprint, ca.fingerprint);
    assert.match((await row()).keyEncrypted, /^v2\./, "rewritten with associated data");
    assert.equal(decryptKey((await row()).keyEncrypted, SECRET, good.certPem), keyPem);
    assert.equal(
      fingerprintOfPem(good.certPem),
      createHash("sha256")
        .update(Buffer.from(good.certPem.replace(/-----[^-]+-----|\s/g, ""), "base64"))
        .digest("hex"),
    );
  });
});

describe("renewal rate limit", () => {
  test("a host gets renewsPerHour renewals, then rate_limited; another host is not affected", async () => {
    const ca = await ensureCa(t.db, SECRET);
    const replica = await startAgentServer(
      { db: t.db, redis: t.redis, log: silentLog },
      {
        address: "127.0.0.1:0",
        tls: {
          ca,
          enrollAddress: "127.0.0.1:0",
          serverNames: ["127.0.0.1"],
          clientCertTtlSeconds: 3600,
          renewsPerHour: 3,
        },
      },
    );
    try {
      const hostFor = async (name: string) => {
        const host = await t.db.host.create({
          data: { name, labels: {}, capabilities: {}, credentialHash: randomBytes(16).toString("hex") } as never,
        });
        const keyPem = newPrivateKeyPem();
        const cert = await ca.issueClient(await createCsr(createPrivateKey(keyPem), name), host.id, 3600);
        await t.db.host.update({
          where: { id: host.id },
          data: { certSerial: cert.serial, certExpiresAt: cert.notAfter },
        });
        return { id: host.id, m: { keyPem, certPem: cert.certPem, caPem: ca.certPem } };
      };
      const renew = (m: { keyPem: string; certPem: string; caPem: string }) =>
        new Promise<{ err: grpc.ServiceError | null; certPem?: string; keyPem: string }>((resolve) => {
          const keyPem = newPrivateKeyPem();
          const c = new AgentServiceClient(
            `127.0.0.1:${replica.port}`,
            clientCredentials(m),
          ) as unknown as grpc.Client & Record<string, Function>;
          void createCsr(createPrivateKey(keyPem), "x").then((csr) =>
            c.Renew!({ csr }, (err: grpc.ServiceError | null, res: { certificate?: string } | undefined) => {
              c.close();
              resolve({ err, certPem: res?.certificate, keyPem });
            }),
          );
        });
      const a = await hostFor("renew-limit-a");
      let m = a.m;
      for (let i = 0; i < 3; i++) {
        const r = await renew(m);
        assert.equal(r.err, null, `renewal ${i + 1}: ${r.err?.message}`);
        m = { keyPem: r.keyPem, certPem: r.certPem!, caPem: ca.certPem };
      }
      const fourth = await renew(m);
      assert.equal(fourth.err?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(fourth.err?.metadata.get("palisade-code")[0], "rate_limited");
      assert.equal(
        await t.db.auditLog.count({ where: { action: "host.cert_renew", target: "host:renew-limit-a" } }),
        3,
        "the refused one issued nothing",
      );
      const b = await hostFor("renew-limit-b");
      assert.equal((await renew(b.m)).err, null);
      await t.redis.del(`palisade:renew:${a.id}`, `palisade:renew:${b.id}`);
    } finally {
      await replica.stop();
    }
  });
});
