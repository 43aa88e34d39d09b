// PostgreSQL going away under a running API: every /v1 route answers 503 with Retry-After
// (not 500), and the public /readyz says which dependency is down without its raw error.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";
import { dropDatabase } from "../support/db.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
  assert.equal((await t.req("GET", "/v1/rulesets")).statusCode, 200);
  // The database the app uses disappears (WITH FORCE ends its open connections).
  await dropDatabase(t.database.name);
});
after(async () => {
  await t?.close();
});

describe("PostgreSQL down", () => {
  const routes: [string, string, unknown?][] = [
    ["GET", "/v1/rulesets"],
    ["POST", "/v1/rulesets", { name: "while-down" }],
    ["GET", "/v1/hosts"],
    ["GET", "/v1/hosts/edge-1"],
    ["GET", "/v1/deployments"],
    ["GET", "/v1/audit"],
    ["POST", "/v1/enrollment-tokens", {}],
  ];
  for (const [method, url, body] of routes) {
    test(`${method} ${url}: 503 unavailable with Retry-After`, async () => {
      const res = await t.req(method as "GET", url, body === undefined ? {} : { body });
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(errorOf(res).code, "unavailable");
      assert.ok(Number(res.headers["retry-after"]) > 0);
      assert.ok(!res.body.includes(t.database.name), "the database name must not leak");
    });
  }

  test("/readyz: 503, postgres not ok, no raw database error text", async () => {
    const res = await t.req("GET", "/readyz", { as: null });
    assert.equal(res.statusCode, 503);
    const body = res.json();
    assert.equal(body.checks.postgres.ok, false);
    assert.equal(body.checks.redis.ok, true);
    assert.ok(!res.body.includes(t.database.name), res.body);
    assert.doesNotMatch(res.body, /does not exist|127\\.0\\.0\\.1|ECONNREFUSED|Invalid `/);
  });
});
