// `palisade conditions` (the real bin/palisade in a child process) against a real API,
// PostgreSQL and Redis: set by labels and by host names (published on exactly those hosts'
// channels, audited), the newest row that picks a host wins, ls in table/JSON/YAML and
// with --host, the capability report, and refusals (bad name, unknown host, bad value):
// a clear error, nothing stored, audited or sent. The kernel side is
// test/kernel/conditions-agent.test.ts.
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
    verb: "conditions",
    hosts: [
      { name: "cond-web-0", labels: { role: "web" }, capabilities: { features: ["bans", "conditions"] } },
      { name: "cond-web-1", labels: { role: "web" }, capabilities: { features: ["bans"] } }, // an agent older than conditions
      { name: "cond-db-0", labels: { role: "db" } }, // never connected: reported nothing
    ],
  });
  ({ t, cli, published } = app);
});
after(async () => {
  await app?.close();
});

describe("palisade conditions", () => {
  test("set by labels reaches exactly the labelled hosts, audited; the old agent is reported", async () => {
    let r = { code: 0, stdout: "", stderr: "" };
    const got = await published(async () => {
      r = await cli(["set", "web", "on", "--labels", "role=web"]);
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^condition web on for role=web: 2 host\(s\), \d online now/);
    assert.match(r.stdout, /not applied \(agent older than conditions, upgrade it\): cond-web-1\n$/);
    assert.deepEqual(Object.keys(got).sort(), ["cond-web-0", "cond-web-1"]);
    assert.deepEqual(got["cond-web-0"], [{ type: "conditions", values: [{ name: "web", on: true }] }]);
    const audit = await t.db.auditLog.findFirst({ where: { action: "condition.on" }, orderBy: { id: "desc" } });
    assert.equal(audit?.actor, "test-operator");
    assert.equal(audit?.target, "condition:web");
    assert.deepEqual((audit!.details as { selector: unknown }).selector, { hostIds: null, labels: { role: "web" } });
  });

  test("the newest row that picks a host wins; setting the same selector again replaces its row", async () => {
    const got = await published(async () =>
      assert.equal((await cli(["set", "web", "off", "--hosts", "cond-web-1"])).code, 0),
    );
    assert.deepEqual(got, { "cond-web-1": [{ type: "conditions", values: [{ name: "web", on: false }] }] });
    const j = JSON.parse((await cli(["ls", "web", "--host", "cond-web-1", "-o", "json"], ROLE_TOKENS.viewer)).stdout);
    assert.deepEqual(j.effective, { web: false });
    assert.deepEqual(
      JSON.parse((await cli(["ls", "--host", "cond-web-0", "-o", "json"], ROLE_TOKENS.viewer)).stdout).effective,
      { web: true },
    );
    // A host no row picks has no value (off), and db-0 is not picked by role=web.
    assert.deepEqual(
      JSON.parse((await cli(["ls", "--host", "cond-db-0", "-o", "json"], ROLE_TOKENS.viewer)).stdout).effective,
      {},
    );
    // role=web again (newer than the host row): web-1 is on again; still two rows for web.
    const again = await published(async () =>
      assert.equal((await cli(["set", "web", "on", "--labels", "role=web"])).code, 0),
    );
    assert.deepEqual(again["cond-web-1"], [{ type: "conditions", values: [{ name: "web", on: true }] }]);
    assert.equal(await t.db.conditionValue.count({ where: { name: "web" } }), 2);
    const table = (await cli(["ls"], ROLE_TOKENS.viewer)).stdout.split("\n");
    assert.match(table[0]!, /^NAME\s+VALUE\s+HOSTS\s+SET$/);
    assert.match(table[1]!, /^web\s+on\s+role=web\s+/);
    assert.match(table[2]!, /^web\s+off\s+hosts=cond-web-1\s+/);
    const yaml = (await cli(["ls", "web", "-o", "yaml"], ROLE_TOKENS.viewer)).stdout;
    assert.match(yaml, /name: web/);
  });

  test("bad input: a clear error naming what and where; nothing stored, audited or sent", async () => {
    const rows = await t.db.conditionValue.count();
    const audits = await t.db.auditLog.count({ where: { action: { startsWith: "condition." } } });
    const cases: [string[], number, RegExp][] = [
      [["set", "web-site", "on"], 4, /condition names: 1-27 letters, digits or '_'/],
      [["set", "x".repeat(28), "on"], 4, /condition names/],
      [
        ["set", "web", "on", "--hosts", "cond-web-0,no-such-host"],
        4,
        /selector\/hosts\/1.*no host with id or name "no-such-host"/,
      ],
      [["set", "web", "maybe"], 2, /the value must be "on" or "off"/],
    ];
    for (const [args, code, msg] of cases) {
      let r = { code: 0, stdout: "", stderr: "" };
      const got = await published(async () => {
        r = await cli(args);
      });
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(" "));
      assert.deepEqual(got, {}, args.join(" "));
    }
    const viewer = await cli(["set", "web", "off"], ROLE_TOKENS.viewer);
    assert.equal(viewer.code, 6);
    assert.equal(await t.db.conditionValue.count(), rows);
    assert.equal(await t.db.auditLog.count({ where: { action: { startsWith: "condition." } } }), audits);
  });
});
