// geoip on a real kernel, end to end: an API replica (child process, real PostgreSQL and
// Redis), one agent (`palisade agent` in its own network namespace) reached through socat in
// a hub namespace, a deployed policy whose rules test countries, and the country data loaded
// with the real CLI (`palisade geoip update --file`). SYNs are crafted with hping3 from the
// hub (which holds one address inside the test's "CN" range and one inside "DE") towards
// closed ports of the agent: an answer (RST) means the packet got in, none means it was dropped.
//
// Proves: a deploy before the countries have data is refused; with ranges that hold neither
// source the CN drop matches nobody and `! DE` everybody on 81; after the
// load a source in CN's range is dropped on port 80 and another source is not, and port 81
// (`! DE` dropped) lets only the DE source in; a file with a bad line is refused with the
// line named and nothing stored or sent; a second load that moves the CN range changes the
// verdict for that source without a redeploy (every rule handle unchanged, only elements);
// after a reboot (the agent killed, its table deleted) with the API down, the restarted agent
// restores the policy and refills the country sets from its state file (geoip.json), so the
// verdicts hold, and on reconnect it gets only the deltas since the file's revisions; a
// truncated state file is ignored with a warning, and the countries come whole from the API.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { openFleetLab, type FleetAgent, type FleetLab } from "../support/fleet-lab.ts";
import { BIN, killReplica, waitUntil } from "../support/fleet-processes.ts";
import type { NetnsLab } from "../support/netns.ts";
import type { RestJson } from "../support/rest-json.ts";

const run = promisify(execFile);
const CN_SOURCE = "198.51.100.7";
const DE_SOURCE = "203.0.113.9";

let fleet: FleetLab;
let lab: NetnsLab;
let agent: FleetAgent;
let api: RestJson;
let dir: string;

/** The real CLI: exit code, stdout, stderr. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args, "--server", fleet.replicas[0]!.url, "--token", fleet.admin], {
      timeout: 120_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

/** True when a SYN from `source` (an address of the hub) to closed port `port` gets its RST back. */
const reaches = (source: string, port: number) => fleet.reaches(agent, port, source);

async function setText(name: string): Promise<string> {
  return (await lab.nft(agent.ns, ["list", "set", "inet", "palisade", name])).stdout;
}

async function handles(): Promise<string> {
  const r = await lab.nft(agent.ns, ["-a", "list", "table", "inet", "palisade"]);
  return r.stdout
    .split("\n")
    .filter((l) => /# handle \d+/.test(l) && !/elements|[0-9a-f:.]+-[0-9a-f:.]+,?$/.test(l))
    .join("\n");
}

/** The agent's state file: each country's revision (undefined while it is not there). */
async function fileRevisions(): Promise<Record<string, number> | undefined> {
  const text = await readFile(join(agent.stateDir, "geoip.json"), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  const f = JSON.parse(text) as { countries: Record<string, { revision: number }> };
  return Object.fromEntries(Object.entries(f.countries).map(([c, h]) => [c, h.revision]));
}

/** The running agent's JSON log lines. */
const logLines = () =>
  (agent.proc?.output() ?? "")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The running agent's "geoip data received" log lines: what the API sent it. */
function received(): { country: string; revision: number; full?: true; fromRevision?: number }[] {
  return logLines()
    .filter((l) => l.msg === "geoip data received")
    .flatMap((l) => l.countries as ReturnType<typeof received>);
}

const policy = {
  description: "geoip: CN dropped on port 80, only DE on port 81",
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        {
          comment: "no CN on 80",
          match: { protocol: "tcp", dport: 80, xt: { geoip: { source: ["CN"] } } },
          action: "drop",
        },
        {
          comment: "only DE on 81",
          match: { protocol: "tcp", dport: 81, xt: { geoip: { source: ["DE"], invert: true } } },
          action: "drop",
        },
      ],
    },
  },
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "palisade-geo-"));
  fleet = await openFleetLab({
    name: "geo",
    apiAddr: "10.216.0.1",
    sources: [CN_SOURCE, DE_SOURCE],
    agents: [{ name: "edge-0", labels: { role: "edge" } }],
  });
  ({ lab, api } = fleet);
  agent = fleet.agents[0]!;
  assert.equal((await api("POST", "/v1/rulesets", { name: "geo" })).status, 201);
  const push = await api("POST", "/v1/rulesets/geo/versions", { policy });
  assert.equal(push.status, 201, JSON.stringify(push.json));
  const deploy = { ruleset: "geo", version: push.json.version, selector: { hosts: ["edge-0"] } };
  // No country data yet: empty sets would make `! DE` drop everybody, so the deploy is refused.
  const early = await api("POST", "/v1/deployments", deploy);
  assert.equal(early.status, 409, JSON.stringify(early.json));
  assert.deepEqual(
    early.json.error.details.map((d: { code: string; message: string }) => `${d.code} ${d.message}`),
    ["geoip_no_data country CN has no ranges", "geoip_no_data country DE has no ranges"],
  );
  // Ranges that hold neither test source (revision 1), in both families: a family with no
  // ranges is refused too (the rules test both).
  const v0 = await api("POST", "/v1/geoip", {
    csv: "100.64.0.0,100.64.0.255,CN\n100.65.0.0,100.65.0.255,DE\n2001:db8:2::,2001:db8:2::ffff,DE\n2001:db8:ff::,2001:db8:ff::ff,CN",
    source: "v0.csv",
  });
  assert.equal(v0.status, 200, JSON.stringify(v0.json));
  const dep = await api("POST", "/v1/deployments", {
    ruleset: "geo",
    version: push.json.version,
    selector: { hosts: ["edge-0"] },
    strategy: { canary: 0, batchSize: 5, confirmTimeoutSeconds: 10 },
  });
  assert.equal(dep.status, 202, JSON.stringify(dep.json));
  await waitUntil(
    async () => (await api("GET", `/v1/deployments/${dep.json.id}`)).json.status === "succeeded",
    90_000,
    `deployment succeeded\n${agent.proc?.output().slice(-1500)}`,
  );
});

after(async () => {
  await fleet?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("with ranges that hold neither source: the CN drop matches nobody, the `! DE` drop everybody", async () => {
  await waitUntil(async () => /100\.64\.0\.0\/24/.test(await setText("geo_v4_CN")), 30_000, "CN's first ranges");
  assert.doesNotMatch(await setText("geo_v4_CN"), /198\.51\.100/);
  assert.ok(await reaches(CN_SOURCE, 80));
  assert.ok(await reaches(DE_SOURCE, 80));
  assert.equal(await reaches(DE_SOURCE, 81), false);
});

test("after `geoip update --file`, the CN source is dropped on 80 and the other is not; only DE gets into 81", async () => {
  const csv = join(dir, "v1.csv");
  await writeFile(
    csv,
    [
      "198.51.100.0,198.51.100.127,CN",
      "198.51.100.128,198.51.100.255,CN", // adjacent: one interval in the kernel
      "203.0.113.0,203.0.113.255,DE",
      "2001:db8:2::,2001:db8:2::ffff,DE", // DE has IPv6 ranges too: the negated rule tests both families
      "2001:db8:1::,2001:db8:1::ffff,CN",
      "192.0.2.0,192.0.2.255,FR", // a country no rule tests: never sent to this agent
    ].join("\n"),
  );
  const r = await cli(["geoip", "update", "--file", csv]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /reading .*v1\.csv/);
  assert.match(r.stdout, /geoip revision 2 from v1\.csv: 6 ranges, 3 countries, 5 intervals/);
  await waitUntil(async () => /198\.51\.100\.0\/24/.test(await setText("geo_v4_CN")), 30_000, "CN's IPv4 set filled");
  assert.match(await setText("geo_v6_CN"), /2001:db8:1::-2001:db8:1::ffff|2001:db8:1::\/112/);
  assert.match(await setText("geo_v4_DE"), /203\.0\.113\.0\/24/);
  const sets = (await lab.nft(agent.ns, ["list", "sets", "inet"])).stdout;
  assert.doesNotMatch(sets, /geo_v4_FR/);
  assert.equal(await reaches(CN_SOURCE, 80), false, "the CN source is dropped on 80");
  assert.ok(await reaches(DE_SOURCE, 80), "the DE source is not");
  assert.ok(await reaches(DE_SOURCE, 81), "the DE source gets into 81");
  assert.equal(await reaches(CN_SOURCE, 81), false, "the CN source does not");
});

test("a file with a bad line is refused whole, the line named; nothing stored, nothing sent", async () => {
  const csv = join(dir, "bad.csv");
  await writeFile(
    csv,
    ["198.51.100.0,198.51.100.255,CN", "203.0.113.0,203.0.113.255,DE", "10.0.0.9,10.0.0.1,FR"].join("\n"),
  );
  const r = await cli(["geoip", "update", "--file", csv]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /line 3: start is after end/);
  const g = await api("GET", "/v1/geoip");
  assert.equal(g.json.dataset.revision, 2);
  assert.match(await setText("geo_v4_CN"), /198\.51\.100\.0\/24/);
});

test("a second load that moves CN's range changes the verdict without a redeploy", async () => {
  const before = await handles();
  const hostBefore = (await api("GET", "/v1/hosts/edge-0")).json;
  const csv = join(dir, "v2.csv");
  await writeFile(
    csv,
    [
      "198.51.100.0,198.51.100.5,CN", // .7 is no longer CN
      "203.0.113.0,203.0.113.255,DE",
      "2001:db8:2::,2001:db8:2::ffff,DE",
      "2001:db8:1::,2001:db8:1::ffff,CN",
      "192.0.2.0,192.0.2.255,FR",
    ].join("\n"),
  );
  const r = await cli(["geoip", "update", "--file", csv]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /geoip revision 3 .* 1 countries changed \(CN\)/);
  await waitUntil(
    async () => /198\.51\.100\.0-198\.51\.100\.5/.test(await setText("geo_v4_CN")),
    30_000,
    "CN's set changed",
  );
  assert.ok(await reaches(CN_SOURCE, 80), "the former CN source now gets in");
  assert.equal(await handles(), before, "no rule or set was re-created: no apply ran");
  const hostAfter = (await api("GET", "/v1/hosts/edge-0")).json;
  assert.deepEqual(hostAfter.appliedVersion ?? hostAfter.applied, hostBefore.appliedVersion ?? hostBefore.applied);
  const g = await api("GET", "/v1/geoip");
  assert.deepEqual(
    g.json.countries.map((c: { country: string; revision: number }) => [c.country, c.revision]),
    [
      ["CN", 3],
      ["DE", 2],
      ["FR", 2],
    ],
  );
  const audit = (await api("GET", "/v1/audit?limit=20")).json.items.map((i: { action: string }) => i.action);
  assert.equal(audit.filter((a: string) => a === "geoip.update").length, 3);
});

test("after a reboot with the API down, the country sets are refilled from the state file; on reconnect only deltas come", async () => {
  // CN holds the CN source again (revision 4), and the state file has it.
  const v4 = await api("POST", "/v1/geoip", {
    csv: [
      "198.51.100.0,198.51.100.255,CN",
      "203.0.113.0,203.0.113.255,DE",
      "2001:db8:2::,2001:db8:2::ffff,DE",
      "2001:db8:1::,2001:db8:1::ffff,CN",
      "192.0.2.0,192.0.2.255,FR",
    ].join("\n"),
    source: "v4.csv",
  });
  assert.equal(v4.status, 200, JSON.stringify(v4.json));
  assert.deepEqual([v4.json.revision, v4.json.changed], [4, ["CN"]]);
  await waitUntil(
    async () => /198\.51\.100\.0\/24/.test(await setText("geo_v4_CN")),
    30_000,
    "CN's set has revision 4",
  );
  await waitUntil(async () => (await fileRevisions())?.CN === 4, 30_000, "the state file has CN at revision 4");
  assert.deepEqual(await fileRevisions(), { CN: 4, DE: 2 }, "only the countries the policy tests");
  assert.equal((await stat(join(agent.stateDir, "geoip.json"))).mode & 0o777, 0o600);
  assert.deepEqual(
    (await readdir(agent.stateDir)).filter((f) => f.includes("geoip")),
    ["geoip.json"],
    "no temp file left",
  );

  // The host goes down; meanwhile CN gets another range (revision 5); then the API goes down too.
  await agent.proc!.stop();
  const v5 = await api("POST", "/v1/geoip", {
    csv: [
      "198.51.100.0,198.51.100.255,CN",
      "198.51.103.0,198.51.103.255,CN",
      "203.0.113.0,203.0.113.255,DE",
      "2001:db8:2::,2001:db8:2::ffff,DE",
      "2001:db8:1::,2001:db8:1::ffff,CN",
      "192.0.2.0,192.0.2.255,FR",
    ].join("\n"),
    source: "v5.csv",
  });
  assert.equal(v5.status, 200, JSON.stringify(v5.json));
  assert.equal(v5.json.revision, 5);
  await killReplica(fleet.replicas[0]!);
  // The reboot: the kernel comes up without Palisade's table.
  await lab.nft(agent.ns, ["delete", "table", "inet", "palisade"]);
  assert.doesNotMatch((await lab.nft(agent.ns, ["list", "tables"])).stdout, /palisade/);

  fleet.startAgent(agent);
  await waitUntil(
    async () => /198\.51\.100\.0\/24/.test(await setText("geo_v4_CN").catch(() => "")),
    60_000,
    `CN's set refilled from the state file\n${agent.proc?.output().slice(-3000)}`,
  );
  const out = agent.proc!.output();
  assert.match(out, /applying the last confirmed version before connecting/);
  const restored = logLines().find((l) => l.msg === "geoip data read from the state file");
  assert.deepEqual(restored?.countries, { CN: 4, DE: 2 }, out.slice(-3000));
  assert.match(await setText("geo_v4_DE"), /203\.0\.113\.0\/24/);
  assert.match(await setText("geo_v6_CN"), /2001:db8:1::-2001:db8:1::ffff|2001:db8:1::\/112/);
  assert.doesNotMatch(await setText("geo_v4_CN"), /198\.51\.103/, "revision 4, from the file: the API was not reached");
  assert.equal(fleet.live().length, 0);
  assert.equal(await reaches(CN_SOURCE, 80), false, "the CN source is still dropped on 80");
  assert.ok(await reaches(DE_SOURCE, 80), "the DE source is not");
  assert.ok(await reaches(DE_SOURCE, 81), "the negated DE rule lets the DE source into 81");
  assert.equal(await reaches(CN_SOURCE, 81), false, "and nobody else");

  // The API is back: the agent asks from the file's revisions and gets CN's delta 4 -> 5 only.
  await fleet.restartReplica(fleet.replicas[0]!);
  await waitUntil(
    async () => /198\.51\.103\.0\/24/.test(await setText("geo_v4_CN")),
    120_000,
    `CN's revision 5 after reconnecting\n${agent.proc?.output().slice(-3000)}`,
  );
  assert.deepEqual(received(), [{ country: "CN", revision: 5, fromRevision: 4 }]);
  await waitUntil(async () => (await fileRevisions())?.CN === 5, 30_000, "the state file has CN at revision 5");
  assert.equal(await reaches(CN_SOURCE, 80), false);
});

test("a truncated state file is ignored with a warning, no crash; the countries come whole from the API", async () => {
  await agent.proc!.stop();
  const file = join(agent.stateDir, "geoip.json");
  const good = await readFile(file, "utf8");
  await writeFile(file, good.slice(0, Math.floor(good.length / 2)), { mode: 0o600 });
  fleet.startAgent(agent);
  // Not the host's connection status: it still reads "connected" until the API notices the
  // stopped agent's stream is gone (a fresh-clone run read it 45 ms after the restart). The
  // warning comes from the new process, at its start; the countries below prove the reconnect.
  const warn = await waitUntil(
    async () => logLines().find((l) => /geoip state file/.test(String(l.msg))),
    90_000,
    `the warning about the state file\n${agent.proc?.output().slice(-3000)}`,
  );
  assert.equal(warn.level, 40);
  assert.equal(warn.file, file);
  assert.match(String(warn.msg), /corrupt or truncated; ignored/);
  assert.match(String(warn.err), /not JSON/);
  // One message per country (CN's, then DE's): wait for both before reading what came.
  await waitUntil(
    async () => ["CN", "DE"].every((country) => received().some((c) => c.country === country && c.full)),
    60_000,
    `CN and DE sent whole\n${agent.proc?.output().slice(-3000)}`,
  );
  assert.deepEqual(
    received()
      .map((c) => [c.country, c.revision, c.full ?? false])
      .sort(),
    [
      ["CN", 5, true],
      ["DE", 2, true],
    ],
  );
  await waitUntil(async () => (await fileRevisions())?.CN === 5, 30_000, "the state file is whole again");
  assert.deepEqual(await fileRevisions(), { CN: 5, DE: 2 });
  assert.match(await setText("geo_v4_CN"), /198\.51\.103\.0\/24/);
  assert.equal(await reaches(CN_SOURCE, 80), false);
  assert.ok(await reaches(DE_SOURCE, 81));
});
