// The agents' mutual-TLS channel with real TLS, real grpc-js, the real agent client and a
// real API over PostgreSQL/Redis (no kernel: the agent's handlers do nothing). Enrollment
// pins the CA; the stream's host comes from the verified certificate; foreign, expired,
// not-yet-valid and deleted hosts' certificates are refused; after a renewal the stream
// moves to the new certificate.
import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { silentLog, startAgentServer, type RunningAgentServer } from "../../src/api/grpc/index.ts";
import { AgentServiceClient } from "../../src/protocol/agent.ts";
import { AgentCa, ensureCa } from "../../src/api/tls/ca.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import type { AgentClient } from "../../src/agent/client.ts";
import { StateDir } from "../../src/agent/state.ts";
import { clientCredentials } from "../../src/agent/tls.ts";
import { createCsr, hostIdOfSubjectAltName, newPrivateKeyPem, splitEnrollToken } from "../../src/protocol/pki.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { createTestDatabase } from "../support/db.ts";
import { spawnSync } from "node:child_process";
import { streamEnd, waitFor, type StreamEnd } from "../support/grpc-fleet.ts";
import { serialOf } from "../support/cert-serial.ts";
import { noKernelAgent } from "../support/no-kernel-agent.ts";

const SECRET = "test-secret-key-for-the-ca-0123456789abcdef";
let t: TestApp;
let ca: AgentCa;
let replica: RunningAgentServer;
const dirs: string[] = [];
const clients: AgentClient[] = [];

async function startReplica(c: AgentCa, clientCertTtlSeconds = 3600): Promise<RunningAgentServer> {
  return startAgentServer(
    { db: t.db, redis: t.redis, log: silentLog },
    {
      address: "127.0.0.1:0",
      tls: { ca: c, enrollAddress: "127.0.0.1:0", serverNames: ["127.0.0.1", "localhost"], clientCertTtlSeconds },
    },
  );
}

before(async () => {
  t = await startTestApp();
  ca = await ensureCa(t.db, SECRET);
  replica = await startReplica(ca);
});
after(async () => {
  for (const c of clients) c.stop();
  await replica?.stop();
  await t?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function token(): Promise<string> {
  const res = await t.req("POST", "/v1/enrollment-tokens", { body: { ttlSeconds: 3600 } });
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { token: string }).token;
}

/** A real agent client (no kernel behind it) enrolling through `r`'s enrollment port. */
async function agent(name: string, opts: { r?: RunningAgentServer; token?: string; dir?: string } = {}) {
  const r = opts.r ?? replica;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "palisade-mtls-"));
  if (!opts.dir) dirs.push(dir);
  const state = await StateDir.open(dir);
  let connected = 0;
  const log = memoryLog("debug");
  const client = noKernelAgent({
    server: `127.0.0.1:${r.port}`,
    enrollServer: `127.0.0.1:${r.enrollPort}`,
    name,
    enrollToken: opts.token ?? (await token()),
    state,
    log,
    connected: () => void connected++,
  });
  clients.push(client);
  return { client, state, dir, log, connected: () => connected };
}

/** Open a Connect stream with raw credentials and see how it ends (or that it stays open). */
async function connectWith(
  creds: grpc.ChannelCredentials,
  port: number,
  metadata: Record<string, string> = {},
): Promise<StreamEnd> {
  const c = new AgentServiceClient(`127.0.0.1:${port}`, creds) as unknown as grpc.Client & Record<string, Function>;
  try {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    const call = c.Connect!(md) as grpc.ClientDuplexStream<unknown, unknown>;
    const end = streamEnd(call);
    call.write({
      hello: { capabilities: null, applied: { ruleset: "", version: 0, checksum: "" }, telemetryEpoch: "e1" },
    });
    const open = new Promise<StreamEnd>((resolve) => {
      // A stream the server accepted answers the heartbeat; report it as "open".
      call.on("data", () => {
        call.cancel();
        resolve({ code: -1, details: "open", palisadeCode: undefined });
      });
      call.write({ heartbeat: { seq: "1", unixMs: String(Date.now()) } });
    });
    return await Promise.race([end, open]);
  } finally {
    c.close();
  }
}

/** A key and a certificate for `hostId` from `issuer`, valid from `now` for `ttl` seconds. */
async function certFor(issuer: AgentCa, hostId: string, ttl = 3600, now = Date.now()) {
  const keyPem = newPrivateKeyPem();
  const cert = await issuer.issueClient(await createCsr(createPrivateKey(keyPem), "x"), hostId, ttl, now);
  return { keyPem, certPem: cert.certPem, caPem: ca.certPem };
}

describe("mutual TLS on the agent channel", () => {
  test("the enrollment token pins the CA; the agent enrolls with its own key and connects with its certificate", async () => {
    const tok = await token();
    assert.equal(splitEnrollToken(tok).pin, ca.fingerprint);
    const a = await agent("edge-good", { token: tok });
    await a.client.start();
    await waitFor(() => a.connected() > 0, 10_000, "the stream to open");
    assert.ok(a.client.mutualTls);
    const cred = (await a.state.readCredential())!;
    const tls = (await a.state.readTls())!;
    assert.equal(statSync(join(a.dir, "tls.json")).mode & 0o777, 0o600);
    assert.equal(hostIdOfSubjectAltName(new X509Certificate(tls.certPem).subjectAltName), cred.hostId);
    await waitFor(
      () => [...replica.sessions()].some((s) => s.identity.hostId === cred.hostId),
      10_000,
      "the session on the replica",
    );
    const row = await t.db.host.findUniqueOrThrow({ where: { id: cred.hostId } });
    assert.equal(
      row.certSerial?.toUpperCase().replace(/^0+/, ""),
      new X509Certificate(tls.certPem).serialNumber.toUpperCase().replace(/^0+/, ""),
    );
  });

  test("replicas share one CA: concurrent first starts agree, a wrong PALISADE_SECRET_KEY is refused, an agent enrolled on one replica streams to another", async () => {
    // Two replicas starting at once on a database without a CA make one between them.
    const fresh = await startTestApp();
    try {
      const [x, y] = await Promise.all([ensureCa(fresh.db, SECRET), ensureCa(fresh.db, SECRET)]);
      assert.equal(x.fingerprint, y.fingerprint);
      assert.equal(await fresh.db.certificateAuthority.count(), 1);
    } finally {
      await fresh.close();
    }
    const again = await Promise.all([ensureCa(t.db, SECRET), ensureCa(t.db, SECRET)]);
    assert.deepEqual(
      again.map((c) => c.fingerprint),
      [ca.fingerprint, ca.fingerprint],
    );
    await assert.rejects(
      ensureCa(t.db, "another-secret-key-of-enough-length-000000"),
      (e: Error & { code?: string }) => e.code === "secret_key_wrong",
    );
    const row = await t.db.certificateAuthority.findUniqueOrThrow({ where: { id: 1 } });
    assert.ok(!row.keyEncrypted.includes("PRIVATE KEY"), "the CA key is stored in clear");
    const second = await startReplica(again[1]!);
    try {
      const a = await agent("edge-two-replicas");
      await a.client.ensureCredential();
      const end = await connectWith(clientCredentials((await a.state.readTls())!), second.port);
      assert.equal(end.code, -1, end.details);
    } finally {
      await second.stop();
    }
  });

  test("a plaintext client, and a TLS client without a certificate, are refused by the agent port", async () => {
    const plain = await connectWith(grpc.credentials.createInsecure(), replica.port, {
      authorization: "Bearer whatever",
    });
    assert.equal(plain.code, grpc.status.UNAVAILABLE, plain.details);
    const noCert = await connectWith(grpc.credentials.createSsl(Buffer.from(ca.certPem)), replica.port);
    assert.notEqual(noCert.code, -1, "a client without a certificate got a stream");
  });

  test("a certificate from another CA is refused in the handshake", async () => {
    const a = await agent("edge-foreign-victim");
    await a.client.ensureCredential();
    const hostId = (await a.state.readCredential())!.hostId;
    const { ca: other } = await AgentCa.create();
    const end = await connectWith(clientCredentials(await certFor(other, hostId)), replica.port);
    assert.equal(end.code, grpc.status.UNAVAILABLE, end.details);
  });

  test("expired and not-yet-valid certificates are refused", async () => {
    const a = await agent("edge-expired");
    await a.client.ensureCredential();
    const hostId = (await a.state.readCredential())!.hostId;
    const expired = await connectWith(
      clientCredentials(await certFor(ca, hostId, 3600, Date.now() - 7200_000)),
      replica.port,
    );
    assert.equal(expired.code, grpc.status.UNAVAILABLE, expired.details);
    const future = await connectWith(
      clientCredentials(await certFor(ca, hostId, 3600, Date.now() + 7200_000)),
      replica.port,
    );
    assert.equal(future.code, grpc.status.UNAVAILABLE, future.details);
    // The same host with its certificate on record gets a stream: the refusals were about time.
    const ok = await connectWith(clientCredentials((await a.state.readTls())!), replica.port);
    assert.equal(ok.code, -1, ok.details);
    // A valid certificate of the CA for this host that is not on record is refused by serial.
    const stray = await connectWith(clientCredentials(await certFor(ca, hostId)), replica.port);
    assert.equal(stray.palisadeCode, "certificate_superseded", stray.details);
  });

  test("host A's certificate cannot act for host B", async () => {
    const a = await agent("edge-a");
    const b = await agent("edge-b");
    await a.client.ensureCredential();
    await b.client.ensureCredential();
    const bId = (await b.state.readCredential())!.hostId;
    const end = await connectWith(clientCredentials((await a.state.readTls())!), replica.port, {
      "palisade-host": bId,
    });
    assert.equal(end.palisadeCode, "wrong_host", end.details);
  });

  test("a deleted host's and a disabled host's certificates are refused", async () => {
    const d = await agent("edge-deleted");
    await d.client.ensureCredential();
    const dTls = (await d.state.readTls())!;
    const del = await t.req("DELETE", `/v1/hosts/${(await d.state.readCredential())!.hostId}`);
    assert.equal(del.statusCode, 204, del.body);
    const gone = await connectWith(clientCredentials(dTls), replica.port);
    assert.equal(gone.palisadeCode, "host_deleted", gone.details);

    const x = await agent("edge-disabled");
    await x.client.ensureCredential();
    const dis = await t.req("POST", `/v1/hosts/${(await x.state.readCredential())!.hostId}/disable`);
    assert.equal(dis.statusCode < 300, true, dis.body);
    const off = await connectWith(clientCredentials((await x.state.readTls())!), replica.port);
    assert.equal(off.palisadeCode, "host_disabled", off.details);
  });

  test("an agent whose token pins another CA refuses the server and sends it nothing", async () => {
    const { ca: other } = await AgentCa.create();
    const tok = await token();
    const a = await agent("edge-pinned-elsewhere", { token: `${splitEnrollToken(tok).secret}.${other.fingerprint}` });
    await assert.rejects(a.client.ensureCredential(), (e: Error & { code?: string }) => e.code === "ca_mismatch");
    const rows = await t.db.enrollmentToken.findMany({ where: { usedAt: null } });
    assert.ok(rows.length >= 1, "the token was not consumed");
    assert.equal(await t.db.host.count({ where: { name: "edge-pinned-elsewhere" } }), 0);
  });

  test("an agent refuses a server whose certificate another CA issued", async () => {
    const a = await agent("edge-rogue-victim");
    await a.client.ensureCredential();
    const { ca: rogueCa } = await AgentCa.create();
    const rogue = await startReplica(rogueCa);
    try {
      const c = new AgentServiceClient(`127.0.0.1:${rogue.port}`, clientCredentials((await a.state.readTls())!));
      const err = await new Promise<Error | undefined>((resolve) => c.waitForReady(Date.now() + 3_000, resolve));
      c.close();
      assert.ok(err, "the agent's channel became ready against a server from another CA");
      assert.equal(rogue.sessions().size, 0);
    } finally {
      await rogue.stop();
    }
  });

  test("a host enrolled with mutual TLS whose tls.json is gone refuses to start instead of falling back to plaintext", async () => {
    const a = await agent("edge-no-tls-json");
    const cred = await a.client.ensureCredential();
    assert.equal(cred.channel, "mtls");
    assert.equal((await a.state.readCredential())!.channel, "mtls", "the enrollment mode is on disk");
    const saved = (await a.state.readTls())!;
    unlinkSync(join(a.dir, "tls.json"));
    const again = await agent("edge-no-tls-json", { dir: a.dir });
    await assert.rejects(again.client.ensureCredential(), (e: Error & { code?: string }) => {
      assert.equal(e.code, "tls_missing");
      assert.match(e.message, /enrolled with mutual TLS, but .*tls\.json .* is missing/);
      assert.match(
        e.message,
        /Restore tls\.json .* or re-enroll: delete the host \(palisade hosts delete edge-no-tls-json\)/,
      );
      return true;
    });
    assert.equal(again.client.mutualTls, false);
    // A credential.json written before the mode was recorded gets it recorded from tls.json.
    await a.state.writeTls(saved);
    await a.state.writeCredential({ hostId: cred.hostId, hostName: cred.hostName, credential: cred.credential });
    const legacy = await agent("edge-no-tls-json", { dir: a.dir });
    assert.equal((await legacy.client.ensureCredential()).channel, "mtls");
    assert.equal((await a.state.readCredential())!.channel, "mtls");
    unlinkSync(join(a.dir, "tls.json"));
    await assert.rejects(
      (await agent("edge-no-tls-json", { dir: a.dir })).client.ensureCredential(),
      (e: Error & { code?: string }) => e.code === "tls_missing",
    );
  });

  test("after a renewal only the new certificate and, until it is first seen, the one it replaced are accepted; a copy of the old tls.json is refused", {
    timeout: 60_000,
  }, async () => {
    const a = await agent("edge-copy");
    await a.client.ensureCredential();
    const old = (await a.state.readTls())!;
    const hostId = (await a.state.readCredential())!.hostId;
    const renewWith = (m: { keyPem: string; certPem: string; caPem: string }, keyPem = newPrivateKeyPem()) =>
      new Promise<{ err: grpc.ServiceError | null; certPem?: string }>((resolve) => {
        const c = new AgentServiceClient(`127.0.0.1:${replica.port}`, clientCredentials(m)) as unknown as grpc.Client &
          Record<string, Function>;
        void createCsr(createPrivateKey(keyPem), "x").then((csr) =>
          c.Renew!({ csr }, (err: grpc.ServiceError | null, res: { certificate?: string } | undefined) => {
            c.close();
            resolve({ err, certPem: res?.certificate });
          }),
        );
      });
    const newKey = newPrivateKeyPem();
    const renewed = await renewWith(old, newKey);
    assert.equal(renewed.err, null, renewed.err?.message);
    const fresh = { keyPem: newKey, certPem: renewed.certPem!, caPem: old.caPem };
    // The answer may have been lost: the replaced certificate still works until the new one is seen.
    assert.equal((await connectWith(clientCredentials(old), replica.port)).details, "open");
    assert.equal((await connectWith(clientCredentials(fresh), replica.port)).details, "open");
    // Now the old one (still valid, e.g. a copied tls.json) is refused, for streams and renewals.
    const refused = await connectWith(clientCredentials(old), replica.port);
    assert.equal(refused.palisadeCode, "certificate_superseded", refused.details);
    const again = await renewWith(old);
    assert.equal(again.err?.metadata.get("palisade-code")[0], "certificate_superseded");
    const audit = await t.db.auditLog.findMany({ where: { action: "host.cert_renew", target: "host:edge-copy" } });
    assert.equal(audit.length, 1);
    assert.equal((audit[0]!.details as { id: string }).id, hostId);
  });

  test("renewal at two thirds of the certificate's life moves the stream to the new certificate at once", {
    timeout: 120_000,
  }, async () => {
    // Six-second certificates: renewal at 4 s leaves 2 s for the Renew call on a loaded machine.
    const short = await startReplica(ca, 6);
    const onServer = () => [...short.sessions()].map((s) => s.identity.certSerial);
    try {
      const a = await agent("edge-renew", { r: short });
      await a.client.start();
      await waitFor(() => a.connected() > 0, 10_000, "the stream to open");
      const first = a.client.certificate!;
      assert.deepEqual(onServer(), [serialOf(first)]);
      await waitFor(
        () => a.client.renewals >= 2,
        40_000,
        "two renewals (the second one made with the renewed certificate)",
      );
      assert.notEqual(a.client.certificate, first);
      assert.deepEqual((await a.state.readTls())!.certPem, a.client.certificate);
      // Each renewal ended the stream and opened one with the new certificate: the API's only
      // stream for the host runs on the current serial, never on the first one.
      await waitFor(
        () => onServer().length === 1 && onServer()[0] === serialOf(a.client.certificate!),
        20_000,
        "the API's stream to run on the renewed certificate",
      );
      assert.ok(a.client.connects >= 3, `one stream per certificate (connects ${a.client.connects})`);
    } finally {
      await short.stop();
    }
  });
});

test("palisade ca init creates the CA once and prints its SHA-256; a second run finds it", {
  timeout: 60_000,
}, async () => {
  const database = await createTestDatabase();
  try {
    const env = {
      ...process.env,
      DATABASE_URL: database.url,
      PALISADE_SECRET_KEY: SECRET,
      PALISADE_GRPC_PLAINTEXT: "",
    };
    const run = () => {
      const r = spawnSync(new URL("../../bin/palisade", import.meta.url).pathname, ["ca", "init"], {
        env,
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { msg: string; caFingerprint: string };
    };
    const first = run();
    const second = run();
    assert.equal(first.msg, "agent CA created");
    assert.equal(second.msg, "agent CA exists");
    assert.match(first.caFingerprint, /^[0-9a-f]{64}$/);
    assert.equal(second.caFingerprint, first.caFingerprint);
    assert.ok(!JSON.stringify([first, second]).includes("PRIVATE KEY"));
  } finally {
    await database.drop();
  }
});

test("start-up logs: mutual TLS alone says so and warns of nothing; plaintext and the legacy port each warn", async () => {
  const warnings = async (opts: Parameters<typeof startAgentServer>[1]) => {
    const log = memoryLog("debug");
    const r = await startAgentServer({ db: t.db, redis: t.redis, log }, opts);
    await r.stop();
    return {
      info: log.lines.filter((l) => l.level === 30).map((l) => String(l.msg)),
      warn: log.lines.filter((l) => l.level === 40).map((l) => String(l.msg)),
    };
  };
  const tls = { ca, enrollAddress: "127.0.0.1:0", serverNames: ["127.0.0.1"], clientCertTtlSeconds: 3600 };
  const mtls = await warnings({ address: "127.0.0.1:0", tls });
  assert.ok(
    mtls.info.some((m) => /listening \(mutual TLS\)/.test(m)),
    mtls.info.join("\n"),
  );
  assert.deepEqual(
    mtls.warn.filter((m) => /WITHOUT TLS/.test(m)),
    [],
    "a mutual-TLS start warned of plaintext",
  );
  const plain = await warnings({ address: "127.0.0.1:0" });
  assert.ok(
    plain.warn.some((m) => /server listening WITHOUT TLS \(PALISADE_GRPC_PLAINTEXT\)/.test(m)),
    plain.warn.join("\n"),
  );
  const legacy = await warnings({ address: "127.0.0.1:0", tls: { ...tls, legacyAddress: "127.0.0.1:0" } });
  assert.ok(
    legacy.warn.some((m) => /legacy port listening WITHOUT TLS/.test(m)),
    legacy.warn.join("\n"),
  );
  assert.ok(
    !legacy.warn.some((m) => /PALISADE_GRPC_PLAINTEXT/.test(m)),
    "the legacy port start claimed plaintext mode",
  );
});
