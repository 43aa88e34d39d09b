// A deployment and a country data load at the same moment: the deployment checks that the
// countries its version tests have ranges, and a load may empty one (allowEmpty). The
// deployment's insert takes the data's lock before it checks, so it is refused
// (geoip_no_data, nothing written) instead of loading an empty set on its hosts. The race is
// made deterministic: the test holds the lock, lets the deploy block on it, empties the
// country's IPv6 ranges (what an IPv4-only file loaded with allowEmpty leaves) and commits:
// the check is per family. Without the race, a version
// testing a country in a family with no ranges is refused naming the family; one restricted
// to the other family (match family), or a mark forward's geoip match, is checked the same.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import pg from "pg";
import { startTestApp, type TestApp } from "../support/app.ts";

let t: TestApp;

before(async () => {
  t = await startTestApp();
  await t.db.host.create({ data: { name: "race-edge", capabilities: { features: ["geoip"] } } });
  await t.db.host.create({ data: { name: "race-other", capabilities: { features: ["geoip"] } } });
  const loaded = await t.req("POST", "/v1/geoip", {
    as: "operator",
    body: { csv: "1.0.0.0,1.0.0.255,CN\n2001:db8:1::,2001:db8:1::ffff,CN" },
  });
  assert.equal(loaded.statusCode, 200, loaded.body);
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "race" } })).statusCode, 201);
  const policy = {
    chains: {
      input: { hook: "input", rules: [{ match: { xt: { geoip: { source: ["CN"], invert: true } } }, action: "drop" }] },
    },
  };
  const v = await t.req("POST", "/v1/rulesets/race/versions", { body: { policy } });
  assert.equal(v.statusCode, 201, v.body);
});
after(() => t?.close());

/** Waits (bounded) until a backend other than `self` waits for an advisory lock. */
async function someoneWaitsForAdvisoryLock(c: pg.Client, self: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const r = await c.query(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid <> $1",
      [self],
    );
    if (r.rows[0].n > 0) return true;
    await new Promise((res) => setTimeout(res, 50));
  }
  return false;
}

test("a load that empties a country between a deploy's check and its insert: the deploy is refused, nothing written", async () => {
  const holder = new pg.Client({ connectionString: t.database.url });
  await holder.connect();
  try {
    await holder.query("BEGIN");
    await holder.query("SELECT pg_advisory_xact_lock(hashtext('geoip'))");
    const self = (await holder.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
    const deploy = t.req("POST", "/v1/deployments", {
      as: "operator",
      body: { ruleset: "race", version: 1, selector: { hosts: ["race-edge"] } },
    });
    assert.ok(await someoneWaitsForAdvisoryLock(holder, self), "the deployment never waited for the data's lock");
    // What a forced load (allowEmpty) of an IPv4-only file leaves: CN without IPv6 ranges.
    await holder.query("UPDATE geoip_countries SET ipv6 = '', intervals = 1 WHERE country = 'CN'");
    await holder.query("COMMIT");
    const res = await deploy;
    assert.equal(res.statusCode, 409, res.body);
    assert.deepEqual(
      res.json().error.details.map((d: { code: string; message: string }) => `${d.code} ${d.message}`),
      ["geoip_no_data country CN has no IPv6 ranges"],
    );
    assert.equal(await t.db.deployment.count(), 0, "a deployment row was written");
    assert.equal(await t.db.deploymentTarget.count(), 0);
  } finally {
    await holder.query("ROLLBACK").catch(() => {});
    await holder.end();
  }
});

test("CN without IPv6 ranges: a version testing it in IPv6 (a rule or a mark forward) is refused; an IPv4-only one deploys", async () => {
  const version = async (policy: object) => {
    const v = await t.req("POST", "/v1/rulesets/race/versions", { body: { policy } });
    assert.equal(v.statusCode, 201, v.body);
    return v.json().version as number;
  };
  const deploy = (version: number) =>
    t.req("POST", "/v1/deployments", {
      as: "operator",
      body: { ruleset: "race", version, selector: { hosts: ["race-other"] } },
    });
  const refused = await deploy(1);
  assert.equal(refused.statusCode, 409, refused.body);
  assert.match(refused.json().error.message, /no address ranges in the country data: CN \(IPv6\)/);
  const markForward = await version({
    chains: {},
    forwarding: {
      markForwards: [
        { mark: 5, match: { xt: { geoip: { source: ["CN"], invert: true } } }, backends: [{ address: "192.0.2.1" }] },
      ],
    },
  });
  const mf = await deploy(markForward);
  assert.equal(mf.statusCode, 409, mf.body);
  assert.deepEqual(
    mf.json().error.details.map((d: { code: string; message: string }) => `${d.code} ${d.message}`),
    ["geoip_no_data country CN has no IPv6 ranges"],
  );
  const v4only = await version({
    chains: {
      input: {
        hook: "input",
        rules: [{ match: { family: "ipv4", xt: { geoip: { source: ["CN"], invert: true } } }, action: "drop" }],
      },
    },
  });
  const ok = await deploy(v4only);
  assert.equal(ok.statusCode, 202, ok.body);
});

test("with the country's ranges in place the same deployment goes through", async () => {
  await t.db.geoipCountry.update({
    where: { country: "CN" },
    data: { ipv6: "2001:db8:1::-2001:db8:1::ffff", intervals: 2 },
  });
  const res = await t.req("POST", "/v1/deployments", {
    as: "operator",
    body: { ruleset: "race", version: 1, selector: { hosts: ["race-edge"] } },
  });
  assert.equal(res.statusCode, 202, res.body);
});
