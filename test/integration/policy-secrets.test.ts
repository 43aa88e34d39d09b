// spaKnock secrets in stored versions: a viewer reads the policy with the secrets replaced
// by a fixed marker (GET version, diff); operators and admins see them; the audit log
// never holds them.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestApp, type TestApp } from "../support/app.ts";

const OPEN = "open-4b1f0c9e2d7a6358";
const CLOSE = "close-9e8d7c6b5a493827";
const ROTATED = "open-rotated-77c2a1f0e9b8";

const spaPolicy = (openSecret: string) => ({
  chains: {
    input: {
      hook: "input",
      policy: "drop",
      rules: [{ match: { ctState: ["established", "related"] }, action: "accept" }],
    },
  },
  protections: {
    spaKnock: [{ name: "ssh", knockPort: 4000, port: 22, openSecret, closeSecret: CLOSE }],
  },
});

let t: TestApp;
before(async () => {
  t = await startTestApp();
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "spa" } })).statusCode, 201);
  for (const secret of [OPEN, ROTATED]) {
    const r = await t.req("POST", "/v1/rulesets/spa/versions", { as: "operator", body: { policy: spaPolicy(secret) } });
    assert.equal(r.statusCode, 201, r.body);
  }
});
after(async () => {
  await t?.close();
});

describe("spaKnock secrets by role", () => {
  test("a viewer gets the version with both secrets redacted, and nothing of them anywhere in the body", async () => {
    const r = await t.req("GET", "/v1/rulesets/spa/versions/1", { as: "viewer" });
    assert.equal(r.statusCode, 200, r.body);
    const k = r.json().document.protections.spaKnock[0];
    assert.equal(k.openSecret, "<redacted>");
    assert.equal(k.closeSecret, "<redacted>");
    assert.equal(k.knockPort, 4000, "the rest of the rule is still there");
    for (const s of [OPEN, CLOSE]) assert.ok(!r.body.includes(s), `viewer body holds ${s}`);
  });

  for (const role of ["admin", "operator"] as const)
    test(`${role} gets the secrets`, async () => {
      const r = await t.req("GET", "/v1/rulesets/spa/versions/1", { as: role });
      assert.equal(r.statusCode, 200, r.body);
      const k = r.json().document.protections.spaKnock[0];
      assert.equal(k.openSecret, OPEN);
      assert.equal(k.closeSecret, CLOSE);
    });

  test("diff: a viewer sees the secret changed but not its values; an admin sees both", async () => {
    const v = await t.req("GET", "/v1/rulesets/spa/diff?from=1&to=2", { as: "viewer" });
    assert.equal(v.statusCode, 200, v.body);
    assert.deepEqual(v.json().changes, [
      { op: "change", path: "/protections/spaKnock/0/openSecret", from: "<redacted>", to: "<redacted>" },
    ]);
    for (const s of [OPEN, ROTATED, CLOSE]) assert.ok(!v.body.includes(s));
    const a = await t.req("GET", "/v1/rulesets/spa/diff?from=1&to=2", { as: "admin" });
    assert.deepEqual(a.json().changes, [
      { op: "change", path: "/protections/spaKnock/0/openSecret", from: OPEN, to: ROTATED },
    ]);
  });

  test("diff adding the whole preset: a viewer sees the rule with its secrets redacted", async () => {
    const none = spaPolicy(OPEN) as { protections?: unknown };
    delete none.protections;
    const r = await t.req("POST", "/v1/rulesets/spa/versions", { as: "operator", body: { policy: none } });
    assert.equal(r.statusCode, 201, r.body);
    const v = await t.req("GET", "/v1/rulesets/spa/diff?from=3&to=2", { as: "viewer" });
    assert.equal(v.statusCode, 200, v.body);
    for (const s of [ROTATED, CLOSE]) assert.ok(!v.body.includes(s), v.body);
    assert.ok(v.body.includes("<redacted>"), v.body);
  });

  test("the audit log holds no secret", async () => {
    const rows = await t.db.auditLog.findMany({ where: { target: { startsWith: "ruleset:spa" } } });
    assert.ok(rows.length >= 2);
    const text = JSON.stringify(rows, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    for (const s of [OPEN, ROTATED, CLOSE]) assert.ok(!text.includes(s));
  });
});
