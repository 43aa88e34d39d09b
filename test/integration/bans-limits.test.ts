// The cap on active bans one host may be selected by (its full ban state is one gRPC
// message): an add that would put a host over it is refused whole with a 400 naming the
// host and the limit, nothing stored or audited; hosts the add does not select are not limited by it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestApp, type TestApp } from "../support/app.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp({ bansMaxPerHost: 3 });
  await t.db.host.create({ data: { name: "cap-web-0", labels: { role: "web" } } });
  await t.db.host.create({ data: { name: "cap-db-0", labels: { role: "db" } } });
});
after(async () => {
  await t?.close();
});

const post = (list: string, addresses: string[], labels: Record<string, string>) =>
  t.req("POST", "/v1/bans", { as: "operator", body: { list, addresses, ttlSeconds: 3600, selector: { labels } } });

test("an add that puts a host over the cap is refused whole, naming the host and the limit", async () => {
  assert.equal((await post("a", ["198.51.100.1", "198.51.100.2"], { role: "web" })).statusCode, 201);
  // Across lists: the host's full state holds every list.
  assert.equal((await post("b", ["198.51.100.3"], { role: "web" })).statusCode, 201);
  const audits = await t.db.auditLog.count({ where: { action: "ban.add" } });
  const r = await post("b", ["198.51.100.4", "198.51.100.5"], {});
  assert.equal(r.statusCode, 400, r.body);
  assert.match(r.body, /too_many_bans/);
  assert.match(r.body, /cap-web-0 would be selected by 5 active bans; the limit is 3/);
  assert.doesNotMatch(r.body, /cap-db-0/, "db-0 would hold 2");
  assert.equal(await t.db.ban.count(), 3, "nothing stored");
  assert.equal(await t.db.auditLog.count({ where: { action: "ban.add" } }), audits, "nothing audited");
  // The other host has room; a renewal of a ban the host holds already does not count twice.
  assert.equal((await post("b", ["198.51.100.4", "198.51.100.5"], { role: "db" })).statusCode, 201);
  assert.equal((await post("a", ["198.51.100.1"], { role: "web" })).statusCode, 201);
});

test("hosts whose agent is older than bans are counted as unsupported, not sent to", async () => {
  await t.db.host.create({
    data: { name: "old-agent", labels: { role: "old" }, capabilities: { features: ["sets"] } },
  });
  await t.db.host.create({
    data: { name: "new-agent", labels: { role: "old" }, capabilities: { features: ["bans", "sets"] } },
  });
  await t.db.host.create({ data: { name: "never-seen", labels: { role: "old" } } });
  const r = await post("c", ["198.51.100.9"], { role: "old" });
  assert.equal(r.statusCode, 201, r.body);
  const body = JSON.parse(r.body) as { hosts: number; unsupported: number };
  assert.equal(body.hosts, 3);
  assert.equal(body.unsupported, 1, "only the agent that reported capabilities without bans");
});
