// A deployment and a country data load at the same moment: the deployment checks that the
// countries its version tests have ranges, and a load may empty one (allowEmpty) after that
// check. The deployment's insert takes the data's lock and checks again, so it is refused
// (geoip_no_data, nothing written) instead of loading an empty set on its hosts. The race is
// made deterministic: the test holds the lock, lets the deploy's early check pass and block
// on the lock, empties the country in the same transaction and commits.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import pg from "pg";
import { startTestApp, type TestApp } from "../support/app.ts";

let t: TestApp;

before(async () => {
  t = await startTestApp();
  await t.db.host.create({ data: { name: "race-edge", capabilities: { features: ["geoip"] } } });
  const loaded = await t.req("POST", "/v1/geoip", { as: "operator", body: { csv: "1.0.0.0,1.0.0.255,CN" } });
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
    // What a forced load (allowEmpty) leaves: CN with no ranges.
    await holder.query("UPDATE geoip_countries SET intervals = 0 WHERE country = 'CN'");
    await holder.query("COMMIT");
    const res = await deploy;
    assert.equal(res.statusCode, 409, res.body);
    assert.deepEqual(
      res.json().error.details.map((d: { code: string }) => d.code),
      ["geoip_no_data"],
    );
    assert.equal(await t.db.deployment.count(), 0, "a deployment row was written");
    assert.equal(await t.db.deploymentTarget.count(), 0);
  } finally {
    await holder.query("ROLLBACK").catch(() => {});
    await holder.end();
  }
});

test("with the country's ranges in place the same deployment goes through", async () => {
  await t.db.geoipCountry.update({ where: { country: "CN" }, data: { intervals: 1 } });
  const res = await t.req("POST", "/v1/deployments", {
    as: "operator",
    body: { ruleset: "race", version: 1, selector: { hosts: ["race-edge"] } },
  });
  assert.equal(res.statusCode, 202, res.body);
});
