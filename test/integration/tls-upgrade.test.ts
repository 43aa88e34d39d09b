// Moving hosts enrolled over plaintext to mutual TLS in place (docs/security.md, "Upgrading
// a host enrolled over plaintext"), against a real API (PostgreSQL, Redis, grpc-js): hosts
// enroll on a plaintext replica, then a transition replica serves mutual TLS plus the legacy
// plaintext port. POST /v1/hosts/:id/tls-upgrade makes a single-use secret (stored hashed,
// never logged); Upgrade on the legacy port refuses a wrong, used or expired secret, another
// host's credential and a CSR naming another host, writing nothing; a good one issues a
// certificate for the same host id, and the host's first mutual TLS connect retires its
// bearer credential on the legacy port.
import assert from "node:assert/strict";
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { StateDir } from "../../src/agent/state.ts";
import * as grpc from "@grpc/grpc-js";
import { hashSecret } from "../../src/api/auth.ts";
import type { RunningAgentServer } from "../../src/api/grpc/server.ts";
import { ensureCa, type AgentCa } from "../../src/api/tls/ca.ts";
import { createCsr, hostIdOfSubjectAltName, newPrivateKeyPem, splitEnrollToken } from "../../src/protocol/pki.ts";
import type { UpgradeResponse } from "../../src/protocol/agent.ts";
import { memoryLog } from "../../src/runtime/log.ts";
import { client, SimAgent, startFleet, streamEnd, waitFor, type Fleet } from "../support/grpc-fleet.ts";
import { noKernelAgent } from "../support/no-kernel-agent.ts";

const log = memoryLog("debug");
const BIN = fileURLToPath(new URL("../../bin/palisade", import.meta.url));

/** The real CLI (built dist/) as a child process; bounded by a timeout. */
function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}
let f: Fleet;
let ca: AgentCa;
let transition: RunningAgentServer;
let a: SimAgent;
let b: SimAgent;

before(async () => {
  f = await startFleet({ tls: false, log });
  a = await f.agent("up-a", {}, { connect: false });
  b = await f.agent("up-b", {}, { connect: false });
  // The API restarts with mutual TLS and the legacy port (the plaintext replica stays: it
  // is only where the hosts enrolled).
  ca = await ensureCa(f.t.db, "upgrade-test-secret-key-0123456789abcdef");
  transition = await f.addReplica({
    opts: {
      tls: {
        ca,
        enrollAddress: "127.0.0.1:0",
        serverNames: ["127.0.0.1"],
        clientCertTtlSeconds: 3600,
        legacyAddress: "127.0.0.1:0",
      },
    },
  });
});
after(async () => {
  await f?.close();
});

const legacy = () => `127.0.0.1:${transition.legacyPort}`;
const codeOf = (err: unknown) => ({
  code: (err as grpc.ServiceError).code,
  palisade: (err as grpc.ServiceError).metadata?.get("palisade-code")[0]?.toString(),
});

function upgrade(
  address: string,
  req: { secret: string; csr: string },
  bearer: string | undefined,
  creds?: grpc.ChannelCredentials,
): Promise<UpgradeResponse> {
  const c = client(address, creds);
  const md = new grpc.Metadata();
  if (bearer) md.set("authorization", `Bearer ${bearer}`);
  return new Promise((resolve, reject) =>
    c.Upgrade!(req, md, (err: grpc.ServiceError | null, res: UpgradeResponse) => {
      c.close();
      if (err) reject(err);
      else resolve(res);
    }),
  );
}

async function newSecretFor(host: string, as: "operator" | "admin" = "operator") {
  const r = await f.t.req("POST", `/v1/hosts/${host}/tls-upgrade`, { as });
  assert.equal(r.statusCode, 201, r.body);
  return r.json() as { id: string; hostId: string; secret: string; caFingerprint: string; expiresAt: string };
}

const csrFor = async (name: string) => {
  const keyPem = newPrivateKeyPem();
  return { keyPem, csr: await createCsr(createPrivateKey(keyPem), name) };
};

/** Nothing was written for the host: no certificate on record, its bearer still the one from enrollment. */
async function untouched(agent: SimAgent) {
  const h = await f.t.db.host.findUniqueOrThrow({ where: { id: agent.hostId } });
  assert.equal(h.certSerial, null, `${agent.name}: no certificate on record`);
  assert.equal(h.credentialHash, hashSecret(agent.credential), `${agent.name}: bearer credential unchanged`);
}

const refusedWith = (palisade: string, code: grpc.status) => (e: unknown) => {
  assert.deepEqual(codeOf(e), { code, palisade });
  return true;
};

describe("POST /v1/hosts/:id/tls-upgrade", () => {
  test("operator gets a pinned single-use secret, stored hashed and audited; viewer is refused; unknown and disabled hosts are not", async () => {
    const viewer = await f.t.req("POST", "/v1/hosts/up-a/tls-upgrade", { as: "viewer" });
    assert.equal(viewer.statusCode, 403, viewer.body);
    const none = await f.t.req("POST", "/v1/hosts/no-such-host/tls-upgrade", { as: "operator" });
    assert.equal(none.statusCode, 404, none.body);

    const s = await newSecretFor("up-a");
    const pin = createHash("sha256").update(new X509Certificate(ca.certPem).raw).digest("hex");
    assert.equal(s.caFingerprint, pin);
    assert.match(s.secret, /^palupgrade_[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/);
    const { secret, pin: carried } = splitEnrollToken(s.secret);
    assert.equal(carried, pin, "the secret carries the CA pin");
    assert.equal(s.hostId, a.hostId);
    const row = await f.t.db.tlsUpgradeSecret.findUniqueOrThrow({ where: { id: s.id } });
    assert.equal(row.secretHash, hashSecret(secret), "only the hash is stored");
    assert.ok(!JSON.stringify(row).includes(secret), "the row holds no secret");
    const left = Date.parse(s.expiresAt) - Date.now();
    assert.ok(left > 0 && left <= 15 * 60_000, `short-lived (${left} ms)`);
    const audit = await f.t.db.auditLog.findMany({ where: { action: "host.tls_upgrade_secret" } });
    assert.equal(audit.length, 1);
    assert.ok(
      !JSON.stringify(audit, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)).includes(secret),
      "the audit entry holds no secret",
    );

    // A second secret for the host voids the first (unused) one.
    const s2 = await newSecretFor("up-a", "admin");
    assert.equal(await f.t.db.tlsUpgradeSecret.count({ where: { id: s.id } }), 0);
    assert.equal(await f.t.db.tlsUpgradeSecret.count({ where: { id: s2.id } }), 1);

    await f.t.req("POST", "/v1/hosts/up-b/disable");
    const disabled = await f.t.req("POST", "/v1/hosts/up-b/tls-upgrade", { as: "operator" });
    assert.equal(disabled.statusCode, 409, disabled.body);
    await f.t.req("POST", "/v1/hosts/up-b/enable");
  });
});

describe("Upgrade on the legacy plaintext port", () => {
  test("wrong, foreign, misnamed, expired and unauthenticated requests are refused and write nothing", async () => {
    const sa = await newSecretFor("up-a");
    const { csr } = await csrFor("up-a");
    await assert.rejects(
      upgrade(legacy(), { secret: "palupgrade_nope", csr }, a.credential),
      refusedWith("upgrade_secret_invalid", grpc.status.UNAUTHENTICATED),
    );
    await assert.rejects(
      upgrade(legacy(), { secret: sa.secret, csr }, undefined),
      refusedWith("unauthenticated", grpc.status.UNAUTHENTICATED),
    );
    // A's secret with B's bearer credential.
    await assert.rejects(
      upgrade(legacy(), { secret: sa.secret, csr: (await csrFor("up-b")).csr }, b.credential),
      refusedWith("wrong_host", grpc.status.PERMISSION_DENIED),
    );
    // A's credential and secret, but a CSR naming B (by name, then by its host URI).
    await assert.rejects(
      upgrade(legacy(), { secret: sa.secret, csr: (await csrFor("up-b")).csr }, a.credential),
      refusedWith("csr_wrong_host", grpc.status.PERMISSION_DENIED),
    );
    await assert.rejects(
      upgrade(legacy(), { secret: sa.secret, csr: (await csrFor(b.hostId)).csr }, a.credential),
      refusedWith("csr_wrong_host", grpc.status.PERMISSION_DENIED),
    );
    await assert.rejects(
      upgrade(legacy(), { secret: sa.secret, csr: "not a csr" }, a.credential),
      refusedWith("invalid_csr", grpc.status.INVALID_ARGUMENT),
    );
    // Not on the mutual TLS ports.
    await assert.rejects(
      upgrade(
        `127.0.0.1:${transition.enrollPort}`,
        { secret: sa.secret, csr },
        a.credential,
        grpc.credentials.createSsl(Buffer.from(ca.certPem)),
      ),
      refusedWith("wrong_listener", grpc.status.FAILED_PRECONDITION),
    );
    // None of that spent the secret.
    const row = await f.t.db.tlsUpgradeSecret.findUniqueOrThrow({ where: { id: sa.id } });
    assert.equal(row.usedAt, null, "the secret is still unused");
    await f.t.db.tlsUpgradeSecret.update({ where: { id: sa.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    await assert.rejects(
      upgrade(legacy(), { secret: sa.secret, csr }, a.credential),
      refusedWith("upgrade_secret_expired", grpc.status.UNAUTHENTICATED),
    );
    await untouched(a);
    await untouched(b);
    assert.equal(await f.t.db.auditLog.count({ where: { action: "host.tls_upgrade" } }), 0);
    assert.equal(
      (await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } })).id,
      a.hostId,
      "the host is still there",
    );
  });

  test("a good upgrade keeps the host id; the first mutual TLS connect retires the bearer; a used secret is refused", async () => {
    // The legacy port serves the bearer stream before the upgrade.
    await a.connect({ address: legacy() });
    a.close();

    const s = await newSecretFor(a.hostId);
    const { keyPem, csr } = await csrFor("up-a");
    const r = await upgrade(legacy(), { secret: s.secret, csr }, a.credential);
    assert.equal(r.agentPort, transition.port, "the answer names the mutual TLS agent port");
    assert.equal(r.caCertificate.trim(), ca.certPem.trim());
    const cert = new X509Certificate(r.certificate);
    assert.ok(cert.checkIssued(new X509Certificate(r.caCertificate)));
    assert.equal(hostIdOfSubjectAltName(cert.subjectAltName), a.hostId, "the certificate names the same host");
    const h = await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } });
    assert.equal(h.certSerial?.toLowerCase().replace(/^0+/, ""), cert.serialNumber.toLowerCase().replace(/^0+/, ""));
    assert.equal(h.credentialHash, hashSecret(a.credential), "the bearer works until the first mutual TLS connect");
    assert.equal(await f.t.db.auditLog.count({ where: { action: "host.tls_upgrade" } }), 1);

    // Used: refused, nothing changes.
    await assert.rejects(
      upgrade(legacy(), { secret: s.secret, csr: (await csrFor("up-a")).csr }, a.credential),
      refusedWith("upgrade_secret_used", grpc.status.UNAUTHENTICATED),
    );
    assert.equal(
      (await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } })).certSerial,
      h.certSerial,
      "the used secret issued nothing",
    );
    // Until then, the old bearer still gets a stream on the legacy port (an answer lost on the way leaves the agent working).
    await a.connect({ address: legacy() });
    a.close();

    const tlsAgent = new SimAgent(`127.0.0.1:${transition.port}`, a.hostId, a.name, a.credential, {
      keyPem,
      certPem: r.certificate,
      caPem: r.caCertificate,
    });
    await tlsAgent.connect();
    const after = await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } });
    assert.equal(after.credentialHash, null, "the bearer hash is cleared at the first mutual TLS connect");
    assert.equal(after.name, "up-a");
    tlsAgent.close();

    // The old bearer is refused on the legacy port from now on.
    const c = client(legacy());
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${a.credential}`);
    const call = c.Connect!(md) as grpc.ClientDuplexStream<unknown, unknown>;
    const end = await streamEnd(call);
    c.close();
    assert.equal(end.code, grpc.status.UNAUTHENTICATED, end.details);
    assert.equal(end.palisadeCode, "unauthenticated");
    // And the route says the host is on mutual TLS already.
    const again = await f.t.req("POST", `/v1/hosts/${a.hostId}/tls-upgrade`, { as: "operator" });
    assert.equal(again.statusCode, 409, again.body);

    // B, never upgraded, is still served on the legacy port.
    await b.connect({ address: legacy() });
    b.close();
  });

  test("palisade agent upgrade-tls: refused with nothing written, then upgraded from the secret file; a second run is refused", async () => {
    const c = await f.agent("up-c", {}, { connect: false });
    const dir = await mkdtemp(join(tmpdir(), "palisade-upgrade-cli-"));
    try {
      const state = await StateDir.open(dir);
      await state.writeCredential({
        hostId: c.hostId,
        hostName: c.name,
        credential: c.credential,
        channel: "plaintext",
      });
      const secretFile = join(dir, "upgrade-secret");
      const run = (secret: string) =>
        writeFile(secretFile, `${secret}\n`, { mode: 0o600 }).then(() =>
          runCli(["agent", "upgrade-tls", "--server", legacy(), "--state-dir", dir, "--name", "up-c"], {
            PALISADE_TLS_UPGRADE_SECRET_FILE: secretFile,
          }),
        );
      // B's secret with C's credential: refused, nothing written.
      const foreign = await newSecretFor("up-b");
      const refused = await run(foreign.secret);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /wrong_host/);
      assert.equal(await state.readTls(), undefined, "no tls.json after a refusal");
      assert.equal((await state.readCredential())!.channel, "plaintext");

      const ok = await run((await newSecretFor("up-c")).secret);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /upgraded to mutual TLS/);
      const tls = (await state.readTls())!;
      assert.equal(tls.server, `127.0.0.1:${transition.port}`);
      assert.equal(tls.upgradedFrom, legacy());
      assert.equal((await stat(join(dir, "tls.json"))).mode & 0o777, 0o600);
      assert.equal(hostIdOfSubjectAltName(new X509Certificate(tls.certPem).subjectAltName), c.hostId);
      assert.equal((await state.readCredential())!.channel, "mtls");
      // The certificate it stored opens a stream on the mutual TLS port.
      const tlsAgent = new SimAgent(`127.0.0.1:${transition.port}`, c.hostId, c.name, c.credential, tls);
      await tlsAgent.connect();
      tlsAgent.close();

      const again = await run((await newSecretFor("up-b")).secret);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /on mutual TLS already/);
      for (const r of [refused, ok, again])
        assert.doesNotMatch(
          r.stdout + r.stderr,
          /palupgrade_|pal_[A-Za-z0-9_-]{20,}/,
          "no secret or credential in the CLI's output",
        );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the agent client at start: a refused secret leaves it on its bearer, a good one moves it to the certificate", async () => {
    const d = await f.agent("up-d", {}, { connect: false });
    const dir = await mkdtemp(join(tmpdir(), "palisade-upgrade-start-"));
    const clientLog = memoryLog("debug");
    const start = async (secret: string) => {
      const c = noKernelAgent({
        server: legacy(),
        name: "up-d",
        tlsUpgradeSecret: secret,
        state: await StateDir.open(dir),
        log: clientLog,
      });
      await c.start();
      return c;
    };
    const streamOf = () => [...transition.sessions()].find((x) => x.identity.hostId === d.hostId);
    try {
      await (await StateDir.open(dir)).writeCredential({
        hostId: d.hostId,
        hostName: d.name,
        credential: d.credential,
        channel: "plaintext",
      });
      // Another host's secret: refused by the API.
      const foreign = await newSecretFor("up-b");
      const first = await start(foreign.secret);
      try {
        assert.equal(first.mutualTls, false, "a refused upgrade leaves the client on its bearer");
        await waitFor(() => streamOf() !== undefined, 10_000, "the bearer stream on the legacy port", 50);
        assert.equal(streamOf()!.identity.certSerial, undefined);
        assert.ok(
          clientLog.lines.some((l) => String(l.msg).includes("upgrade to mutual TLS failed")),
          "the refusal is logged",
        );
      } finally {
        first.stop();
      }
      await waitFor(() => streamOf() === undefined, 10_000, "the bearer stream closed", 50);

      const second = await start((await newSecretFor("up-d")).secret);
      try {
        assert.ok(second.mutualTls, "upgraded at start");
        assert.equal(second.server, `127.0.0.1:${transition.port}`);
        await waitFor(() => streamOf()?.identity.certSerial !== undefined, 10_000, "the stream on the certificate", 50);
      } finally {
        second.stop();
      }
      assert.ok(!JSON.stringify(clientLog.lines).includes("palupgrade_"), "no secret in the agent's log");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the secrets never reach the log", () => {
    const text = JSON.stringify(log.lines);
    assert.ok(text.includes("upgrade refused"), "the refusals were logged");
    assert.ok(!/palupgrade_[A-Za-z0-9_-]{20,}/.test(text), "no upgrade secret in the log");
    assert.ok(!text.includes(a.credential) && !text.includes(b.credential), "no bearer credential in the log");
  });
});
