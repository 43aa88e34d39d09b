// Country data over REST against real PostgreSQL and Redis: a load stores merged intervals
// per country with a revision and a change row of element deltas; a bad line refuses the whole
// file (the line named) with nothing stored, audited or published; a second load publishes the
// changed countries to geoip-capable hosts only; what an agent at an older revision gets is
// the folded deltas (or the whole country when it holds nothing); a deploy of a version that
// tests countries is refused for a host whose agent lacks the geoip capability.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { geoUpdatesFor } from "../../src/api/geoip/index.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { published as publishedOn } from "../support/host-channels.ts";

let t: TestApp;
const ids: Record<string, string> = {};

before(async () => {
  t = await startTestApp();
  for (const [name, features] of [
    ["geo-new", ["bans", "conditions", "geoip"]],
    ["geo-old", ["bans", "conditions"]], // an agent older than geoip
  ] as const)
    ids[name] = (await t.db.host.create({ data: { name, capabilities: { features: [...features] } } })).id;
});
after(async () => {
  await t?.close();
});

const published = (fn: () => Promise<unknown>) => publishedOn(ids, fn);

const load = (csv: string) => t.req("POST", "/v1/geoip", { as: "operator", body: { csv, source: "test.csv" } });

describe("geoip data", () => {
  test("a bad line refuses the whole file, naming the line: nothing stored, audited or published", async () => {
    let res: Awaited<ReturnType<typeof load>> | undefined;
    const got = await published(async () => {
      res = await load("1.0.0.0,1.0.0.255,AU\n2.0.0.0,2.0.0.9,FR\n2001:db8::,1.2.3.4,DE\n");
    });
    assert.equal(res!.statusCode, 422, res!.body);
    const body = res!.json();
    assert.equal(body.error.code, "invalid_geoip_data");
    assert.match(body.error.message, /line 3: start and end are of different families/);
    assert.equal(body.error.details[0].code, "geoip_family_mismatch");
    assert.deepEqual(got, {});
    assert.equal(await t.db.geoipCountry.count(), 0);
    assert.equal(await t.db.auditLog.count({ where: { action: "geoip.update" } }), 0);
    assert.equal(
      (await t.req("POST", "/v1/geoip", { as: "viewer", body: { csv: "1.0.0.0,1.0.0.1,AU" } })).statusCode,
      403,
    );
  });

  test("loads store merged intervals; a reload publishes the changed countries to geoip hosts and keeps deltas", async () => {
    const r1 = await load(
      "1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255,AU\n2.0.0.0,2.0.0.9,FR\n2001:db8::,2001:db8::ff,FR\n",
    );
    assert.equal(r1.statusCode, 200, r1.body);
    assert.deepEqual(
      { ...(r1.json() as object), parseMs: 0, storeMs: 0 },
      {
        revision: 1,
        source: "test.csv",
        ranges: 4,
        countries: 2,
        intervals: 3,
        changed: ["AU", "FR"],
        emptiedInUse: [],
        hosts: 1,
        delivered: 0,
        parseMs: 0,
        storeMs: 0,
      },
    );
    let r2: Awaited<ReturnType<typeof load>> | undefined;
    const got = await published(async () => {
      r2 = await load("1.0.0.0,1.0.0.127,AU\n2.0.0.0,2.0.0.9,FR\n2001:db8::,2001:db8::ff,FR\n3.0.0.0,3.0.0.0,DE\n");
    });
    assert.equal(r2!.statusCode, 200, r2!.body);
    assert.deepEqual(r2!.json().changed, ["AU", "DE"]);
    assert.deepEqual(got, { "geo-new": [{ type: "geoip", countries: ["AU", "DE"], revision: 2 }] });
    const view = (await t.req("GET", "/v1/geoip", { as: "viewer" })).json();
    assert.equal(view.dataset.revision, 2);
    assert.deepEqual(
      view.countries.map((c: { country: string; ipv4: number; ipv6: number; revision: number }) => [
        c.country,
        c.ipv4,
        c.ipv6,
        c.revision,
      ]),
      [
        ["AU", 1, 0, 2],
        ["DE", 1, 0, 2],
        ["FR", 1, 1, 1],
      ],
    );
    // A third load drops DE: its sets must empty, so it is a change too.
    assert.deepEqual((await load("1.0.0.0,1.0.0.63,AU\n2.0.0.0,2.0.0.9,FR\n")).json().changed, ["AU", "DE", "FR"]);
    assert.equal(await t.db.auditLog.count({ where: { action: "geoip.update" } }), 3);
  });

  test("an agent at revision 1 gets the folded deltas; one holding nothing gets the whole country; a current one nothing", async () => {
    const [au] = await geoUpdatesFor(t.db, [{ country: "AU", revision: 1 }]);
    assert.deepEqual(au, {
      country: "AU",
      revision: 3,
      full: false,
      ipv4Add: ["1.0.0.0-1.0.0.63"],
      ipv4Del: ["1.0.0.0-1.0.1.255"],
      ipv6Add: [],
      ipv6Del: [],
    });
    const [fr] = await geoUpdatesFor(t.db, [{ country: "FR", revision: 0 }]);
    assert.deepEqual(fr, {
      country: "FR",
      revision: 3,
      full: true,
      ipv4Add: ["2.0.0.0-2.0.0.9"],
      ipv4Del: [],
      ipv6Add: [],
      ipv6Del: [],
    });
    assert.deepEqual(await geoUpdatesFor(t.db, [{ country: "FR", revision: 3 }]), []);
    const [de] = await geoUpdatesFor(t.db, [{ country: "DE", revision: 2 }]);
    assert.deepEqual(
      { ...de },
      { country: "DE", revision: 3, full: false, ipv4Add: [], ipv4Del: ["3.0.0.0"], ipv6Add: [], ipv6Del: [] },
    );
  });

  test("a deploy of a version that tests countries is refused for an agent without geoip, naming it", async () => {
    assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "geo" } })).statusCode, 201);
    const policy = {
      // IPv4 only: the data holds no IPv6 ranges for AU (the no-data check is per family).
      chains: {
        input: {
          hook: "input",
          rules: [{ match: { family: "ipv4", xt: { geoip: { source: ["AU"] } } }, action: "drop" }],
        },
      },
    };
    const v = await t.req("POST", "/v1/rulesets/geo/versions", { body: { policy } });
    assert.equal(v.statusCode, 201, v.body);
    const before = await t.db.deployment.count();
    const refused = await t.req("POST", "/v1/deployments", {
      body: { ruleset: "geo", version: 1, selector: { hosts: ["geo-new", "geo-old"] } },
    });
    assert.equal(refused.statusCode, 409, refused.body);
    assert.equal(refused.json().error.code, "unsupported");
    assert.match(refused.json().error.message, /geoip: AU.*geo-old/);
    assert.doesNotMatch(refused.json().error.message, /geo-new/);
    // A country without data is the answer when both hold: the data is needed whatever the agents.
    const jp = await t.req("POST", "/v1/rulesets/geo/versions", {
      body: {
        policy: {
          chains: {
            input: { hook: "input", rules: [{ match: { xt: { geoip: { source: ["JP"] } } }, action: "drop" }] },
          },
        },
      },
    });
    assert.equal(jp.statusCode, 201, jp.body);
    const noData = await t.req("POST", "/v1/deployments", {
      body: { ruleset: "geo", version: jp.json().version, selector: { hosts: ["geo-old"] } },
    });
    assert.equal(noData.statusCode, 409, noData.body);
    assert.deepEqual(
      noData.json().error.details.map((d: { code: string; message: string }) => `${d.code} ${d.message}`),
      ["geoip_no_data country JP has no ranges"],
    );
    assert.equal(await t.db.deployment.count(), before);
    const ok = await t.req("POST", "/v1/deployments", {
      body: { ruleset: "geo", version: 1, selector: { hosts: ["geo-new"] } },
    });
    assert.equal(ok.statusCode, 202, ok.body);
  });

  test("without the npm package beside the server, a package load says how to install it", async () => {
    const res = await t.req("POST", "/v1/geoip", { as: "operator", body: { package: true } });
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(res.json().error.code, "geoip_package_missing");
    assert.match(res.json().error.message, /npm install --no-save @ip-location-db\/geo-whois-asn-country/);
  });
});
