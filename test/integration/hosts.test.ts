// Hosts (read, label), enrollment tokens, and the audit log.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { hashSecret } from "../../src/api/auth.ts";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";
import { validPolicy } from "../support/policies.ts";

let t: TestApp;
let hostId: string;
before(async () => {
  t = await startTestApp();
  await t.req("POST", "/v1/rulesets", { body: { name: "base" } });
  await t.req("POST", "/v1/rulesets/base/versions", { body: { policy: validPolicy() } });
  const version = await t.db.rulesetVersion.findFirstOrThrow({ where: { ruleset: { name: "base" } } });
  const h = await t.db.host.create({
    data: {
      name: "edge-1",
      labels: { role: "edge" },
      capabilities: { nft: "1.0.6" },
      connection: "connected",
      lastSeenAt: new Date(),
      appliedVersionId: version.id,
      desiredVersionId: version.id,
    },
  });
  hostId = h.id;
  for (let i = 0; i < 4; i++) await t.db.host.create({ data: { name: `node-${i}` } });
});
after(async () => {
  await t?.close();
});

describe("hosts", () => {
  test("get by id and by name give the same host, with its applied version", async () => {
    const byId = await t.req("GET", `/v1/hosts/${hostId}`, { as: "viewer" });
    const byName = await t.req("GET", "/v1/hosts/edge-1", { as: "viewer" });
    assert.equal(byId.statusCode, 200, byId.body);
    assert.deepEqual(byId.json(), byName.json());
    const h = byId.json();
    assert.equal(h.name, "edge-1");
    assert.deepEqual(h.labels, { role: "edge" });
    assert.deepEqual(h.capabilities, { nft: "1.0.6" });
    assert.equal(h.connection, "connected");
    assert.deepEqual(h.appliedVersion, { ruleset: "base", version: 1 });
    assert.equal(h.drift, false);
    assert.equal((await t.req("GET", "/v1/hosts/missing")).statusCode, 404);
    assert.equal((await t.req("GET", "/v1/hosts/00000000-0000-0000-0000-000000000000")).statusCode, 404);
  });

  test("list pages by name", async () => {
    const p1 = (await t.req("GET", "/v1/hosts?limit=3")).json();
    assert.deepEqual(
      p1.items.map((h: { name: string }) => h.name),
      ["edge-1", "node-0", "node-1"],
    );
    const p2 = (await t.req("GET", `/v1/hosts?limit=3&cursor=${p1.nextCursor}`)).json();
    assert.deepEqual(
      p2.items.map((h: { name: string }) => h.name),
      ["node-2", "node-3"],
    );
    assert.equal(p2.nextCursor, null);
  });

  test("list filters by label selector and connection state", async () => {
    await t.db.host.create({ data: { name: "edge-2", labels: { role: "edge", zone: "us-1" } } });
    const names = async (q: string) =>
      (await t.req("GET", `/v1/hosts?${q}`)).json().items.map((h: { name: string }) => h.name);
    assert.deepEqual(await names("label=role=edge"), ["edge-1", "edge-2"]);
    assert.deepEqual(await names("label=role=edge,zone=us-1"), ["edge-2"]);
    assert.deepEqual(await names("label=role=nothing"), []);
    assert.deepEqual(await names("connection=connected"), ["edge-1"]);
    assert.deepEqual(await names("label=role=edge&connection=never_connected"), ["edge-2"]);
    assert.equal((await t.req("GET", "/v1/hosts?label=novalue")).statusCode, 400);
    await t.db.host.delete({ where: { name: "edge-2" } });
  });

  test("PATCH merges labels (null removes), audits, and validates keys", async () => {
    const res = await t.req("PATCH", "/v1/hosts/edge-1", { body: { labels: { zone: "eu-1", role: null } } });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json().labels, { zone: "eu-1" });
    const audit = await t.db.auditLog.findFirst({ where: { action: "host.labels.update", target: "host:edge-1" } });
    assert.deepEqual(audit?.details, { id: hostId, patch: { zone: "eu-1", role: null } });
    const bad = await t.req("PATCH", "/v1/hosts/edge-1", { body: { labels: { "bad key!": "x" } } });
    assert.equal(bad.statusCode, 400);
    assert.equal((await t.req("PATCH", "/v1/hosts/edge-1", { body: { name: "renamed" } })).statusCode, 400);
    assert.equal((await t.req("PATCH", "/v1/hosts/missing", { body: { labels: {} } })).statusCode, 404);
    assert.deepEqual((await t.req("GET", "/v1/hosts/edge-1")).json().labels, { zone: "eu-1" });
  });

  test("a host named like another host's id never receives that host's changes", async () => {
    // Created first so an unordered id-or-name lookup would find it before the victim.
    const victimId = "0b5e1f7a-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
    const impostor = await t.db.host.create({ data: { name: victimId } });
    const victim = await t.db.host.create({ data: { id: victimId, name: "victim-1" } });
    const res = await t.req("PATCH", `/v1/hosts/${victimId}`, { body: { labels: { owner: "victim" } } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().id, victim.id);
    assert.deepEqual((await t.db.host.findUniqueOrThrow({ where: { id: impostor.id } })).labels, {});
    assert.deepEqual((await t.db.host.findUniqueOrThrow({ where: { id: victim.id } })).labels, { owner: "victim" });
    assert.equal((await t.req("GET", `/v1/hosts/${victimId.toUpperCase()}`)).json().id, victim.id);
    // Deployment selectors resolve the same way.
    const { resolveSelector } = await import("../../src/api/deploy/selector.ts");
    assert.deepEqual(
      (await resolveSelector(t.db, { hosts: [victimId] })).map((h) => h.id),
      [victim.id],
    );
    await t.db.host.deleteMany({ where: { id: { in: [impostor.id, victim.id] } } });
  });

  test("concurrent label patches keep every key", async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const results = await Promise.all(
      keys.map((k) => t.req("PATCH", "/v1/hosts/node-0", { body: { labels: { [k]: "v" } } })),
    );
    for (const r of results) assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(Object.keys((await t.req("GET", "/v1/hosts/node-0")).json().labels).sort(), keys.sort());
  });
});

describe("enrollment tokens", () => {
  test("create: secret shown once and stored hashed, expiry from ttlSeconds, labels kept", async () => {
    const res = await t.req("POST", "/v1/enrollment-tokens", { body: { ttlSeconds: 600, labels: { site: "lab" } } });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.match(body.token, /^palenroll_/);
    const ttl = (Date.parse(body.expiresAt) - Date.now()) / 1000;
    assert.ok(ttl > 590 && ttl <= 600, `ttl ${ttl}`);
    const row = await t.db.enrollmentToken.findUniqueOrThrow({ where: { id: body.id } });
    assert.equal(row.tokenHash, hashSecret(body.token));
    assert.deepEqual(row.labels, { site: "lab" });
    assert.equal(row.usedAt, null);
    const list = await t.req("GET", "/v1/enrollment-tokens");
    assert.ok(!list.body.includes(body.token));
    assert.equal(list.json().items[0].id, body.id);
  });

  test("defaults to one day; out-of-range ttl and unknown fields are 400", async () => {
    const res = await t.req("POST", "/v1/enrollment-tokens", { body: {} });
    assert.equal(res.statusCode, 201);
    const ttl = (Date.parse(res.json().expiresAt) - Date.now()) / 1000;
    assert.ok(ttl > 86_000 && ttl <= 86_400);
    assert.equal((await t.req("POST", "/v1/enrollment-tokens", { body: { ttlSeconds: 1 } })).statusCode, 400);
    assert.equal((await t.req("POST", "/v1/enrollment-tokens", { body: { ttlSeconds: "600" } })).statusCode, 400);
    assert.equal((await t.req("POST", "/v1/enrollment-tokens", { body: { uses: 3 } })).statusCode, 400);
  });

  test("list pages newest first", async () => {
    for (let i = 0; i < 3; i++) await t.req("POST", "/v1/enrollment-tokens", { body: {} });
    const all = (await t.req("GET", "/v1/enrollment-tokens?limit=500")).json().items.map((i: { id: string }) => i.id);
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: { id: string }[]; nextCursor: string | null } = (
        await t.req("GET", `/v1/enrollment-tokens?limit=2${cursor ? `&cursor=${cursor}` : ""}`)
      ).json();
      paged.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual(paged, all);
    assert.ok(all.length >= 5);
  });
});

describe("audit", () => {
  test("every change so far is there, newest first, with actor and target; filters and paging work", async () => {
    const res = await t.req("GET", "/v1/audit?limit=500", { as: "viewer" });
    assert.equal(res.statusCode, 200);
    const items = res.json().items as { id: string; actor: string; action: string; target: string; at: string }[];
    const actions = new Set(items.map((i) => i.action));
    for (const a of ["ruleset.create", "ruleset.version.create", "host.labels.update", "enrollment_token.create"])
      assert.ok(actions.has(a), a);
    const ids = items.map((i) => BigInt(i.id));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => (a > b ? -1 : 1)),
    );
    const filtered = (await t.req("GET", "/v1/audit?action=ruleset.version.create&target=ruleset:base")).json().items;
    assert.equal(filtered.length, 1);
    assert.equal(filtered[0].actor, "test-admin");
    assert.equal(filtered[0].target, "ruleset:base/versions/1");
    const p1 = (await t.req("GET", "/v1/audit?limit=2")).json();
    const p2 = (await t.req("GET", `/v1/audit?limit=2&cursor=${p1.nextCursor}`)).json();
    assert.deepEqual(
      [...p1.items, ...p2.items].map((i: { id: string }) => i.id),
      items.slice(0, 4).map((i) => i.id),
    );
    const future = (
      await t.req("GET", `/v1/audit?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)
    ).json();
    assert.deepEqual(future.items, []);
    assert.equal((await t.req("GET", "/v1/audit?from=yesterday")).statusCode, 400);
    errorOf(await t.req("GET", "/v1/audit?from=yesterday"));
  });
});
