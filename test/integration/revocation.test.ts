// Revocation: deleting or disabling a host closes its live stream on whichever replica
// holds it (REST and the stream on different replicas, the notice crossing Redis) within
// 5 s, and its certificate is refused from then on; unused enrollment tokens can be revoked.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { streamEnd, type Fleet, type SimAgent, startFleet } from "../support/grpc-fleet.ts";

let f: Fleet;
before(async () => {
  f = await startFleet({ replicas: 2 });
});
after(async () => {
  await f?.close();
});

/** Open a Connect stream with the agent's certificate and wait for how the server ends it. */
async function reconnect(a: SimAgent, replica: number) {
  const c = a.client(`127.0.0.1:${f.replicas[replica]!.port}`);
  try {
    const call = c.Connect!(a.authMetadata()) as grpc.ClientDuplexStream<unknown, unknown>;
    const end = streamEnd(call);
    call.write({ hello: { capabilities: null, applied: a.applied, telemetryEpoch: "e1" } });
    return await end;
  } finally {
    c.close();
  }
}

/** How long the stream took to end after `action`, and how it ended. */
async function endsAfter(a: SimAgent, action: () => Promise<void>) {
  const start = performance.now();
  await action();
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error("stream still open 5 s after the revocation")), 5_000).unref(),
  );
  const end = await Promise.race([a.ended, timeout]);
  return { end, ms: performance.now() - start };
}

describe("revocation", () => {
  test("DELETE /v1/hosts/:id closes the stream held by another replica within 5 s; the credential is refused after", async () => {
    const a = await f.agent("rev-del", {}, { replica: 1 });
    const { end, ms } = await endsAfter(a, async () => {
      const res = await f.t.req("DELETE", `/v1/hosts/${a.hostId}`);
      assert.equal(res.statusCode, 204, res.body);
    });
    assert.equal(end.code, grpc.status.UNAUTHENTICATED, end.details);
    assert.equal(end.palisadeCode, "host_deleted");
    assert.ok(ms < 5_000, `${ms} ms`);
    for (const replica of [0, 1]) {
      const again = await reconnect(a, replica);
      assert.equal(again.code, grpc.status.UNAUTHENTICATED, again.details);
    }
    assert.equal(await f.t.db.host.count({ where: { id: a.hostId } }), 0);
    const audit = await f.t.db.auditLog.findFirst({ where: { action: "host.delete", target: "host:rev-del" } });
    assert.deepEqual(audit?.details, { id: a.hostId });
    assert.equal((await f.t.req("DELETE", `/v1/hosts/${a.hostId}`)).statusCode, 404);
    assert.equal((await f.t.req("DELETE", "/v1/hosts/rev-del", { as: "operator" })).statusCode, 403);
  });

  test("disable closes the stream and refuses the credential; enable lets it connect again", async () => {
    const a = await f.agent("rev-dis", {}, { replica: 1 });
    const { end } = await endsAfter(a, async () => {
      const res = await f.t.req("POST", "/v1/hosts/rev-dis/disable");
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().disabled, true);
    });
    assert.deepEqual([end.code, end.palisadeCode], [grpc.status.PERMISSION_DENIED, "host_disabled"]);
    const refused = await reconnect(a, 0);
    assert.deepEqual([refused.code, refused.palisadeCode], [grpc.status.PERMISSION_DENIED, "host_disabled"]);
    const enabled = await f.t.req("POST", `/v1/hosts/${a.hostId}/enable`);
    assert.equal(enabled.json().disabled, false);
    await a.connect({ address: `127.0.0.1:${f.replicas[0]!.port}` });
    assert.equal((await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } })).connection, "connected");
    const actions = (await f.t.db.auditLog.findMany({ where: { target: "host:rev-dis" }, orderBy: { at: "asc" } })).map(
      (r) => r.action,
    );
    assert.deepEqual(
      actions.filter((x) => x !== "host.enroll"),
      ["host.disable", "host.enable"],
    );
    a.close();
  });

  test("a lost revocation notice is made up for by the replica's sweep", async () => {
    const a = await f.agent("rev-sweep", {}, { replica: 0, connect: false });
    // Replicas sweep every 30 s by default; this one sweeps every 100 ms.
    const fast = await f.addReplica({ opts: { sweepIntervalMs: 100 } });
    try {
      await a.connect({ address: `127.0.0.1:${fast.port}` });
      // Disabled behind the API's back: no notice is published.
      await f.t.db.host.update({ where: { id: a.hostId }, data: { disabled: true } });
      const { end } = await endsAfter(a, async () => {});
      assert.equal(end.palisadeCode, "host_disabled");
    } finally {
      await fast.stop();
    }
  });
});

describe("the replica's sweep", () => {
  test("a stream that opens while the sweep reads the hosts is not taken for a deleted host's", async () => {
    const a = await f.agent("sweep-race-a", {}, { replica: 0, connect: false });
    const b = await f.agent("sweep-race-b", {}, { replica: 0, connect: false });
    // The sweep's read of the hosts is held open until B has connected.
    let reading: () => void = () => {};
    const sweepReads = new Promise<void>((r) => (reading = r));
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    let holdNext = false;
    const host = new Proxy(f.t.db.host, {
      get(target, prop, recv) {
        if (prop !== "findMany") return Reflect.get(target, prop, recv);
        return async (...args: Parameters<typeof target.findMany>) => {
          if (holdNext) {
            holdNext = false;
            reading();
            await held;
          }
          return target.findMany(...args);
        };
      },
    });
    const db = new Proxy(f.t.db, {
      get: (target, prop, recv) => (prop === "host" ? host : Reflect.get(target, prop, recv)),
    });
    const fast = await f.addReplica({ ctx: { db }, opts: { sweepIntervalMs: 100 } });
    try {
      await a.connect({ address: `127.0.0.1:${fast.port}` });
      holdNext = true;
      await sweepReads;
      await b.connect({ address: `127.0.0.1:${fast.port}` });
      release();
      // Two more sweeps after the held one: B's stream is still served.
      for (let i = 0; i < 2; i++) {
        holdNext = true;
        await new Promise<void>((r) => (reading = r));
      }
      release();
      await b.ping();
      await a.ping();
      assert.equal(b.endedWith, undefined, `B's stream ended: ${JSON.stringify(b.endedWith)}`);
    } finally {
      release();
      a.close();
      b.close();
      await fast.stop();
    }
  });
});

describe("enrollment token revocation", () => {
  test("a revoked token cannot enroll; a used one is 409; audited", async () => {
    const created = (await f.t.req("POST", "/v1/enrollment-tokens", { body: {} })).json() as {
      id: string;
      token: string;
    };
    const res = await f.t.req("DELETE", `/v1/enrollment-tokens/${created.id}`);
    assert.equal(res.statusCode, 204, res.body);
    await assert.rejects(f.enroll({ token: created.token, name: "rev-tok" }), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAUTHENTICATED);
      return true;
    });
    assert.equal(await f.t.db.host.count({ where: { name: "rev-tok" } }), 0);
    assert.ok(
      await f.t.db.auditLog.findFirst({
        where: { action: "enrollment_token.revoke", target: `enrollment_token:${created.id}` },
      }),
    );
    assert.equal((await f.t.req("DELETE", `/v1/enrollment-tokens/${created.id}`)).statusCode, 404);

    const used = (await f.t.req("POST", "/v1/enrollment-tokens", { body: {} })).json() as { id: string; token: string };
    await f.enroll({ token: used.token, name: "rev-tok-used" });
    const c = await f.t.req("DELETE", `/v1/enrollment-tokens/${used.id}`);
    assert.equal(c.statusCode, 409);
    assert.match(c.json().error.message, /delete that host/);
  });
});
