// The error envelope for every way a request can be wrong, and that nothing is written.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf, ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { validPolicy } from "../support/policies.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
  await t.req("POST", "/v1/rulesets", { body: { name: "target" } });
});
after(async () => {
  await t?.close();
});

const writes = async () => ({
  rulesets: await t.db.ruleset.count(),
  versions: await t.db.rulesetVersion.count(),
  audit: await t.db.auditLog.count(),
});

describe("error envelope", () => {
  test("malformed JSON is 400 malformed_request", async () => {
    const before = await writes();
    const res = await t.req("POST", "/v1/rulesets", {
      body: '{"name": "x",',
      headers: { "content-type": "application/json" },
    });
    assert.equal(res.statusCode, 400);
    assert.equal(errorOf(res).code, "malformed_request");
    assert.deepEqual(await writes(), before);
  });

  test("empty JSON body is 400", async () => {
    const res = await t.req("POST", "/v1/rulesets", { body: "", headers: { "content-type": "application/json" } });
    assert.equal(res.statusCode, 400);
    errorOf(res);
  });

  test("wrong types are 400 invalid_request with the path", async () => {
    const res = await t.req("POST", "/v1/rulesets", { body: { name: 42, description: ["x"] } });
    assert.equal(res.statusCode, 400);
    const e = errorOf(res);
    assert.equal(e.code, "invalid_request");
    assert.deepEqual(e.details.map((d) => d.path).sort(), ["/description", "/name"]);
    assert.ok(e.details.every((d) => d.code === "invalid_type"));
  });

  test("unknown fields are 400 with one detail per field, also nested in a policy version body", async () => {
    const res = await t.req("POST", "/v1/rulesets/target/versions", { body: { policy: validPolicy(), comment: "x" } });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(
      errorOf(res).details.map((d) => [d.path, d.code]),
      [["/comment", "unknown_field"]],
    );
    // Unknown fields inside the policy are the engine's to report: 422 with the pointer.
    const inner = await t.req("POST", "/v1/rulesets/target/versions", {
      body: { policy: { ...validPolicy(), colour: "red" } },
    });
    assert.equal(inner.statusCode, 422, inner.body);
    assert.ok(
      errorOf(inner).details.some((d) => d.path.includes("colour") || d.message.includes("colour")),
      inner.body,
    );
  });

  test("a body over the limit is 413 payload_too_large; nothing written", async () => {
    const before = await writes();
    const huge = JSON.stringify({ policy: { description: "x".repeat(t.config.bodyLimit + 10) } });
    const res = await t.req("POST", "/v1/rulesets/target/versions", {
      body: huge,
      headers: { "content-type": "application/json" },
    });
    assert.equal(res.statusCode, 413);
    assert.equal(errorOf(res).code, "payload_too_large");
    const yaml = await t.req("POST", "/v1/rulesets/target/versions", {
      body: `description: ${"y".repeat(t.config.bodyLimit + 10)}\n`,
      headers: { "content-type": "application/yaml" },
    });
    assert.equal(yaml.statusCode, 413);
    assert.deepEqual(await writes(), before);
  });

  test("an unsupported content type is 415", async () => {
    const res = await t.req("POST", "/v1/rulesets", {
      body: "name=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    assert.equal(res.statusCode, 415);
    assert.equal(errorOf(res).code, "unsupported_media_type");
  });

  test("unknown routes are 404 in the envelope", async () => {
    const res = await t.req("GET", "/v1/nothing-here");
    assert.equal(res.statusCode, 404);
    assert.equal(errorOf(res).code, "not_found");
  });

  test("401 and 403 use the envelope", async () => {
    assert.equal(errorOf(await t.req("GET", "/v1/rulesets", { as: null })).code, "unauthorized");
    assert.equal(
      errorOf(await t.req("POST", "/v1/rulesets", { as: "viewer", body: { name: "nope" } })).code,
      "forbidden",
    );
  });
});

describe("rate limit", () => {
  test("over the per-token limit: 429 rate_limited with retry-after; other tokens unaffected", async () => {
    const limited = await startTestApp({ rateLimitPerMinute: 5 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++)
        statuses.push((await limited.req("GET", "/v1/rulesets", { as: "viewer" })).statusCode);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
      const res = await limited.req("GET", "/v1/rulesets", { as: "viewer" });
      assert.equal(errorOf(res).code, "rate_limited");
      assert.ok(res.headers["retry-after"]);
      assert.equal((await limited.req("GET", "/v1/rulesets", { as: "operator" })).statusCode, 200);
      // Probes are never limited.
      for (let i = 0; i < 7; i++) assert.equal((await limited.req("GET", "/healthz", { as: null })).statusCode, 200);
    } finally {
      await limited.close();
    }
  });

  test("failed authentications are limited per address: a burst of bad tokens gets 429, other addresses unaffected", async () => {
    const limited = await startTestApp({ rateLimitPerMinute: 5 });
    try {
      const from = (remoteAddress: string, token?: string) =>
        limited.app.inject({
          method: "GET",
          url: "/v1/rulesets",
          remoteAddress,
          headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        });
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await from("192.0.2.7", `garbage-${i}`)).statusCode);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
      const res = await from("192.0.2.7");
      assert.equal(errorOf(res).code, "rate_limited");
      assert.ok(Number(res.headers["retry-after"]) > 0, JSON.stringify(res.headers));
      assert.equal((await from("192.0.2.8", ROLE_TOKENS.viewer)).statusCode, 200);
      assert.equal((await from("192.0.2.8", "garbage")).statusCode, 401);
    } finally {
      await limited.close();
    }
  });
});

describe("input PostgreSQL cannot take", () => {
  test("NUL bytes in query filters and path values: 400 naming the field, not 500", async () => {
    for (const [url, path] of [
      ["/v1/audit?actor=%00", "/actor"],
      ["/v1/audit?target=a%00b", "/target"],
      ["/v1/logs?prefix=%00", "/prefix"],
      ["/v1/hosts/%00", "/id"],
      ["/v1/hosts?label=a=%00", "/label"],
    ] as const) {
      const res = await t.req("GET", url);
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
      assert.deepEqual(
        errorOf(res).details.map((d: { path: string }) => d.path),
        [path],
        url,
      );
    }
  });

  test("a date outside PostgreSQL's range in a filter: 400, not 500", async () => {
    const res = await t.req("GET", "/v1/audit?from=0000-01-01T00:00:00Z");
    assert.equal(res.statusCode, 400, res.body);
    assert.match(errorOf(res).message, /outside the range/);
  });

  test("a text/plain body: 415 as documented", async () => {
    const res = await t.req("POST", "/v1/rulesets", { headers: { "content-type": "text/plain" }, body: "hello" });
    assert.equal(res.statusCode, 415, res.body);
    assert.equal(errorOf(res).code, "unsupported_media_type");
  });
});
