// The agent protocol against a real API replica (Postgres + Redis) on mutual TLS, the
// default: enrollment tokens are one-time and expiring; a certificate speaks only for its own host; bad messages are
// refused with a status while the server keeps serving everyone else. Results are acked
// (ResultAck) only after they are committed, and a resent result changes nothing twice.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { hashSecret } from "../../src/api/auth.ts";
import { splitEnrollToken } from "../../src/protocol/pin.ts";
import { MAX_MESSAGE_BYTES } from "../../src/protocol/agent.ts";
import { validPolicy } from "../support/policies.ts";
import { client, SimAgent, startFleet, streamEnd, waitFor, type Fleet } from "../support/grpc-fleet.ts";

let f: Fleet;
let addr: string;
before(async () => {
  f = await startFleet();
  addr = `127.0.0.1:${f.replicas[0]!.port}`;
});
after(async () => {
  await f?.close();
});

const codeOf = (err: unknown) => ({
  code: (err as grpc.ServiceError).code,
  palisade: (err as grpc.ServiceError).metadata?.get("palisade-code")[0]?.toString(),
});

describe("enroll", () => {
  test("a token enrolls one host with the token's labels and a credential stored hashed", async () => {
    const token = await f.enrollmentToken({ env: "prod", role: "edge" });
    const r = await f.enroll({ token, name: "enroll-ok" });
    assert.match(r.credential, /^pal_/);
    const h = await f.t.db.host.findUniqueOrThrow({ where: { id: r.hostId } });
    assert.equal(h.name, "enroll-ok");
    assert.deepEqual(h.labels, { env: "prod", role: "edge" });
    assert.equal(h.credentialHash, hashSecret(r.credential));
    const used = await f.t.db.enrollmentToken.findUniqueOrThrow({
      where: { tokenHash: hashSecret(splitEnrollToken(token).secret) },
    });
    assert.ok(used.usedAt);
    assert.equal(used.hostId, r.hostId);
  });

  test("a reused token is refused and creates nothing", async () => {
    const token = await f.enrollmentToken();
    await f.enroll({ token, name: "reuse-1" });
    await assert.rejects(f.enroll({ token, name: "reuse-2" }), (e) => {
      assert.deepEqual(codeOf(e), { code: grpc.status.UNAUTHENTICATED, palisade: "token_used" });
      return true;
    });
    assert.equal(await f.t.db.host.count({ where: { name: "reuse-2" } }), 0);
  });

  test("unknown, empty and expired tokens are refused", async () => {
    await assert.rejects(
      f.enroll({ token: "palenroll_nope", name: "x1" }),
      (e) => codeOf(e).palisade === "invalid_token",
    );
    await assert.rejects(f.enroll({ token: "", name: "x2" }), (e) => codeOf(e).code === grpc.status.UNAUTHENTICATED);
    const token = await f.enrollmentToken();
    await f.t.db.enrollmentToken.update({
      where: { tokenHash: hashSecret(splitEnrollToken(token).secret) },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    await assert.rejects(f.enroll({ token, name: "x3" }), (e) => {
      assert.deepEqual(codeOf(e), { code: grpc.status.UNAUTHENTICATED, palisade: "token_expired" });
      return true;
    });
    assert.equal(await f.t.db.host.count({ where: { name: { in: ["x1", "x2", "x3"] } } }), 0);
  });

  test("a taken name or a bad name is refused and leaves the token usable", async () => {
    await f.enroll({ token: await f.enrollmentToken(), name: "taken" });
    const token = await f.enrollmentToken();
    await assert.rejects(f.enroll({ token, name: "taken" }), (e) => codeOf(e).code === grpc.status.ALREADY_EXISTS);
    await assert.rejects(
      f.enroll({ token, name: "bad name;rm" }),
      (e) => codeOf(e).code === grpc.status.INVALID_ARGUMENT,
    );
    // A UUID-shaped name would collide with host ids (a UUID always addresses a host by id).
    await assert.rejects(f.enroll({ token, name: randomUUID() }), (e) => {
      assert.deepEqual(codeOf(e), { code: grpc.status.INVALID_ARGUMENT, palisade: "invalid_name" });
      assert.match((e as grpc.ServiceError).details, /must not look like a host id/);
      return true;
    });
    const r = await f.enroll({ token, name: "taken-2" });
    assert.ok(r.hostId);
  });

  test("two agents racing with one token: exactly one wins", async () => {
    const token = await f.enrollmentToken();
    const results = await Promise.allSettled([0, 1, 2, 3].map((i) => f.enroll({ token, name: `race-${i}` })));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    assert.equal(await f.t.db.host.count({ where: { name: { startsWith: "race-" } } }), 1);
  });
});

describe("connect", () => {
  test("hello marks the host connected with capabilities and applied version; the end marks it disconnected", async () => {
    await f.t.req("POST", "/v1/rulesets", { body: { name: "hello-rs" } });
    const v = (await f.t.req("POST", "/v1/rulesets/hello-rs/versions", { body: { policy: validPolicy() } })).json() as {
      version: number;
      checksum: string;
    };
    const a = await f.agent("conn-1", {}, { connect: false });
    a.applied = { ruleset: "hello-rs", version: v.version, checksum: v.checksum };
    await a.connect();
    const h = (await f.t.req("GET", "/v1/hosts/conn-1")).json();
    assert.equal(h.connection, "connected");
    assert.ok(h.lastSeenAt);
    assert.deepEqual(h.appliedVersion, { ruleset: "hello-rs", version: 1 });
    a.close();
    await waitFor(
      async () => (await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } })).connection === "disconnected",
      10_000,
      "disconnected",
    );
  });

  test("a reconnect elsewhere wins over the old stream, which is ended", async () => {
    const a = await f.agent("conn-2");
    const first = a.ended;
    // A second stream with the same credential (the agent restarted and reconnected)
    // while the first one is still open.
    const b = new SimAgent(addr, a.hostId, a.name, a.credential, a.tls);
    await b.connect();
    const end = await first;
    assert.equal(end.code, grpc.status.ABORTED);
    const h = await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } });
    assert.equal(h.connection, "connected", "the old stream ending must not mark the host disconnected");
    b.close();
  });

  test("no client certificate, with or without a bearer credential, gets no stream", async () => {
    const a = await f.agent("conn-nocert", {}, { connect: false });
    // TLS to the right CA, but no certificate of its own.
    const c = client(addr, grpc.credentials.createSsl(Buffer.from(f.ca!.certPem)));
    try {
      const none = await streamEnd(c.Connect!(new grpc.Metadata()));
      assert.notEqual(none.code, grpc.status.OK);
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${a.credential}`);
      assert.notEqual((await streamEnd(c.Connect!(md))).code, grpc.status.OK);
      assert.notEqual((await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } })).connection, "connected");
    } finally {
      c.close();
    }
  });
});

describe("an agent speaks only for its own host", () => {
  test("A's certificate with a claim to be B is refused", async () => {
    const a = await f.agent("ident-a");
    const b = await f.agent("ident-b");
    a.close();
    const c = a.client();
    try {
      for (const claim of [b.hostId, b.name]) {
        const md = a.authMetadata();
        md.set("palisade-host", claim);
        const end = await streamEnd(c.Connect!(md));
        assert.equal(end.code, grpc.status.PERMISSION_DENIED);
        assert.equal(end.palisadeCode, "wrong_host");
      }
      // Claiming to be itself is fine.
      await a.connect({ metadata: { "palisade-host": a.name } });
    } finally {
      c.close();
    }
  });

  test("A reporting a result for B's deployment target is refused and B's target is untouched", async () => {
    await f.t.req("POST", "/v1/rulesets", { body: { name: "ident-rs" } });
    await f.t.req("POST", "/v1/rulesets/ident-rs/versions", { body: { policy: validPolicy() } });
    const a = await f.agent("forge-a");
    const b = await f.agent("forge-b", {}, { connect: false });
    const version = await f.t.db.rulesetVersion.findFirstOrThrow({ where: { ruleset: { name: "ident-rs" } } });
    const d = await f.t.db.deployment.create({
      data: {
        versionId: version.id,
        selector: { hosts: ["forge-b"] },
        createdBy: "test",
        status: "running",
        targets: { create: { hostId: b.hostId, versionId: version.id, offeredAt: new Date() } },
      },
      include: { targets: true },
    });
    const target = d.targets[0]!;
    a.report(
      {
        deploymentId: d.id,
        targetId: target.id,
        version: { ruleset: "ident-rs", version: 1, checksum: version.checksum },
      },
      "applied",
    );
    const end = await a.ended;
    assert.equal(end.code, grpc.status.PERMISSION_DENIED);
    const after = await f.t.db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } });
    assert.equal(after.status, "pending");
    const hb = await f.t.db.host.findUniqueOrThrow({ where: { id: b.hostId } });
    assert.equal(hb.appliedVersionId, null);
  });
});

describe("bad messages", () => {
  test("bytes that are not protobuf end that stream with an error; the server carries on", async () => {
    const a = await f.agent("garbage");
    const c = new grpc.Client(addr, a.creds());
    const md = a.authMetadata();
    const call = c.makeBidiStreamRequest(
      "/palisade.v1.AgentService/Connect",
      (b: Buffer) => b,
      (b: Buffer) => b,
      md,
    );
    const end = streamEnd(call as grpc.ClientDuplexStream<unknown, unknown>);
    call.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x99]));
    const s = await end;
    assert.notEqual(s.code, grpc.status.OK);
    c.close();
    await a.ping();
  });

  test("an AgentMessage without a body, or with a non-UUID target id, is INVALID_ARGUMENT", async () => {
    const a = await f.agent("nobody");
    a.send({});
    assert.equal((await a.ended).code, grpc.status.INVALID_ARGUMENT);
    await a.connect();
    a.send({ applyResult: { deploymentId: "x", targetId: "'; drop table hosts; --", status: "APPLY_STATUS_APPLIED" } });
    const end = await a.ended;
    assert.equal(end.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(end.palisadeCode, "malformed_message");
    assert.ok((await f.t.db.host.count()) > 0);
  });

  test("a message over the size limit is refused (RESOURCE_EXHAUSTED); the host's row is untouched", async () => {
    const a = await f.agent("oversize");
    a.send({ drift: { drifted: true, details: "x".repeat(MAX_MESSAGE_BYTES + 1024), restored: false } });
    assert.equal((await a.ended).code, grpc.status.RESOURCE_EXHAUSTED);
    const h = await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } });
    assert.equal(h.drift, false);
    // And the server still serves.
    await a.connect();
    await a.ping();
  });

  test("drift reports land on the host", async () => {
    const a = await f.agent("drifty");
    a.send({ drift: { drifted: true, details: "chain input: 1 rule added by hand", restored: true } });
    await a.ping();
    const h = (await f.t.req("GET", "/v1/hosts/drifty")).json();
    assert.equal(h.drift, false, "restored drift is not current drift");
    assert.equal(h.driftDetails.restored, true);
    assert.match(h.driftDetails.details, /added by hand/);
    a.send({ drift: { drifted: true, details: "set blocklist: 2 elements removed", restored: false } });
    await a.ping();
    assert.equal((await f.t.req("GET", "/v1/hosts/drifty")).json().drift, true);
  });
});

describe("results are acknowledged after commit; a resent result is harmless", () => {
  const acks = (a: SimAgent, id: string) => a.received.filter((m) => m.resultAck?.resultId === id).length;
  /** Wait for the n-th ResultAck of `id`; returns the DB reads taken the moment it arrived. */
  const acked = async <T>(a: SimAgent, id: string, n: number, read: () => Promise<T>): Promise<T> => {
    await waitFor(() => acks(a, id) >= n, 10_000, `ResultAck #${n} for ${id}`);
    return read();
  };

  test("ApplyResult: acked once committed; the same result_id again changes nothing and is acked again", async () => {
    await f.t.req("POST", "/v1/rulesets", { body: { name: "ack-rs" } });
    await f.t.req("POST", "/v1/rulesets/ack-rs/versions", { body: { policy: validPolicy() } });
    const a = await f.agent("ack-a");
    const version = await f.t.db.rulesetVersion.findFirstOrThrow({ where: { ruleset: { name: "ack-rs" } } });
    const d = await f.t.db.deployment.create({
      data: {
        versionId: version.id,
        selector: { hosts: ["ack-a"] },
        createdBy: "test",
        status: "running",
        targets: {
          create: {
            hostId: a.hostId,
            versionId: version.id,
            offeredAt: new Date(),
            status: "applying",
            startedAt: new Date(),
          },
        },
      },
      include: { targets: true },
    });
    const target = d.targets[0]!;
    const v = { ruleset: "ack-rs", version: 1, checksum: version.checksum };
    const read = async () => ({
      target: await f.t.db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } }),
      deployment: await f.t.db.deployment.findUniqueOrThrow({ where: { id: d.id } }),
      host: await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId }, select: { appliedVersionId: true } }),
    });

    const applied = randomUUID();
    const msg = {
      applyResult: {
        deploymentId: d.id,
        targetId: target.id,
        version: v,
        status: "APPLY_STATUS_APPLIED",
        error: "",
        resultId: applied,
      },
    };
    a.send(msg);
    // Read the moment the ack arrives: everything it acknowledges is already committed.
    const atAck = await acked(a, applied, 1, read);
    assert.equal(atAck.target.status, "applied");
    assert.equal(atAck.host.appliedVersionId, version.id);
    // Settling the deployment runs after the Confirm and the ack, off the stream's message
    // chain (a locked deployment row must never hold up a Confirm): it follows shortly.
    await waitFor(
      async () => (await read()).deployment.status === "succeeded",
      10_000,
      "the deployment settles to succeeded",
    );
    const first = await read();
    const confirmAt = a.received.findIndex((m) => m.confirm?.targetId === target.id);
    assert.ok(confirmAt >= 0, "confirmed");

    a.send(msg);
    const second = await acked(a, applied, 2, read);
    assert.deepEqual(second, first, "a resent result changes nothing");
    assert.equal(acks(a, applied), 2);

    // A final target never changes again: a ROLLED_BACK (or FAILED) after "applied" is acked
    // and ignored, and so is an APPLYING (no Confirm for it).
    const rolled = randomUUID();
    const rb = {
      applyResult: {
        deploymentId: d.id,
        targetId: target.id,
        version: v,
        status: "APPLY_STATUS_ROLLED_BACK",
        error: "confirm_timeout: x",
        resultId: rolled,
      },
    };
    a.send(rb);
    await acked(a, rolled, 1, async () => undefined);
    const stale = randomUUID();
    const confirmsBefore = a.received.filter((m) => m.confirm !== undefined).length;
    a.send({ applyResult: { ...msg.applyResult, status: "APPLY_STATUS_APPLYING", resultId: stale } });
    await acked(a, stale, 1, async () => undefined);
    assert.deepEqual(await read(), first, "applied stays applied");
    assert.equal(
      a.received.filter((m) => m.confirm !== undefined).length,
      confirmsBefore,
      "no Confirm for a final target",
    );
    a.close();
  });

  test("APPLYING is confirmed and changes nothing; a stale APPLIED or ROLLED_BACK never moves a failed target", async () => {
    await f.t.req("POST", "/v1/rulesets", { body: { name: "final-rs" } });
    await f.t.req("POST", "/v1/rulesets/final-rs/versions", { body: { policy: validPolicy() } });
    const a = await f.agent("final-a");
    const version = await f.t.db.rulesetVersion.findFirstOrThrow({ where: { ruleset: { name: "final-rs" } } });
    const mk = (status: "applying" | "failed") =>
      f.t.db.deployment.create({
        data: {
          versionId: version.id,
          selector: { hosts: ["final-a"] },
          createdBy: "test",
          status: status === "failed" ? "failed" : "running",
          targets: {
            create: {
              hostId: a.hostId,
              versionId: version.id,
              offeredAt: new Date(),
              status,
              startedAt: new Date(),
              ...(status === "failed"
                ? { error: "no result from the agent within 50s (after 2 attempts)", finishedAt: new Date() }
                : {}),
            },
          },
        },
        include: { targets: true },
      });
    const v = { ruleset: "final-rs", version: 1, checksum: version.checksum };
    const send = async (d: { id: string; targets: { id: string }[] }, status: string) => {
      const id = randomUUID();
      a.send({
        applyResult: {
          deploymentId: d.id,
          targetId: d.targets[0]!.id,
          version: v,
          status,
          error: status === "APPLY_STATUS_APPLIED" ? "" : "x",
          resultId: id,
        },
      });
      await acked(a, id, 1, async () => undefined);
    };
    const confirmsOf = (t: string) => a.received.filter((m) => m.confirm?.targetId === t).length;

    const live = await mk("applying");
    await send(live, "APPLY_STATUS_APPLYING");
    assert.equal(confirmsOf(live.targets[0]!.id), 1, "APPLYING on an applying target earns the Confirm");
    assert.equal(
      (await f.t.db.deploymentTarget.findUniqueOrThrow({ where: { id: live.targets[0]!.id } })).status,
      "applying",
      "not applied before the agent recorded the commit",
    );

    const failed = await mk("failed");
    const before = await f.t.db.deploymentTarget.findUniqueOrThrow({ where: { id: failed.targets[0]!.id } });
    const hostBefore = await f.t.db.host.findUniqueOrThrow({
      where: { id: a.hostId },
      select: { appliedVersionId: true },
    });
    await send(failed, "APPLY_STATUS_APPLYING");
    await send(failed, "APPLY_STATUS_APPLIED");
    await send(failed, "APPLY_STATUS_ROLLED_BACK");
    assert.equal(confirmsOf(failed.targets[0]!.id), 0, "a failed target is never confirmed");
    assert.deepEqual(
      await f.t.db.deploymentTarget.findUniqueOrThrow({ where: { id: failed.targets[0]!.id } }),
      before,
      "the failed target is untouched",
    );
    assert.deepEqual(
      await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId }, select: { appliedVersionId: true } }),
      hostBefore,
      "the host's applied version is untouched",
    );
    assert.equal((await f.t.db.deployment.findUniqueOrThrow({ where: { id: failed.id } })).status, "failed");
    a.close();
  });

  test("DriftReport and QuotaResetResult: acked; the same result_id again does not rewrite the host", async () => {
    const a = await f.agent("ack-drift");
    const id = randomUUID();
    a.send({ drift: { drifted: true, details: "chain input: 1 rule added by hand", restored: false, resultId: id } });
    const read = () =>
      f.t.db.host.findUniqueOrThrow({
        where: { id: a.hostId },
        select: { drift: true, driftDetails: true, driftCheckedAt: true, updatedAt: true },
      });
    const first = await acked(a, id, 1, read);
    assert.equal(first.drift, true);
    assert.ok(first.driftCheckedAt);
    await new Promise((r) => setTimeout(r, 20));
    a.send({ drift: { drifted: true, details: "chain input: 1 rule added by hand", restored: false, resultId: id } });
    assert.deepEqual(await acked(a, id, 2, read), first);
    // A new report (new id) is recorded.
    const next = randomUUID();
    a.send({ drift: { drifted: false, details: "", restored: false, resultId: next } });
    const later = await acked(a, next, 1, read);
    assert.equal(later.drift, false);
    assert.ok(later.driftCheckedAt! > first.driftCheckedAt!);

    // A quota reset result for a request that is not pending changes nothing and is acked all the same.
    const q = randomUUID();
    a.send({ quotaReset: { requestId: randomUUID(), name: "q1", ok: true, error: "", resultId: q } });
    a.send({ quotaReset: { requestId: randomUUID(), name: "q1", ok: true, error: "", resultId: q } });
    await acked(a, q, 2, async () => undefined);
    a.close();
  });

  test("a result without a result_id (an older agent) is processed and not acked", async () => {
    const a = await f.agent("ack-old");
    a.send({ drift: { drifted: true, details: "old agent", restored: false } });
    await a.ping();
    assert.equal((await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } })).drift, true);
    assert.equal(a.received.filter((m) => m.resultAck !== undefined).length, 0);
    a.close();
  });
});
