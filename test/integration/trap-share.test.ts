// Shared trap hits on the API side (src/api/dynamic-sets/trap-share.ts), with real
// PostgreSQL and Redis: a trap hit's source can be forged, so exempt sources (share.exempt
// and what the host's policy accepts by saddr) are never banned fleet-wide; an address that
// already holds the fleet ban is skipped as known, not banned again.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { shareTrapHits } from "../../src/api/dynamic-sets/trap-share.ts";
import { silentLog } from "../../src/api/log.ts";
import { startTestApp, type TestApp } from "../support/app.ts";

const LIST = `trapspoof_${process.pid}`;
const document = {
  sets: { peers: { type: "ipv4_addr", interval: true, elements: ["198.51.100.0/28"] } },
  chains: {
    input: {
      hook: "input",
      policy: "drop",
      rules: [
        { match: { saddr: "203.0.113.7" }, action: "accept" },
        { match: { saddr: "@peers" }, action: "accept" },
        { match: { saddr: { not: "203.0.113.99" } }, action: "accept" },
      ],
    },
  },
  protections: {
    portScanTrap: { ports: [139], share: { list: LIST, ttlSeconds: 600, exempt: ["192.0.2.0/24", "2001:db8::/32"] } },
  },
};

let t: TestApp;
let hostId: string;
before(async () => {
  t = await startTestApp();
  const rs = await t.db.ruleset.create({ data: { name: "trap", latestVersion: 1 } });
  const v = await t.db.rulesetVersion.create({
    data: { rulesetId: rs.id, number: 1, document, checksum: "x", author: "test" },
  });
  hostId = (await t.db.host.create({ data: { name: "trap-a", appliedVersionId: v.id } })).id;
});
after(async () => {
  await t?.close();
});

const share = (addresses: string[]) => shareTrapHits({ db: t.db, redis: t.redis, log: silentLog }, hostId, addresses);

test("exempt and policy-accepted sources are never banned fleet-wide; others are", async () => {
  const r = await share(["192.0.2.53", "2001:db8::1", "203.0.113.7", "198.51.100.9", "203.0.113.99", "198.51.100.77"]);
  assert.equal(r.list, LIST);
  assert.equal(r.exempt, 4, JSON.stringify(r));
  // The negated accept (everything but .99) is no fixed source: .99 and .77 are banned.
  assert.deepEqual(r.banned.sort(), ["198.51.100.77", "203.0.113.99"]);
  const rows = await t.db.ban.findMany({ where: { list: LIST } });
  assert.deepEqual(rows.map((b) => b.address).sort(), ["198.51.100.77", "203.0.113.99"]);
});

test("an address that already holds the fleet ban is skipped as known, not banned again", async () => {
  const before = await t.db.auditLog.count({ where: { action: "ban.add" } });
  // Past the 10 s claim: only the active-ban check can make it known.
  await t.redis.del(`palisade:trapshare:claim:${LIST}:198.51.100.77`);
  const r = await share(["198.51.100.77"]);
  assert.equal(r.known, 1, JSON.stringify(r));
  assert.deepEqual(r.banned, []);
  assert.equal(await t.db.auditLog.count({ where: { action: "ban.add" } }), before, "no second ban.add");
  assert.equal(await t.db.ban.count({ where: { list: LIST, address: "198.51.100.77" } }), 1);
});

test("an applied version that no longer validates for nftables shares nothing, and says so in the log", async () => {
  // Stored before the engine refused it: a user set named like a geoip country set, which
  // the agent would fill with that country's ranges (set_name_reserved on nftables).
  const stale = {
    ...document,
    sets: { ...document.sets, geo_v4_CN: { type: "ipv4_addr", elements: ["198.51.100.200"] } },
    chains: {
      input: {
        ...document.chains.input,
        rules: [...document.chains.input.rules, { match: { saddr: "@geo_v4_CN" }, action: "drop" }],
      },
    },
  };
  const rs = await t.db.ruleset.create({ data: { name: "trapstale", latestVersion: 3 } });
  const v = await t.db.rulesetVersion.create({
    data: { rulesetId: rs.id, number: 3, document: stale, checksum: "y", author: "test" },
  });
  const host = await t.db.host.create({ data: { name: "trap-stale", appliedVersionId: v.id } });
  const logged: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) =>
    void logged.push({ level, obj: obj as Record<string, unknown>, msg });
  const log = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  const r = await shareTrapHits({ db: t.db, redis: t.redis, log }, host.id, ["203.0.113.200"]);
  assert.deepEqual(r.banned, []);
  assert.equal(r.list, undefined);
  const warn = logged.find((l) => l.level === "warn");
  assert.ok(warn, JSON.stringify(logged));
  assert.equal(warn.obj.ruleset, "trapstale");
  assert.equal(warn.obj.version, 3);
  assert.equal(warn.obj.versionId, v.id);
  assert.deepEqual(warn.obj.codes, ["set_name_reserved"]);
  assert.match(warn.msg ?? "", /no longer validates for nftables/);
  // JSON all the way (the API logs with pino).
  assert.deepEqual(JSON.parse(JSON.stringify(warn.obj)), warn.obj);
});
