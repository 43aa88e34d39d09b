// `palisade bans` (the real bin/palisade in a child process) against a real API,
// PostgreSQL and Redis: add by labels and by host names (published on exactly those
// hosts' channels, audited), ls with table and JSON output and --host, rm, renewal moving
// a ban off hosts the new selector leaves out, and refusals (one error line per bad
// address, exit 4, nothing stored). The kernel side is test/kernel/bans-fleet.test.ts.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ROLE_TOKENS, type TestApp } from "../support/app.ts";
import { openCliApp, type CliApp } from "../support/cli-app.ts";

let app: CliApp;
let t: TestApp;
let cli: CliApp["cli"];
let published: CliApp["published"];

before(async () => {
  app = await openCliApp({
    verb: "bans",
    hosts: [
      { name: "ban-web-0", labels: { role: "web" } },
      { name: "ban-web-1", labels: { role: "web" } },
      { name: "ban-db-0", labels: { role: "db" }, agentAddress: "100.64.77.77" },
    ],
  });
  ({ t, cli, published } = app);
});
after(async () => {
  await app?.close();
});

describe("palisade bans", () => {
  test("add by labels reaches exactly the labelled hosts; ls in table and JSON; --host filters", async () => {
    let out = "";
    const got = await published(async () => {
      const r = await cli([
        "add",
        "edge",
        "203.0.113.5",
        "2001:DB8::/64",
        "--ttl",
        "1h",
        "--reason",
        "probing",
        "--labels",
        "role=web",
      ]);
      assert.equal(r.code, 0, r.stderr);
      out = r.stdout;
    });
    assert.match(out, /^banned 2 on list edge for 1h: 2 host\(s\), \d online now/);
    assert.deepEqual(Object.keys(got).sort(), ["ban-web-0", "ban-web-1"]);
    const n = got["ban-web-0"]![0] as {
      type: string;
      lists: { list: string; add: { address: string; expiresAtMs: number }[]; remove: string[] }[];
    };
    assert.equal(n.type, "bans");
    assert.deepEqual(
      n.lists[0]!.add.map((a) => a.address),
      ["203.0.113.5", "2001:db8::/64"],
    );
    const ttl = n.lists[0]!.add[0]!.expiresAtMs - Date.now();
    assert.ok(ttl > 3500_000 && ttl <= 3600_000, `expiry ${ttl} ms from now`);

    const table = (await cli(["ls"], ROLE_TOKENS.viewer)).stdout.split("\n");
    assert.match(table[0]!, /^LIST\s+ADDRESS\s+EXPIRES\s+HOSTS\s+REASON$/);
    assert.match(table[1]!, /^edge\s+2001:db8::\/64\s+in (59m|1h)\s+role=web\s+probing$/);
    assert.match(table[2]!, /^edge\s+203\.0\.113\.5\s+in (59m|1h)\s+role=web\s+probing$/);
    const json = JSON.parse((await cli(["ls", "edge", "-o", "json"], ROLE_TOKENS.viewer)).stdout) as {
      address: string;
      selector: unknown;
      ttlSeconds: number;
    }[];
    assert.deepEqual(
      json.map((b) => [b.address, b.selector]),
      [
        ["2001:db8::/64", { hosts: null, labels: { role: "web" } }],
        ["203.0.113.5", { hosts: null, labels: { role: "web" } }],
      ],
    );
    assert.equal(
      JSON.parse((await cli(["ls", "--host", "ban-db-0", "-o", "json"], ROLE_TOKENS.viewer)).stdout).length,
      0,
    );
    assert.equal(
      JSON.parse((await cli(["ls", "--host", "ban-web-1", "-o", "json"], ROLE_TOKENS.viewer)).stdout).length,
      2,
    );
    const audit = await t.db.auditLog.findFirst({ where: { action: "ban.add" }, orderBy: { id: "desc" } });
    assert.equal(audit?.actor, "test-operator");
    assert.equal(audit?.target, "ban-list:edge");
  });

  test("renewal with another selector moves the ban; rm lifts it on the hosts it applied to", async () => {
    const got = await published(async () =>
      assert.equal((await cli(["add", "edge", "203.0.113.5", "--hosts", "ban-web-0,ban-db-0", "--ttl", "2h"])).code, 0),
    );
    const lists = (h: string) =>
      (got[h] ?? []).flatMap((n) => (n as { lists: { add: { address: string }[]; remove: string[] }[] }).lists);
    assert.deepEqual(
      lists("ban-web-0").flatMap((l) => l.add.map((a) => a.address)),
      ["203.0.113.5"],
    );
    assert.deepEqual(
      lists("ban-db-0").flatMap((l) => l.add.map((a) => a.address)),
      ["203.0.113.5"],
    );
    assert.deepEqual(
      lists("ban-web-1").flatMap((l) => l.remove),
      ["203.0.113.5"],
      "web-1 is no longer selected",
    );
    const rm = await published(async () => {
      const r = await cli(["rm", "edge", "203.0.113.5"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^lifted 203\.0\.113\.5 on list edge: 2 host\(s\)/);
    });
    assert.deepEqual(Object.keys(rm).sort(), ["ban-db-0", "ban-web-0"]);
    const again = await cli(["rm", "edge", "203.0.113.5"]);
    assert.equal(again.code, 3);
    assert.match(again.stderr, /^error: not_found: no active ban of 203\.0\.113\.5 on list "edge"/);
    assert.ok(await t.db.auditLog.findFirst({ where: { action: "ban.remove" } }));
  });

  test("bad input: one error naming every bad address, exit 4, nothing stored or sent", async () => {
    const before = await t.db.ban.count();
    const auditBefore = await t.db.auditLog.count({ where: { action: "ban.add" } });
    let r = { code: 0, stdout: "", stderr: "" };
    const got = await published(async () => {
      r = await cli([
        "add",
        "edge",
        "198.51.100.9",
        "0.0.0.0/0",
        "not-an-ip",
        "127.0.0.1",
        "100.64.77.0/24",
        "2001:db8::/32",
      ]);
    });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^error: invalid_request: the ban request is invalid; nothing was applied/);
    assert.match(r.stderr, /\/addresses\/1.*whole_internet/);
    assert.match(r.stderr, /\/addresses\/2.*malformed_address/);
    assert.match(r.stderr, /\/addresses\/3.*covers_api_address/);
    assert.match(r.stderr, /\/addresses\/4: .*ban-db-0.*covers_agent_address/);
    assert.match(r.stderr, /\/addresses\/5.*overlaps_ban/);
    assert.doesNotMatch(r.stderr, /\/addresses\/0/);
    assert.deepEqual(got, {});
    assert.equal(await t.db.ban.count(), before);
    assert.equal(await t.db.auditLog.count({ where: { action: "ban.add" } }), auditBefore);
    const viewer = await cli(["add", "edge", "198.51.100.9"], ROLE_TOKENS.viewer);
    assert.equal(viewer.code, 6);
    const ttl = await cli(["add", "edge", "198.51.100.9", "--ttl", "soon"]);
    assert.equal(ttl.code, 2);
  });
});
