// A country data load that would leave a country with no ranges while a deployed or
// deploying ruleset version tests it (its sets would be emptied on those hosts: a geoip drop
// then matches nobody, a negated one everybody) is refused over REST and by the real CLI
// (`palisade geoip update --file`), against real PostgreSQL and Redis: 409
// geoip_would_empty, one detail per country naming the versions and hosts; nothing stored,
// audited or published. A country only an undeployed version tests, or none, may go empty;
// `allowEmpty` / `--allow-empty` stores the load, audited as such, with a warning. Per
// family too: an IPv4-only file that leaves DE's IPv4 ranges but drops its IPv6 ones is
// refused while a version tests DE in IPv6 (a negated test's empty IPv6 set matches every
// IPv6 source), naming country and family; a version restricted to IPv4 does not count.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../support/app.ts";
import { openCliApp, type CliApp } from "../support/cli-app.ts";

let app: CliApp;
let t: TestApp;
let cli: CliApp["cli"];
let published: CliApp["published"];
let dir: string;

const CN6 = "2001:db8:1::,2001:db8:1::ffff,CN";
const DE6 = "2001:db8:2::,2001:db8:2::ffff,DE";
const FR6 = "2001:db8:3::,2001:db8:3::ffff,FR";
const caps = { features: ["bans", "conditions", "geoip"] };
const load = (body: object) => t.req("POST", "/v1/geoip", { as: "operator", body });
const revision = async () => (await t.req("GET", "/v1/geoip", { as: "viewer" })).json().dataset.revision as number;
const audits = () => t.db.auditLog.count({ where: { action: "geoip.update" } });
const dropOn = (geo: object) => ({
  chains: {
    input: { hook: "input", rules: [{ match: { protocol: "tcp", dport: 22, xt: { geoip: geo } }, action: "drop" }] },
  },
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "palisade-geoip-empty-"));
  app = await openCliApp({
    verb: "geoip",
    hosts: [
      { name: "geo-edge-a", capabilities: caps },
      { name: "geo-edge-b", capabilities: caps },
      { name: "geo-idle", capabilities: caps },
    ],
  });
  ({ t, cli, published } = app);
  const first = await load({
    csv: `1.0.0.0,1.0.0.255,CN\n${CN6}\n2.0.0.0,2.0.0.255,DE\n${DE6}\n3.0.0.0,3.0.0.255,FR\n4.0.0.0,4.0.0.9,JP\n${FR6}`,
  });
  assert.equal(first.statusCode, 200, first.body);
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "geo" } })).statusCode, 201);
  for (const policy of [
    dropOn({ source: ["CN"] }), // v1: applied on edge-a
    dropOn({ source: ["DE"], invert: true }), // v2: being deployed to edge-b
    dropOn({ source: ["JP"] }), // v3: never deployed
    {
      chains: {
        input: {
          hook: "input",
          rules: [{ match: { family: "ipv4", xt: { geoip: { source: ["FR"], invert: true } } }, action: "drop" }],
        },
      },
    }, // v4: IPv4 only, applied on geo-idle
  ]) {
    const v = await t.req("POST", "/v1/rulesets/geo/versions", { body: { policy } });
    assert.equal(v.statusCode, 201, v.body);
  }
  const v1 = await t.db.rulesetVersion.findFirstOrThrow({ where: { number: 1, ruleset: { name: "geo" } } });
  await t.db.host.update({ where: { name: "geo-edge-a" }, data: { appliedVersionId: v1.id } });
  const v4 = await t.db.rulesetVersion.findFirstOrThrow({ where: { number: 4, ruleset: { name: "geo" } } });
  await t.db.host.update({ where: { name: "geo-idle" }, data: { appliedVersionId: v4.id } });
  const dep = await t.req("POST", "/v1/deployments", {
    body: { ruleset: "geo", version: 2, selector: { hosts: ["geo-edge-b"] } },
  });
  assert.equal(dep.statusCode, 202, dep.body);
});
after(async () => {
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a load that would empty a country in use", () => {
  test("is refused over REST, naming the country, the versions and the hosts; nothing stored, audited or sent", async () => {
    const [rev, n] = [await revision(), await audits()];
    let res: Awaited<ReturnType<typeof load>> | undefined;
    const got = await published(async () => {
      res = await load({ csv: `2.0.0.0,2.0.0.255,DE\n${DE6}\n3.0.0.0,3.0.0.255,FR`, source: "no-cn.csv" });
    });
    assert.equal(res!.statusCode, 409, res!.body);
    const e = res!.json().error;
    assert.equal(e.code, "geoip_would_empty");
    assert.match(e.message, /nothing stored: it has no ranges for CN, which deployed ruleset versions test/);
    assert.match(e.message, /--allow-empty/);
    assert.deepEqual(e.details, [
      {
        path: "/csv",
        code: "geoip_would_empty",
        message: "country CN would have no ranges; tested by geo v1 (applied on geo-edge-a)",
      },
    ]);
    assert.deepEqual(got, {});
    assert.equal(await revision(), rev);
    assert.equal(await audits(), n);
    const cn = (await t.db.geoipCountry.findUniqueOrThrow({ where: { country: "CN" } })).intervals;
    assert.equal(cn, 2);
  });

  test("is refused by the CLI, one line per country; the deploying version and its host are named", async () => {
    const rev = await revision();
    const csv = join(dir, "fr-only.csv");
    await writeFile(csv, "3.0.0.0,3.0.0.255,FR\n");
    const r = await cli(["update", "--file", csv]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no ranges for CN, DE, which deployed ruleset versions test/);
    assert.match(
      r.stderr,
      /country CN would have no ranges; tested by geo v1 \(applied on geo-edge-a\) \(geoip_would_empty\)/,
    );
    assert.match(
      r.stderr,
      /country DE would have no ranges; tested by geo v2 \(deploying to geo-edge-b\) \(geoip_would_empty\)/,
    );
    assert.doesNotMatch(r.stderr, /geo-idle|JP/);
    assert.equal(await revision(), rev);
  });

  test("an IPv4-only file that leaves a country in use without IPv6 ranges is refused, naming country and family", async () => {
    const [rev, n] = [await revision(), await audits()];
    const v4only = "1.0.0.0,1.0.0.255,CN\n2.0.0.0,2.0.0.255,DE\n3.0.0.0,3.0.0.255,FR\n4.0.0.0,4.0.0.9,JP";
    let res: Awaited<ReturnType<typeof load>> | undefined;
    const got = await published(async () => {
      res = await load({ csv: v4only, source: "v4-only.csv" });
    });
    assert.equal(res!.statusCode, 409, res!.body);
    const e = res!.json().error;
    assert.equal(e.code, "geoip_would_empty");
    assert.match(e.message, /nothing stored: it has no ranges for CN \(IPv6\), DE \(IPv6\), which deployed/);
    // FR loses its IPv6 ranges too, but the only version in use that tests FR is IPv4-only.
    assert.deepEqual(
      e.details.map((d: { message: string }) => d.message),
      [
        "country CN would have no IPv6 ranges (it has 1 now); tested in IPv6 by geo v1 (applied on geo-edge-a)",
        "country DE would have no IPv6 ranges (it has 1 now); tested in IPv6 by geo v2 (deploying to geo-edge-b)",
      ],
    );
    assert.deepEqual(got, {});
    assert.equal(await revision(), rev);
    assert.equal(await audits(), n);
    assert.equal(
      (await t.db.geoipCountry.findUniqueOrThrow({ where: { country: "DE" } })).ipv6,
      "2001:db8:2::-2001:db8:2::ffff",
    );
    // allowEmpty stores it and says which families it emptied; the next load puts them back.
    const forced = await load({ csv: v4only, allowEmpty: true });
    assert.equal(forced.statusCode, 200, forced.body);
    assert.deepEqual(forced.json().emptiedInUse, ["CN/ipv6", "DE/ipv6"]);
    const back = await load({ csv: `${v4only}\n${CN6}\n${DE6}\n${FR6}` });
    assert.equal(back.statusCode, 200, back.body);
    assert.deepEqual(back.json().emptiedInUse, []);
  });

  test("a country only an undeployed version tests, or none, may go empty without the flag", async () => {
    const res = await load({ csv: `1.0.0.0,1.0.0.255,CN\n${CN6}\n2.0.0.0,2.0.0.255,DE\n${DE6}\n3.0.0.0,3.0.0.255,FR` });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual([res.json().changed, res.json().emptiedInUse], [["FR", "JP"], []]);
  });

  test("--allow-empty stores it, says so, audits it and tells the hosts", async () => {
    const rev = await revision();
    const csv = join(dir, "fr-only.csv");
    let r = { code: 0, stdout: "", stderr: "" };
    const got = await published(async () => {
      r = await cli(["update", "--file", csv, "--allow-empty"]);
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: CN, DE now have no ranges and deployed versions test them \(--allow-empty\)/);
    assert.match(r.stdout, new RegExp(`geoip revision ${rev + 1} from fr-only\\.csv: 1 ranges, 1 countries`));
    assert.deepEqual(Object.keys(got).sort(), ["geo-edge-a", "geo-edge-b", "geo-idle"]);
    const audit = await t.db.auditLog.findFirstOrThrow({ where: { action: "geoip.update" }, orderBy: { id: "desc" } });
    assert.deepEqual((audit.details as { allowEmpty?: boolean; emptiedInUse?: string[] }).emptiedInUse, ["CN", "DE"]);
    assert.equal((audit.details as { allowEmpty?: boolean }).allowEmpty, true);
    assert.equal((await t.db.geoipCountry.findUniqueOrThrow({ where: { country: "CN" } })).intervals, 0);
    // Already empty and still empty: the next load without the flag is refused again, naming them.
    const again = await load({ csv: "3.0.0.0,3.0.0.255,FR", allowEmpty: false });
    assert.equal(again.statusCode, 409, again.body);
    assert.deepEqual(
      again.json().error.details.map((d: { message: string }) => d.message.slice(0, 10)),
      ["country CN", "country DE"],
    );
  });
});
