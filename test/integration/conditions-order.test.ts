// Concurrent sets of one condition (real API, PostgreSQL and Redis): the notices each host's
// channel receives are the sets in commit order (the audit rows' order), so the last one
// is the value the database holds, and GET's `effective` says the same.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { conditionsForHost } from "../../src/api/conditions/index.ts";
import { hostChannel } from "../../src/api/host-bus.ts";
import { ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";
import { TEST_REDIS_URL } from "../support/db.ts";

let t: TestApp;
const ids: Record<string, string> = {};

before(async () => {
  t = await startTestApp();
  for (const [name, features] of [
    ["race-0", ["conditions"]],
    ["race-1", ["conditions"]],
    ["race-old", ["bans"]], // an agent older than conditions
  ] as const) {
    ids[name] = (await t.db.host.create({ data: { name, labels: {}, capabilities: { features: [...features] } } })).id;
  }
});
after(async () => {
  await t?.close();
});

const put = (on: boolean) =>
  t.app.inject({
    method: "PUT",
    url: "/v1/conditions/race",
    headers: { authorization: `Bearer ${ROLE_TOKENS.operator}` },
    payload: { on },
  });

test("concurrent sets of one name reach every host in commit order", async () => {
  const N = 16;
  const sub = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  const got: Record<string, boolean[]> = {};
  const byChannel = new Map(Object.entries(ids).map(([n, id]) => [hostChannel(id), n]));
  try {
    await sub.subscribe(...byChannel.keys());
    sub.on("message", (c: string, m: string) => {
      const v = (JSON.parse(m) as { values: { name: string; on: boolean }[] }).values;
      (got[byChannel.get(c)!] ??= []).push(...v.map((x) => x.on));
    });
    const answers = await Promise.all(Array.from({ length: N }, (_, i) => put(i % 2 === 0)));
    for (const a of answers) {
      assert.equal(a.statusCode, 200, a.body);
      const j = a.json() as { hosts: number; delivered: number; unsupported: string[] };
      assert.equal(j.hosts, 3);
      assert.deepEqual(j.unsupported, ["race-old"]);
      // All three channels have a listener (this test); race-old cannot act on the notice.
      assert.equal(j.delivered, 2, "a host without the capability is not counted as delivered");
    }
    for (let i = 0; i < 100 && Object.values(got).reduce((k, v) => k + v.length, 0) < 3 * N; i++)
      await new Promise((r) => setTimeout(r, 20));
  } finally {
    sub.disconnect();
  }
  const audits = await t.db.auditLog.findMany({ where: { target: "condition:race" }, orderBy: { id: "asc" } });
  const committed = audits.map((a) => a.action === "condition.on");
  assert.equal(committed.length, N);
  const last = committed.at(-1)!;
  for (const name of Object.keys(ids)) {
    assert.deepEqual(got[name], committed, `${name} receives the sets in commit order`);
    assert.equal((await conditionsForHost(t.db, ids[name]!)).get("race"), last);
    const g = await t.app.inject({
      method: "GET",
      url: `/v1/conditions?host=${name}`,
      headers: { authorization: `Bearer ${ROLE_TOKENS.viewer}` },
    });
    assert.deepEqual((g.json() as { effective: unknown }).effective, { race: last });
  }
});

test("rows set at the same instant: GET's effective and the Hello's full state pick the same row", async () => {
  const at = new Date("2026-01-01T00:00:00Z");
  const h = ids["race-0"]!;
  // Two rows with one set_at, opposite values: the tie is broken the same way everywhere.
  for (const [on, key] of [
    [true, "tie-a"],
    [false, "tie-b"],
  ] as const)
    await t.db.$executeRaw`INSERT INTO condition_values (name, "on", host_ids, labels, selector_key, set_by, set_at)
      VALUES ('tie', ${on}, NULL, '{}'::jsonb, ${key}, 'test', ${at})`;
  const hello = (await conditionsForHost(t.db, h)).get("tie");
  const g = await t.app.inject({
    method: "GET",
    url: "/v1/conditions?host=race-0&name=tie",
    headers: { authorization: `Bearer ${ROLE_TOKENS.viewer}` },
  });
  const rows = await t.db.conditionValue.findMany({ where: { name: "tie" }, orderBy: { id: "desc" } });
  assert.equal(hello, rows[0]!.on, "the highest id wins the tie");
  assert.deepEqual((g.json() as { effective: unknown }).effective, { tie: hello });
});
