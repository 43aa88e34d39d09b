// A rollout that offers a target while the replica's bus subscriber is reconnecting to Redis
// finds no listener and takes the host for offline: the target stays pending for an agent
// that is connected and will not say Hello again. When the subscriber is back, the stream
// catches up from Postgres and claims it. (A CI run saw this after a Redis restart: the
// deployment stayed running.) The offer round is made deterministic by running the rollout
// against a second, real Redis where nobody listens, which is what a publish during the gap
// meets; the gap itself is a real reconnect (CLIENT KILL of the bus connection).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { silentLog } from "../../src/api/grpc/index.ts";
import { runRollout } from "../../src/api/deploy/rollout.ts";
import { agentBusConnectionName } from "../../src/api/host-bus.ts";
import { startFleet, waitFor, type Fleet, type SimAgent } from "../support/grpc-fleet.ts";
import { validPolicy } from "../support/policies.ts";
import { parseClientList, startTestRedis, type TestRedis } from "../support/redis-server.ts";

let f: Fleet;
let sim: SimAgent;
let nobodyListens: TestRedis;
let other: Redis;

before(async () => {
  f = await startFleet();
  nobodyListens = await startTestRedis();
  other = new Redis(nobodyListens.url, { maxRetriesPerRequest: 1 });
  assert.equal((await f.t.req("POST", "/v1/rulesets", { body: { name: "web" } })).statusCode, 201);
  const v = await f.t.req("POST", "/v1/rulesets/web/versions", { body: { policy: validPolicy(22) } });
  assert.equal(v.statusCode, 201, v.body);
  sim = await f.agent("bus-edge", {}, { connect: false });
  sim.helloFeatures = ["bans"];
  await sim.connect();
});
after(async () => {
  other?.disconnect();
  await nobodyListens?.stop();
  await f?.close();
});

/** Ends this process's agent bus connection the way a Redis restart or a network cut does. */
async function cutBus(): Promise<number> {
  const ids = parseClientList((await f.t.redis.client("LIST")) as string)
    .filter((c) => c.name === agentBusConnectionName())
    .map((c) => c.id!);
  for (const id of ids) await f.t.redis.client("KILL", "ID", id);
  return ids.length;
}

test("a target offered while the bus was reconnecting is sent once the bus is back", async () => {
  // No deploy worker runs in this fleet: the job the POST queues stays in Redis, and the
  // rollout below is the only one.
  const res = await f.t.req("POST", "/v1/deployments", {
    as: "operator",
    body: { ruleset: "web", version: 1, selector: { hosts: ["bus-edge"] } },
  });
  assert.equal(res.statusCode, 202, res.body);
  const id = (res.json() as { id: string }).id;
  await runRollout({ db: f.t.db, redis: other, log: silentLog, pollMs: 50 }, id);
  const target = await f.t.db.deploymentTarget.findFirstOrThrow({ where: { deploymentId: id } });
  assert.equal(target.status, "pending", "the offer met no listener: the host counted as offline");
  assert.ok(target.offeredAt, "its batch is open");
  assert.equal(sim.desired.length, 0);

  assert.equal(await cutBus(), 1, "one bus connection in this process");
  await waitFor(async () => sim.desired.length > 0, 15_000, "the pending target to reach the connected agent");
  assert.equal(sim.desired[0]!.targetId, target.id);
  await waitFor(
    async () => (await f.t.db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } })).status === "applied",
    15_000,
    "the target to be applied",
  );
});

test("an unanswered quota reset is sent again once the bus is back (one asked during the gap found no listener)", async () => {
  // As the agent's telemetry would have reported it.
  await f.t.db.quotaState.create({ data: { hostId: sim.hostId, name: "q1", limit: 1000n, used: 900n } });
  const res = await f.t.req("POST", "/v1/hosts/bus-edge/quotas/q1/reset", { as: "operator" });
  assert.ok([200, 202].includes(res.statusCode), res.body);
  await waitFor(async () => sim.received.some((m) => m.quotaReset), 5_000, "the reset delivered live");
  const live = sim.received.filter((m) => m.quotaReset).length;
  assert.equal(await cutBus(), 1);
  await waitFor(
    async () => sim.received.filter((m) => m.quotaReset).length > live,
    15_000,
    "the pending reset sent again after the cut",
  );
});

test("a stream replaced meanwhile (its kick lost with the link) ends instead of catching up", async () => {
  await f.t.db.host.update({ where: { id: sim.hostId }, data: { sessionId: randomUUID() } });
  const desired = sim.desired.length;
  assert.equal(await cutBus(), 1);
  const end = await Promise.race([sim.ended, new Promise<undefined>((r) => setTimeout(r, 15_000))]);
  assert.equal(end?.code, grpc.status.ABORTED, JSON.stringify(end));
  assert.match(end!.details, /newer stream/);
  assert.equal(sim.desired.length, desired);
});
