// Idempotency-Key on deployment creates and rollbacks, with Redis up: concurrent requests
// with one key make one deployment; keys belong to the token that sent them; a rollback
// retried with its key is not a second rollback; concurrent rollbacks of one deployment
// make one rollback (409 for the others, or its answer for those with its key).
// (Redis down: redis-down.test.ts.)
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";
import { validPolicy } from "../support/policies.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp({ queue: { prefix: `palisade-test:${process.pid}:idem`, lockMs: 15_000 } });
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "web" } })).statusCode, 201);
  assert.equal((await t.req("POST", "/v1/rulesets/web/versions", { body: { policy: validPolicy() } })).statusCode, 201);
  await t.db.host.create({ data: { name: "edge-1" } });
});
after(async () => {
  await t?.close();
});

const body = { ruleset: "web", version: 1, selector: { hosts: ["edge-1"] } };

test("eight concurrent creates with one key make one deployment and all get its id", async () => {
  const key = randomUUID();
  const answers = await Promise.all(
    Array.from({ length: 8 }, () =>
      t.req("POST", "/v1/deployments", { as: "operator", body, headers: { "idempotency-key": key } }),
    ),
  );
  for (const a of answers) assert.equal(a.statusCode, 202, a.body);
  assert.equal(new Set(answers.map((a) => a.json().id)).size, 1);
  assert.equal(answers.filter((a) => a.headers["idempotent-replayed"] === "true").length, 7);
  assert.equal(await t.db.deployment.count({ where: { idempotencyKey: key } }), 1);
});

test("a key belongs to its token: another token with the same key creates its own deployment", async () => {
  const key = randomUUID();
  const a = await t.req("POST", "/v1/deployments", { as: "operator", body, headers: { "idempotency-key": key } });
  const b = await t.req("POST", "/v1/deployments", { as: "admin", body, headers: { "idempotency-key": key } });
  assert.equal(a.statusCode, 202);
  assert.equal(b.statusCode, 202);
  assert.notEqual(a.json().id, b.json().id);
});

test("without a key every create is a new deployment", async () => {
  const a = await t.req("POST", "/v1/deployments", { body });
  const b = await t.req("POST", "/v1/deployments", { body });
  assert.notEqual(a.json().id, b.json().id);
});

test("a rollback retried with its key is one rollback; the key on another deployment's rollback is 422", async () => {
  // edge-1 ran version 1 before the deployment to roll back.
  await t.db.host.update({
    where: { name: "edge-1" },
    data: { appliedVersionId: (await t.db.rulesetVersion.findFirstOrThrow()).id },
  });
  const d1 = (await t.req("POST", "/v1/deployments", { body })).json().id as string;
  const d2 = (await t.req("POST", "/v1/deployments", { body })).json().id as string;
  const key = randomUUID();
  const r1 = await t.req("POST", `/v1/deployments/${d1}/rollback`, { headers: { "idempotency-key": key } });
  assert.equal(r1.statusCode, 202, r1.body);
  const again = await t.req("POST", `/v1/deployments/${d1}/rollback`, { headers: { "idempotency-key": key } });
  assert.equal(again.statusCode, 202, "not 409 already rolled back: the retry gets the first answer");
  assert.deepEqual(again.json(), r1.json());
  const other = await t.req("POST", `/v1/deployments/${d2}/rollback`, { headers: { "idempotency-key": key } });
  assert.equal(other.statusCode, 422);
  assert.equal(errorOf(other).code, "idempotency_key_reused");
  assert.equal(await t.db.deployment.count({ where: { rollbackOfId: { not: null } } }), 1);
});

test("a key that is not 1-255 visible ASCII characters is 400", async () => {
  for (const key of ["", "with space", "x".repeat(256)]) {
    const res = await t.req("POST", "/v1/deployments", { body, headers: { "idempotency-key": key } });
    assert.equal(res.statusCode, 400, key);
  }
});

test("concurrent rollbacks of one deployment (no key): one 202, the others 409 already rolled back, one rollback", async () => {
  // edge-1 ran version 1 before (the test above set it); each request reads the deployment
  // before any of them commits, so only the guarded status change inside the transaction
  // can tell them apart.
  const d = (await t.req("POST", "/v1/deployments", { body })).json().id as string;
  const answers = await Promise.all(
    Array.from({ length: 4 }, () => t.req("POST", `/v1/deployments/${d}/rollback`, { as: "operator" })),
  );
  const codes = answers.map((a) => a.statusCode).sort();
  assert.deepEqual(codes, [202, 409, 409, 409], answers.map((a) => a.body).join("\n"));
  for (const a of answers.filter((x) => x.statusCode === 409)) {
    assert.equal(errorOf(a).code, "conflict");
    assert.match(errorOf(a).message, /already rolled back/);
  }
  assert.equal(await t.db.deployment.count({ where: { rollbackOfId: d } }), 1);
  assert.equal(await t.db.deploymentTarget.count({ where: { deployment: { rollbackOfId: d } } }), 1);
  assert.equal(
    await t.db.auditLog.count({ where: { action: "deployment.rollback", details: { path: ["of"], equals: d } } }),
    1,
  );
});

test("concurrent rollbacks with one key: all get the one rollback's answer", async () => {
  const d = (await t.req("POST", "/v1/deployments", { body })).json().id as string;
  const key = randomUUID();
  const answers = await Promise.all(
    Array.from({ length: 4 }, () =>
      t.req("POST", `/v1/deployments/${d}/rollback`, { as: "operator", headers: { "idempotency-key": key } }),
    ),
  );
  for (const a of answers) assert.equal(a.statusCode, 202, a.body);
  assert.equal(new Set(answers.map((a) => a.json().id)).size, 1);
  assert.equal(await t.db.deployment.count({ where: { rollbackOfId: d } }), 1);
});
