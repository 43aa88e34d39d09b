// A deploy of a version that needs a kernel feature (action queue: nft queue, CONFIG_NFT_QUEUE)
// is refused for a host whose agent reported capabilities without it, against real
// PostgreSQL and Redis: 409 `unsupported` with one `queue_unsupported` detail per such host,
// the message naming the feature, the rules and what to do; nothing written or audited. A
// host that never reported is not counted (its agent's own refusal names the feature), and
// a rollback to a queue version is checked against the hosts that go back to it.
// The capabilities are what an agent stores in its Hello (src/agent/capabilities.ts): the
// probes that passed, then the agent's own features.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";

let t: TestApp;
const KERNEL = ["ct", "fib", "limit", "log", "nat", "reject", "verdict_map"];
const AGENT = ["bans", "conditions", "dynamic_sets", "geoip"];

const queuePolicy = {
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { match: { protocol: "tcp", dport: [22] }, action: "accept" },
        { match: { protocol: "udp", dport: [7201] }, action: { type: "queue", num: 3, bypass: true } },
      ],
    },
    forward: {
      hook: "forward",
      policy: "accept",
      rules: [{ match: { protocol: "udp" }, action: { type: "queue", num: 4, to: 7, fanout: true } }],
    },
  },
};
const plainPolicy = { chains: { input: { hook: "input", policy: "accept", rules: [{ action: "accept" }] } } };

before(async () => {
  t = await startTestApp({ queue: { prefix: `palisade-test:${process.pid}:kfeat`, lockMs: 15_000 } });
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "ids" } })).statusCode, 201);
  for (const policy of [queuePolicy, plainPolicy]) {
    const v = await t.req("POST", "/v1/rulesets/ids/versions", { body: { policy } });
    assert.equal(v.statusCode, 201, v.body);
  }
  await t.db.host.create({ data: { name: "q-yes", capabilities: { features: [...KERNEL, "queue", ...AGENT] } } });
  await t.db.host.create({ data: { name: "q-no", capabilities: { features: [...KERNEL, ...AGENT] } } });
  await t.db.host.create({ data: { name: "q-never" } }); // enrolled, never connected: reported nothing
});
after(async () => {
  await t?.close();
});

const deploy = (version: number, hosts: string[]) =>
  t.req("POST", "/v1/deployments", { as: "operator", body: { ruleset: "ids", version, selector: { hosts } } });

test("a queue version is refused for a host whose kernel lacks nft queue, naming feature, rules, host and fix", async () => {
  const before = { deployments: await t.db.deployment.count(), audit: await t.db.auditLog.count() };
  const res = await deploy(1, ["q-yes", "q-no", "q-never"]);
  assert.equal(res.statusCode, 409, res.body);
  const e = errorOf(res);
  assert.equal(e.code, "unsupported");
  assert.deepEqual(e.details, [
    {
      path: "/selector",
      code: "queue_unsupported",
      message: "host q-no: kernel without queue, needed by /chains/forward/rules/0, /chains/input/rules/1",
    },
  ]);
  assert.match(e.message, /needs nftables queue support .*CONFIG_NFT_QUEUE/);
  assert.match(e.message, /2 rule\(s\) \(\/chains\/forward\/rules\/0, \/chains\/input\/rules\/1\)/);
  assert.match(e.message, /1 selected host\(s\).*no 'queue' capability\): q-no\./);
  assert.match(e.message, /modprobe nft_queue/);
  assert.match(e.message, /restart the agent/);
  assert.doesNotMatch(e.message, /q-yes|q-never/);
  assert.equal(await t.db.deployment.count(), before.deployments);
  assert.equal(await t.db.auditLog.count(), before.audit);
});

test("hosts that reported queue, or nothing yet, take the queue version; any host takes one without queue", async () => {
  const ok = await deploy(1, ["q-yes", "q-never"]);
  assert.equal(ok.statusCode, 202, ok.body);
  assert.equal(ok.json().targets, 2);
  const plain = await deploy(2, ["q-no"]);
  assert.equal(plain.statusCode, 202, plain.body);
});

test("a rollback to a queue version is refused when the host's kernel no longer has nft queue", async () => {
  const [v1, v2] = await t.db.rulesetVersion.findMany({ orderBy: { number: "asc" }, select: { id: true } });
  // q-yes ran the queue version, then got the plain one; since then it booted a kernel without nft_queue.
  await t.db.host.update({ where: { name: "q-yes" }, data: { appliedVersionId: v1!.id } });
  const d = await deploy(2, ["q-yes"]);
  assert.equal(d.statusCode, 202, d.body);
  await t.db.host.update({
    where: { name: "q-yes" },
    data: { appliedVersionId: v2!.id, capabilities: { features: [...KERNEL, ...AGENT] } },
  });
  const res = await t.req("POST", `/v1/deployments/${d.json().id}/rollback`, { as: "operator" });
  assert.equal(res.statusCode, 409, res.body);
  const e = errorOf(res);
  assert.equal(e.code, "unsupported");
  assert.deepEqual(
    e.details.map((x) => `${x.code} ${x.message}`),
    ["queue_unsupported host q-yes: kernel without queue, needed by /chains/forward/rules/0, /chains/input/rules/1"],
  );
  assert.match(e.message, /version 1 of ruleset "ids" \(which this rollback goes back to\)/);
  assert.notEqual((await t.db.deployment.findUniqueOrThrow({ where: { id: d.json().id } })).status, "rolled_back");
});
