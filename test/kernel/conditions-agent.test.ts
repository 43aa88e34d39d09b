// Operator conditions on real kernels: two agents (`palisade agent` in their own network
// namespaces, role=web and role=db), one API replica (child process on loopback) reached
// through socat in a hub namespace, a deployed policy whose rules test condition "web".
// SYNs are crafted with hping3 from the hub towards closed ports: an answer (RST) means
// the packet got in, none means it was dropped.
//
// Proves: with "web" unset (off) port 80 is dropped and port 81 (`! web`) gets in; a flip
// on through the API opens 80 and closes 81 on exactly the selected host, without a policy
// apply (every rule handle unchanged, only the set's elements change); a flip off closes it
// again; an agent that was away converges to the current value when it reconnects; bad
// input is refused with nothing stored. Prints the API -> kernel flip latency (median).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openFleetLab, type FleetAgent, type FleetLab } from "../support/fleet-lab.ts";
import { waitUntil } from "../support/fleet-processes.ts";
import type { NetnsLab } from "../support/netns.ts";
import type { RestJson } from "../support/rest-json.ts";

let fleet: FleetLab;
let lab: NetnsLab;
let agents: FleetAgent[] = [];
let api: RestJson;

/** True when a SYN to closed port `port` of `a` gets its RST back. */
const reaches = (a: FleetAgent, port: number) => fleet.reaches(a, port);

/** Is the condition set of `a` holding its elements (condition on in the kernel)? */
async function setOn(a: FleetAgent): Promise<boolean | undefined> {
  const r = await lab.nft(a.ns, ["list", "set", "inet", "palisade", "condition_web"], undefined, {
    allowFailure: true,
  });
  if (r.code !== 0) return undefined;
  return /elements = \{ ipv4, ipv6 \}/.test(r.stdout);
}

/** Every rule and chain of the policy table with its handle; set elements left out. */
async function handles(a: FleetAgent): Promise<string> {
  const r = await lab.nft(a.ns, ["-a", "list", "table", "inet", "palisade"]);
  return r.stdout
    .split("\n")
    .filter((l) => /# handle \d+/.test(l) && !/elements/.test(l))
    .join("\n");
}

const policy = {
  description: "condition web opens port 80 and closes the maintenance port 81",
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [
        { comment: "web on", match: { protocol: "tcp", dport: 80, xt: { condition: "web" } }, action: "accept" },
        { comment: "web closed", match: { protocol: "tcp", dport: 80 }, action: "drop" },
        {
          comment: "web off",
          match: { protocol: "tcp", dport: 81, xt: { condition: { not: "web" } } },
          action: "accept",
        },
        { comment: "maintenance closed", match: { protocol: "tcp", dport: 81 }, action: "drop" },
      ],
    },
  },
};

before(async () => {
  fleet = await openFleetLab({
    name: "cond",
    apiAddr: "10.215.0.1",
    agents: [
      { name: "web-0", labels: { role: "web" } },
      { name: "db-0", labels: { role: "db" } },
    ],
  });
  ({ lab, agents, api } = fleet);
  assert.equal((await api("POST", "/v1/rulesets", { name: "cond" })).status, 201);
  const push = await api("POST", "/v1/rulesets/cond/versions", { policy });
  assert.equal(push.status, 201, JSON.stringify(push.json));
  const dep = await api("POST", "/v1/deployments", {
    ruleset: "cond",
    version: push.json.version,
    selector: { hosts: agents.map((a) => a.name) },
    strategy: { canary: 0, batchSize: 5, confirmTimeoutSeconds: 10 },
  });
  assert.equal(dep.status, 202, JSON.stringify(dep.json));
  await waitUntil(
    async () => (await api("GET", `/v1/deployments/${dep.json.id}`)).json.status === "succeeded",
    90_000,
    `deployment succeeded\n${agents.map((a) => `${a.name}: ${a.proc?.output().slice(-1500)}`).join("\n")}`,
  );
});

after(async () => {
  await fleet?.close();
});

test("a condition nobody set is off: port 80 is dropped, the `! web` port gets in", async () => {
  for (const a of agents) {
    assert.equal(await setOn(a), false, `${a.name} has the empty condition set`);
    assert.equal(await reaches(a, 80), false, `${a.name} drops port 80`);
    assert.ok(await reaches(a, 81), `${a.name} lets port 81 in`);
  }
});

test("bad input is refused with a clear error; nothing stored, nothing in any kernel", async () => {
  const bad = await api("PUT", "/v1/conditions/web-site", { on: true });
  assert.equal(bad.status, 400, JSON.stringify(bad.json));
  assert.match(JSON.stringify(bad.json), /condition names: 1-27 letters, digits or '_'/);
  const unknown = await api("PUT", "/v1/conditions/web", { on: true, selector: { hosts: ["web-0", "nope"] } });
  assert.equal(unknown.status, 400, JSON.stringify(unknown.json));
  assert.deepEqual(
    unknown.json.error.details.map((d: { path: string; code: string }) => [d.path, d.code]),
    [["/selector/hosts/1", "unknown_host"]],
  );
  assert.equal((await api("GET", "/v1/conditions")).json.items.length, 0);
  for (const a of agents) assert.equal(await setOn(a), false);
});

test("flip on by label opens port 80 on exactly that host, with no policy apply; flip off closes it", async () => {
  const [web0, db0] = agents as [FleetAgent, FleetAgent];
  const before = await handles(web0);
  assert.match(before, /meta nfproto @condition_web accept comment "web on"/);
  const latencies: number[] = [];
  const puts: number[] = [];
  for (let i = 0; i < 5; i++) {
    for (const on of [true, false]) {
      const t0 = performance.now();
      const r = await api("PUT", "/v1/conditions/web", { on, selector: { labels: { role: "web" } } });
      puts.push(performance.now() - t0);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.hosts, 1);
      assert.deepEqual(r.json.unsupported, []);
      // Bounded poll of the kernel every 5 ms (each poll is one `nft list set`, a few ms itself).
      await waitUntil(async () => (await setOn(web0)) === on, 30_000, `web-0's set is ${on ? "on" : "off"}`, 5);
      latencies.push(performance.now() - t0);
      if (i === 0) {
        assert.equal(await reaches(web0, 80), on, `web-0 port 80 with web ${on ? "on" : "off"}`);
        assert.equal(await reaches(web0, 81), !on, `web-0 port 81 with web ${on ? "on" : "off"}`);
        assert.equal(await reaches(db0, 80), false, "db-0 is not selected: port 80 stays closed");
        assert.equal(await setOn(db0), false);
      }
      // No rule, chain or set was re-created: every handle is where it was.
      assert.equal(await handles(web0), before, "the flip did not re-apply the ruleset");
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  process.stdout.write(
    `# conditions flip latency API PUT -> kernel set (incl. one nft list poll), ${latencies.length} flips: median ${median(latencies).toFixed(1)} ms (min ${Math.min(...latencies).toFixed(1)}, max ${Math.max(...latencies).toFixed(1)}); of which the PUT's answer: median ${median(puts).toFixed(1)} ms\n`,
  );
  const audit = (await api("GET", "/v1/audit?limit=50")).json.items.map((i: { action: string }) => i.action);
  assert.ok(audit.includes("condition.on") && audit.includes("condition.off"), audit.join(","));
});

test("an agent that was away converges to the current value when it reconnects", async () => {
  const db0 = agents[1]!;
  await db0.proc!.stop();
  await waitUntil(async () => !(await fleet.connected(db0.name)), 30_000, "db-0 disconnected");
  const r = await api("PUT", "/v1/conditions/web", { on: true });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.hosts, 2);
  assert.equal(r.json.delivered, 1, "only web-0 is online");
  assert.equal(await setOn(db0), false, "the kernel is unchanged while the agent is away");
  fleet.startAgent(db0);
  await waitUntil(
    async () => (await setOn(db0)) === true,
    60_000,
    `db-0 converges\n${db0.proc?.output().slice(-2000)}`,
  );
  assert.ok(await reaches(db0, 80), "db-0 lets port 80 in");
  assert.equal(await reaches(db0, 81), false, "db-0 closes port 81");
});

test("a new policy version keeps the value: re-applied sets keep their elements, a new condition set gets its value", async () => {
  const web0 = agents[0]!;
  // web is on everywhere now (the previous test); maint was set on before any policy tested it.
  const m = await api("PUT", "/v1/conditions/maint", { on: true, selector: { hosts: ["web-0"] } });
  assert.equal(m.status, 200, JSON.stringify(m.json));
  assert.equal(await setOn(web0), true);
  const v2 = structuredClone(policy) as typeof policy;
  v2.description = "v2: a maintenance condition as well";
  v2.chains.input.rules.unshift({
    comment: "maint",
    match: { protocol: "tcp", dport: 82, xt: { condition: "maint" } },
    action: "drop",
  } as never);
  const push = await api("POST", "/v1/rulesets/cond/versions", { policy: v2 });
  assert.equal(push.status, 201, JSON.stringify(push.json));
  const dep = await api("POST", "/v1/deployments", {
    ruleset: "cond",
    version: push.json.version,
    selector: { hosts: ["web-0"] },
    strategy: { canary: 0, batchSize: 5, confirmTimeoutSeconds: 10 },
  });
  assert.equal(dep.status, 202, JSON.stringify(dep.json));
  await waitUntil(
    async () => (await api("GET", `/v1/deployments/${dep.json.id}`)).json.status === "succeeded",
    90_000,
    `v2 deployed\n${web0.proc?.output().slice(-1500)}`,
  );
  assert.match(await handles(web0), /condition_maint/);
  assert.equal(await setOn(web0), true, "web stays on through the apply");
  const maint = await lab.nft(web0.ns, ["list", "set", "inet", "palisade", "condition_maint"]);
  assert.match(maint.stdout, /elements = \{ ipv4, ipv6 \}/, "the new condition set got its value");
  assert.ok(await reaches(web0, 80), "port 80 still open");
  assert.equal(await reaches(web0, 82), false, "maint drops port 82");
});
