// Redis going away under a running `palisade server` (a real process on a private
// redis-server that this test kills by pid; the shared Redis is never touched):
// deployment creates still answer (and an Idempotency-Key makes the client's retry
// harmless), routes that need Redis answer 503 with Retry-After instead of hanging,
// agents still connect, and when Redis comes back empty the deployment made meanwhile
// rolls out and the telemetry schedules exist again, without a restart.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Queue } from "bullmq";
import { type SimAgent, waitFor } from "../support/grpc-fleet.ts";
import { validPolicy } from "../support/policies.ts";
import { startTestRedis, type TestRedis } from "../support/redis-server.ts";
import { spawnServer, type ServerProcess } from "../support/server-process.ts";

let redis: TestRedis;
let s: ServerProcess;
let admin: string;
let agent: SimAgent;
let base: string;

/** A request that may not hang: 15 s is far beyond any answer and fails the test instead of the suite's timeout. */
async function call(
  method: string,
  path: string,
  opts: { body?: unknown; headers?: Record<string, string>; token?: string | null } = {},
) {
  const token = opts.token === undefined ? admin : opts.token;
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(opts.body !== undefined ? { "content-type": "application/json" } : {}),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

const readyRedis = async () => (await call("GET", "/readyz", { token: null })).body.checks.redis.ok as boolean;

/** Both queues live under the configured prefix (PALISADE_QUEUE_PREFIX). */
const PREFIX = "palisade-rd";

async function schedulers(): Promise<string[]> {
  const q = new Queue("palisade-telemetry", {
    connection: { host: "127.0.0.1", port: redis.port, maxRetriesPerRequest: 1 },
    prefix: PREFIX,
  });
  try {
    return (await q.getJobSchedulers()).map((j) => j.key).sort();
  } finally {
    await q.close();
  }
}

before(async () => {
  redis = await startTestRedis();
  s = await spawnServer({ REDIS_URL: redis.url, PALISADE_QUEUE_PREFIX: PREFIX });
  await s.line((l) => l.msg === "server started");
  base = `http://127.0.0.1:${s.port}`;
  admin = s.adminToken();
  assert.equal((await call("POST", "/v1/rulesets", { body: { name: "web" } })).status, 201);
  assert.equal((await call("POST", "/v1/rulesets/web/versions", { body: { policy: validPolicy(22) } })).status, 201);
  assert.equal((await call("POST", "/v1/rulesets/web/versions", { body: { policy: validPolicy(2222) } })).status, 201);
  const enroll = await call("POST", "/v1/enrollment-tokens", { body: {} });
  agent = await s.enrollAgent(enroll.body.token, "edge-1");
  await agent.connect();
  assert.deepEqual(await schedulers(), ["maintenance", "reconcile", "rollup"]);
});
after(async () => {
  agent?.close();
  try {
    await s?.stop();
  } finally {
    await redis?.stop();
  }
});

describe("Redis down", () => {
  let deploymentId: string;
  const key = randomUUID();
  const body = { ruleset: "web", version: 1, selector: { hosts: ["edge-1"] } };

  test("Redis is killed: /readyz says so", async () => {
    await redis.kill();
    await waitFor(async () => !(await readyRedis()), 10_000, "readyz to report Redis down");
    await s.line((l) => String(l.msg).startsWith("Redis does not answer (REDIS_URL)"));
  });

  test("POST /v1/deployments answers 202; a retry with the same Idempotency-Key gets the same deployment", async () => {
    const first = await call("POST", "/v1/deployments", { body, headers: { "idempotency-key": key } });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    deploymentId = first.body.id;
    assert.equal(first.body.targets, 1);
    assert.equal(first.headers.get("idempotent-replayed"), null);
    const retry = await call("POST", "/v1/deployments", { body, headers: { "idempotency-key": key } });
    assert.equal(retry.status, 202);
    assert.deepEqual(retry.body, first.body);
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    const list = await call("GET", "/v1/deployments");
    assert.equal(list.body.items.length, 1, "exactly one deployment");
    assert.equal(list.body.items[0].status, "pending");
  });

  test("the same Idempotency-Key with another body is 422 idempotency_key_reused, naming the deployment", async () => {
    const other = await call("POST", "/v1/deployments", {
      body: { ...body, version: 2 },
      headers: { "idempotency-key": key },
    });
    assert.equal(other.status, 422, JSON.stringify(other.body));
    assert.equal(other.body.error.code, "idempotency_key_reused");
    assert.match(other.body.error.message, new RegExp(deploymentId));
    assert.match(other.body.error.message, /new key/);
    assert.equal((await call("GET", "/v1/deployments")).body.items.length, 1);
    const bad = await call("POST", "/v1/deployments", { body, headers: { "idempotency-key": "" } });
    assert.equal(bad.status, 400);
  });

  test("routes that need Redis answer 503 unavailable with Retry-After and what to do", async () => {
    for (const [method, path, b] of [
      ["GET", "/v1/logs/stream", undefined],
      ["POST", "/v1/session", { token: admin }],
    ] as const) {
      const res = await call(method, path, { body: b, token: method === "POST" ? null : admin });
      assert.equal(res.status, 503, `${method} ${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, "unavailable");
      assert.match(res.body.error.message, /Redis.*REDIS_URL/);
      assert.ok(Number(res.headers.get("retry-after")) > 0);
    }
  });

  test("everything else answers as usual (rate limits are not enforced meanwhile)", async () => {
    assert.equal((await call("GET", "/v1/hosts")).status, 200);
    assert.equal((await call("GET", `/v1/deployments/${deploymentId}`)).status, 200);
    assert.equal((await call("GET", "/metrics", { token: null })).status, 200);
    assert.equal((await call("GET", "/v1/hosts", { token: "pal_unknown-token-while-redis-is-down" })).status, 401);
  });

  test("an agent reconnects and reports while Redis is down", async () => {
    await agent.connect();
    const host = await call("GET", "/v1/hosts/edge-1");
    assert.equal(host.body.connection, "connected");
  });

  test("Redis comes back empty: the deployment rolls out and the telemetry schedules are re-created, no restart", async () => {
    await redis.restart();
    await waitFor(
      async () => (await call("GET", `/v1/deployments/${deploymentId}`)).body.status === "succeeded",
      // A liveness bound, not a speed goal: 60 s was passed once on a machine at load 40.
      120_000,
      "the deployment made while Redis was down to succeed",
    );
    await waitFor(async () => (await schedulers()).length === 3, 30_000, "telemetry schedules re-created");
    assert.deepEqual(await schedulers(), ["maintenance", "reconcile", "rollup"]);
    assert.equal((await call("GET", "/v1/deployments")).body.items.length, 1);
    assert.ok(
      s.lines.some((l) => String(l.msg).includes("telemetry schedules (rollup, reconcile, maintenance) re-created")),
    );
    assert.equal(
      s.lines.filter((l) => String(l.msg).startsWith("Redis does not answer")).length,
      1,
      "one line per outage, not one per reconnect attempt",
    );
    assert.ok(s.lines.some((l) => l.msg === "Redis answers again"));
    assert.doesNotMatch(s.stderr(), /Unhandled error event/, "every Redis connection has an error listener");
    assert.equal((await call("POST", "/v1/session", { body: { token: admin }, token: null })).status, 200);
  });
});
