// Probes, metrics, the OpenAPI document and docs UI, and one pass over a real socket.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { buildApp } from "../../src/api/app.ts";
import { ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { validPolicy } from "../support/policies.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
});
after(async () => {
  await t?.close();
});

describe("health", () => {
  test("healthz is ok; readyz checks Postgres and Redis", async () => {
    assert.deepEqual((await t.req("GET", "/healthz", { as: null })).json(), { status: "ok" });
    const ready = await t.req("GET", "/readyz", { as: null });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { status: "ready", checks: { postgres: { ok: true }, redis: { ok: true } } });
  });

  test("readyz is 503 naming Redis when Redis does not answer", async () => {
    // A client pointed at a closed port, failing fast: the real Redis stays untouched.
    const deadRedis = new Redis("redis://127.0.0.1:1", {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    const app = await buildApp({ config: t.config, db: t.db, redis: deadRedis });
    try {
      const res = await app.inject({ method: "GET", url: "/readyz" });
      assert.equal(res.statusCode, 503);
      const body = res.json();
      assert.equal(body.status, "unavailable");
      assert.equal(body.checks.postgres.ok, true);
      assert.equal(body.checks.redis.ok, false);
      assert.ok(body.checks.redis.error);
    } finally {
      await app.close();
      deadRedis.disconnect();
    }
  });

  test("metrics: Prometheus text with request counters by route template", async () => {
    await t.req("GET", "/v1/rulesets/some-name");
    const res = await t.req("GET", "/metrics", { as: null });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^text\/plain/);
    assert.match(res.body, /# TYPE palisade_http_requests_total counter/);
    assert.match(res.body, /palisade_http_requests_total\{method="GET",route="\/v1\/rulesets\/:name",status="404"\} 1/);
    assert.match(res.body, /^process_cpu_user_seconds_total /m);
  });
});

describe("OpenAPI", () => {
  test("openapi.json lists every route and embeds the policy JSON Schema", async () => {
    const res = await t.req("GET", "/openapi.json", { as: null });
    assert.equal(res.statusCode, 200);
    const doc = res.json();
    assert.match(doc.openapi, /^3\./);
    for (const p of [
      "/healthz",
      "/readyz",
      "/metrics",
      "/v1/rulesets",
      "/v1/rulesets/{name}",
      "/v1/rulesets/{name}/versions",
      "/v1/rulesets/{name}/versions/{v}",
      "/v1/rulesets/{name}/versions/{v}/render",
      "/v1/rulesets/{name}/diff",
      "/v1/validate",
      "/v1/tokens",
      "/v1/tokens/{id}",
      "/v1/audit",
      "/v1/hosts",
      "/v1/hosts/{id}",
      "/v1/enrollment-tokens",
    ])
      assert.ok(doc.paths[p], `missing path ${p}`);
    const policy = doc.components.schemas.Policy;
    assert.ok(policy, "components.schemas.Policy");
    assert.ok(JSON.stringify(policy).includes("chains"), "the engine's schema, not the placeholder");
    const body = doc.paths["/v1/rulesets/{name}/versions"].post.requestBody.content["application/json"].schema;
    assert.match(JSON.stringify(body), /#\/components\/schemas\/Policy/);
    // Every internal reference resolves inside the document.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1]!);
    for (const ref of refs) {
      let node: unknown = doc;
      for (const part of ref.split("/"))
        node = (node as Record<string, unknown> | undefined)?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
      assert.ok(node !== undefined, `dangling $ref #/${ref}`);
    }
  });

  test("/docs serves the UI", async () => {
    const res = await t.app.inject({ method: "GET", url: "/docs/" });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /swagger/i);
  });
});

describe("over a real socket", () => {
  test("listen on an ephemeral port; create a ruleset and a version with fetch", async () => {
    const address = await t.app.listen({ host: "127.0.0.1", port: 0 });
    const auth = { authorization: `Bearer ${ROLE_TOKENS.operator}`, "content-type": "application/json" };
    const created = await fetch(`${address}/v1/rulesets`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "socket" }),
    });
    assert.equal(created.status, 201);
    const v = await fetch(`${address}/v1/rulesets/socket/versions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ policy: validPolicy() }),
    });
    assert.equal(v.status, 201, await v.clone().text());
    assert.equal((await v.json()).version, 1);
    const bad = await fetch(`${address}/v1/rulesets`, { method: "POST", headers: auth, body: "{oops" });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, "malformed_request");
  });
});
