// A deploy of a version that needs a kernel feature (action queue: nft queue, CONFIG_NFT_QUEUE;
// action tproxy; match socket) is refused for a host whose agent reported capabilities
// without it, against real PostgreSQL and Redis: 409 `unsupported` with one
// `FEATURE_unsupported` detail per such host, the message naming the feature, the rules and
// what to do; nothing written or audited. A host that never reported is not counted (its
// agent's own refusal names the feature). A rollback is not refused for one such host: each
// version is checked against the hosts that go back to it, and a host that lacks a feature
// is skipped with the reason (as a host that ran nothing before) and the remedy (deploy the
// named version once the kernel has the feature: the rollback cannot be asked again); only
// when no host is left is it refused, in a rollback's words. The CLI exits 8 (partial) when
// it left such a host out, 0 when it only skipped hosts that ran nothing before.
// The capabilities are what an agent stores in its Hello (src/agent/capabilities.ts): the
// probes that passed, then the agent's own features.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { errorOf, ROLE_TOKENS, startTestApp, type TestApp } from "../support/app.ts";

const BIN = fileURLToPath(new URL("../../bin/palisade", import.meta.url));

let t: TestApp;
const KERNEL = ["ct", "fib", "limit", "log", "nat", "reject", "verdict_map"];
const AGENT = ["bans", "conditions", "dynamic_sets", "geoip"];
/** A host's capabilities as its agent stores them: the probes that passed (KERNEL, then `features`), then AGENT. */
const hostWith = (features: string[] = []) => ({ capabilities: { features: [...KERNEL, ...features, ...AGENT] } });

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
  await t.db.host.create({ data: { name: "q-yes", ...hostWith(["queue"]) } });
  await t.db.host.create({ data: { name: "q-no", ...hostWith() } });
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

const rollback = (id: string) => t.req("POST", `/v1/deployments/${id}/rollback`, { as: "operator" });
const versionIds = async () =>
  (await t.db.rulesetVersion.findMany({ orderBy: { number: "asc" }, select: { id: true } })).map((v) => v.id);

/**
 * PREFIX-lost and PREFIX-kept ran the queue version, then got the plain one in the deployment
 * returned; since then PREFIX-lost booted a kernel without nft_queue. PREFIX-new ran nothing before.
 */
async function deployThenLoseQueue(prefix: string) {
  const [v1, v2] = await versionIds();
  const lost = await t.db.host.create({
    data: { name: `${prefix}-lost`, ...hostWith(["queue"]), appliedVersionId: v1! },
  });
  const kept = await t.db.host.create({
    data: { name: `${prefix}-kept`, ...hostWith(["queue"]), appliedVersionId: v1! },
  });
  await t.db.host.create({ data: { name: `${prefix}-new`, ...hostWith(["queue"]) } });
  const d = await deploy(2, [`${prefix}-lost`, `${prefix}-kept`, `${prefix}-new`]);
  assert.equal(d.statusCode, 202, d.body);
  await t.db.host.update({
    where: { id: lost.id },
    data: { appliedVersionId: v2!, ...hostWith() },
  });
  await t.db.host.update({ where: { id: kept.id }, data: { appliedVersionId: v2! } });
  return { id: d.json().id as string, lost, v1: v1! };
}

test("a rollback leaves out a host whose kernel no longer has nft queue, with the reason, and rolls back the others", async () => {
  const { id, v1 } = await deployThenLoseQueue("r");
  const res = await rollback(id);
  assert.equal(res.statusCode, 202, res.body);
  const body = res.json();
  assert.equal(body.targets, 1);
  assert.deepEqual([...body.skipped].sort(), ["r-lost", "r-new"]);
  assert.deepEqual(
    [...body.skippedReasons].sort((a: { host: string }, b: { host: string }) => (a.host < b.host ? -1 : 1)),
    [
      {
        host: "r-lost",
        code: "queue_unsupported",
        reason:
          'version 1 of ruleset "ids", which it would go back to, needs nftables queue support (NFQUEUE: the nft_queue module, CONFIG_NFT_QUEUE) for /chains/forward/rules/0, /chains/input/rules/1, and its agent reported no \'queue\' capability. This rollback leaves it on the version it runs, and a second rollback of this deployment is refused (already rolled back): once its kernel has it (load that module) and its agent was restarted (it probes the kernel when it starts), deploy version 1 of ruleset "ids" to it (palisade deploy ids@1 --hosts r-lost)',
      },
      { host: "r-new", code: "no_previous_version", reason: "ran no version before this deployment" },
    ],
  );
  const targets = await t.db.deploymentTarget.findMany({
    where: { deploymentId: body.id },
    select: { versionId: true, host: { select: { name: true } } },
  });
  assert.deepEqual(targets, [{ versionId: v1, host: { name: "r-kept" } }]);
  const audit = await t.db.auditLog.findFirstOrThrow({ where: { target: `deployment:${body.id}` } });
  assert.deepEqual((audit.details as { hosts: string[] }).hosts, ["r-kept"]);
  assert.deepEqual([...(audit.details as { skipped: string[] }).skipped].sort(), ["r-lost", "r-new"]);
  assert.equal((await t.db.deployment.findUniqueOrThrow({ where: { id } })).status, "rolled_back");
});

// The CLI over HTTP against this app: stdout, stderr and exit status.
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const url = await t.app.listen({ host: "127.0.0.1", port: 0 }).catch(() => serverUrl());
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, PALISADE_URL: url, PALISADE_TOKEN: ROLE_TOKENS.operator },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), 120_000);
  const code = await new Promise<number | null>((resolve) =>
    child.once("close", (c) => (clearTimeout(timer), resolve(c))),
  );
  return { code, stdout, stderr };
}
function serverUrl(): string {
  const a = t.app.server.address();
  assert.ok(a && typeof a === "object");
  return `http://127.0.0.1:${a.port}`;
}

test("palisade deployments rollback: hosts left out for a kernel feature on stderr with the reason, exit 8", async () => {
  const { id, lost } = await deployThenLoseQueue("c");
  const r = await cli(["deployments", "rollback", id]);
  // 8: done for some hosts only (docs/cli.md); c-lost still runs version 2.
  assert.equal(r.code, 8, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`rollback of ${id} to 1 host\\(s\\); skipped: (c-lost, c-new|c-new, c-lost)\n`));
  assert.match(r.stdout, /\n {2}skipped c-new: ran no version before this deployment\n/);
  assert.doesNotMatch(r.stdout, /c-lost:/);
  assert.match(
    r.stderr,
    /^warning: not rolled back on 1 host\(s\), which still run the version being undone: c-lost\n/,
  );
  assert.match(
    r.stderr,
    /\n {2}skipped c-lost: version 1 of ruleset "ids", which it would go back to, needs nftables queue support .* for \/chains\/forward\/rules\/0, \/chains\/input\/rules\/1, and its agent reported no 'queue' capability\. .*deploy version 1 of ruleset "ids" to it \(palisade deploy ids@1 --hosts c-lost\)\n/,
  );
  assert.doesNotMatch(r.stderr, /c-new/);
  assert.doesNotMatch(r.stdout + r.stderr, /no earlier version/);

  // The remedy the reason gives: the rollback itself cannot be asked again; a deploy of the
  // named version to that host, once its agent reports the feature, is taken.
  await t.db.host.update({ where: { id: lost.id }, data: hostWith(["queue"]) });
  const again = await rollback(id);
  assert.equal(again.statusCode, 409, again.body);
  assert.match(errorOf(again).message, /already rolled back/);
  const fix = await deploy(1, ["c-lost"]);
  assert.equal(fix.statusCode, 202, fix.body);
});

test("palisade deployments rollback: hosts skipped only because they ran nothing before exit 0", async () => {
  const [v1, v2] = await versionIds();
  const kept = await t.db.host.create({ data: { name: "z-kept", ...hostWith(["queue"]), appliedVersionId: v1! } });
  await t.db.host.create({ data: { name: "z-new", ...hostWith(["queue"]) } });
  const d = await deploy(2, ["z-kept", "z-new"]);
  assert.equal(d.statusCode, 202, d.body);
  await t.db.host.update({ where: { id: kept.id }, data: { appliedVersionId: v2! } });
  const r = await cli(["deployments", "rollback", d.json().id]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /; skipped: z-new\n {2}skipped z-new: ran no version before this deployment\n/);
  assert.equal(r.stderr, "");
});

test("a rollback is refused, in a rollback's words, when every host that could go back lacks the feature", async () => {
  const [v1, v2] = await versionIds();
  // q-yes ran the queue version, then got the plain one; since then it booted a kernel without nft_queue.
  await t.db.host.update({ where: { name: "q-yes" }, data: { appliedVersionId: v1! } });
  const d = await deploy(2, ["q-yes"]);
  assert.equal(d.statusCode, 202, d.body);
  await t.db.host.update({
    where: { name: "q-yes" },
    data: { appliedVersionId: v2!, ...hostWith() },
  });
  const before = { deployments: await t.db.deployment.count(), audit: await t.db.auditLog.count() };
  const res = await rollback(d.json().id);
  assert.equal(res.statusCode, 409, res.body);
  const e = errorOf(res);
  assert.equal(e.code, "unsupported");
  assert.deepEqual(e.details, [
    {
      path: "",
      code: "queue_unsupported",
      message:
        'host q-yes: kernel without queue, needed by version 1 of ruleset "ids" at /chains/forward/rules/0, /chains/input/rules/1',
    },
  ]);
  assert.match(
    e.message,
    new RegExp(`^deployment ${d.json().id} cannot be rolled back on any host: .*nftables queue support`),
  );
  assert.match(
    e.message,
    /no 'queue' capability\): q-yes\. Nothing was changed\. To roll back, load the nft_queue module/,
  );
  assert.doesNotMatch(e.message, /selector/);
  assert.equal(await t.db.deployment.count(), before.deployments);
  assert.equal(await t.db.auditLog.count(), before.audit);
  assert.notEqual((await t.db.deployment.findUniqueOrThrow({ where: { id: d.json().id } })).status, "rolled_back");
});

const tproxyPolicy = {
  chains: {
    divert: {
      hook: "prerouting",
      table: "mangle",
      policy: "accept",
      rules: [
        { match: { protocol: "tcp", socket: { transparent: true } }, action: { type: "mark", value: 1 } },
        { match: { protocol: "tcp", dport: [80] }, action: { type: "tproxy", port: 3129, address: "127.0.0.1" } },
      ],
    },
  },
};

test("tproxy (action) and socket (match) are gated like queue: an OpenWrt kernel without nft_tproxy / nft_socket", async () => {
  assert.equal((await t.req("POST", "/v1/rulesets", { body: { name: "tp" } })).statusCode, 201);
  const v = await t.req("POST", "/v1/rulesets/tp/versions", { body: { policy: tproxyPolicy } });
  assert.equal(v.statusCode, 201, v.body);
  // What an agent on such a kernel reports: the tproxy and socket probes failed.
  await t.db.host.create({ data: { name: "owrt", ...hostWith() } });
  await t.db.host.create({ data: { name: "owrt-sock", ...hostWith(["socket"]) } });
  await t.db.host.create({ data: { name: "tp-yes", ...hostWith(["socket", "tproxy"]) } });
  const at = (hosts: string[]) =>
    t.req("POST", "/v1/deployments", { as: "operator", body: { ruleset: "tp", version: 1, selector: { hosts } } });
  const res = await at(["owrt", "owrt-sock", "tp-yes"]);
  assert.equal(res.statusCode, 409, res.body);
  const e = errorOf(res);
  assert.equal(e.code, "unsupported");
  // The first feature refused (sorted): socket, lacking on owrt only.
  assert.deepEqual(e.details, [
    {
      path: "/selector",
      code: "socket_unsupported",
      message: "host owrt: kernel without socket, needed by /chains/divert/rules/0",
    },
  ]);
  assert.match(e.message, /needs nftables socket matching .*CONFIG_NFT_SOCKET.*modprobe nft_socket/);
  const tp = errorOf(await at(["owrt-sock", "tp-yes"]));
  assert.deepEqual(tp.details, [
    {
      path: "/selector",
      code: "tproxy_unsupported",
      message: "host owrt-sock: kernel without tproxy, needed by /chains/divert/rules/1",
    },
  ]);
  assert.match(tp.message, /needs nftables transparent proxying .*kmod-nft-tproxy/);
  const ok = await at(["tp-yes"]);
  assert.equal(ok.statusCode, 202, ok.body);
});
