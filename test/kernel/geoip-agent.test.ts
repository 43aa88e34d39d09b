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
// verdict for that source without a redeploy (every rule handle unchanged, only elements).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { openFleetLab, type FleetAgent, type FleetLab } from "../support/fleet-lab.ts";
import { BIN, waitUntil } from "../support/fleet-processes.ts";
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
  // Ranges that hold neither test source (revision 1).
  const v0 = await api("POST", "/v1/geoip", {
    csv: "100.64.0.0,100.64.0.255,CN\n100.65.0.0,100.65.0.255,DE",
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
      "2001:db8:1::,2001:db8:1::ffff,CN",
      "192.0.2.0,192.0.2.255,FR", // a country no rule tests: never sent to this agent
    ].join("\n"),
  );
  const r = await cli(["geoip", "update", "--file", csv]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /reading .*v1\.csv/);
  assert.match(r.stdout, /geoip revision 2 from v1\.csv: 5 ranges, 3 countries, 4 intervals/);
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
