// The fleet on real kernels: four agents (`palisade agent` run inside their own network
// namespaces, so their API traffic passes their own nftables), two API replicas
// (`palisade server` child processes on loopback) and, inside a hub namespace, the API
// address 10.213.0.1: socat there forwards :50051 and :50052 over unix sockets to a small
// balancer that prefers replica A or replica B respectively and falls back to the other.
// Traffic stays on loopback and inside the namespaces this test creates.
//
// Proves: a deployment by label reaches exactly the selected hosts' kernels (across both
// replicas); a hand edit is reported as drift and restored; an agent offline during a
// deployment converges when it returns; SIGKILL of the replica running a rollout still
// completes it; a version that cuts the agent off from the API (failsafe off) is rolled
// back by the agent itself within the confirm window and the deployment records it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { publishToHost } from "../../src/api/host-bus.ts";
import { TEST_REDIS_URL } from "../support/db.ts";
import { openFleetLab, type FleetAgent, type FleetLab } from "../support/fleet-lab.ts";
import { BIN, killReplica, waitUntil } from "../support/fleet-processes.ts";
import type { NetnsLab } from "../support/netns.ts";
import type { RestJson } from "../support/rest-json.ts";

const API_ADDR = "10.213.0.1";

let fleet: FleetLab;
let lab: NetnsLab;
let agents: FleetAgent[] = [];
let api: RestJson;
const versions: Record<string, number> = {};

/** The CLI as a child process. Never spawnSync here: the balancer lives in this event loop. */
function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, PALISADE_URL: fleet.live()[0]!.url, PALISADE_TOKEN: fleet.admin },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), 180_000);
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
}

const marker = (v: string) => `palisade-${v}-marker`;
const policy = (v: string, port: number) => ({
  description: `fleet ${v}`,
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [{ comment: marker(v), match: { protocol: "tcp", dport: port }, action: "accept" }],
    },
  },
});

async function kernel(a: FleetAgent): Promise<string> {
  const r = await lab.nft(a.ns, ["list", "table", "inet", "palisade"], undefined, { allowFailure: true });
  return r.code === 0 ? r.stdout : "";
}

async function host(name: string) {
  return (await api("GET", `/v1/hosts/${name}`)).json;
}

async function deployment(depId: string) {
  return (await api("GET", `/v1/deployments/${depId}`)).json as {
    status: string;
    targets: { host: string; status: string; error: string | null }[];
  };
}

before(async () => {
  // Two replicas: entry :50051 prefers A, :50052 prefers B; the agents sit on both.
  fleet = await openFleetLab({
    name: "fleet",
    apiAddr: API_ADDR,
    replicas: 2,
    env: { PALISADE_DEPLOY_LOCK_MS: "4000" },
    agents: [
      { name: "web-0", entry: 0, labels: { env: "prod", role: "web" } },
      { name: "web-1", entry: 1, labels: { env: "prod", role: "web" } },
      { name: "web-2", entry: 1, labels: { env: "prod", role: "web" } },
      { name: "dev-0", entry: 0, labels: { env: "dev", role: "web" } },
    ],
    agentFlags: ["--drift-interval", "30"],
    maxLifetimeMs: 20 * 60_000,
    apiTimeoutMs: 15_000,
  });
  ({ lab, agents, api } = fleet);
});

after(async () => {
  await fleet?.close();
});

test("a deployment by label (pushed and watched with the CLI) reaches exactly the selected kernels", async () => {
  const dir = await mkdtemp(join(tmpdir(), "palisade-fleet-policy-"));
  try {
    for (const [v, port] of [
      ["v1", 2201],
      ["v2", 2202],
      ["v3", 2203],
    ] as const) {
      const file = join(dir, `${v}.json`);
      await import("node:fs/promises").then((fs) => fs.writeFile(file, JSON.stringify(policy(v, port))));
      const r = await cli(["push", file, "--ruleset", "edge", "--message", v]);
      assert.equal(r.code, 0, r.out);
      versions[v] = Number(/edge@(\d+)/.exec(r.out)![1]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const r = await cli([
    "deploy",
    `edge@${versions.v1}`,
    "--labels",
    "env=prod",
    "--canary",
    "1",
    "--batch-size",
    "2",
    "--confirm-timeout",
    "10",
    "--wait",
    "--timeout",
    "120",
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /succeeded: 3\/3 done/);
  for (const a of agents) {
    const k = await kernel(a);
    if (a.labels.env === "prod") assert.match(k, new RegExp(marker("v1")), `${a.name} kernel:\n${k}`);
    else assert.equal(k, "", `${a.name} is not selected and must have no palisade table`);
  }
  // The agents sit on both replicas; whichever ran the rollout reached all of them.
  assert.deepEqual((await host("web-1")).appliedVersion, { ruleset: "edge", version: versions.v1 });
});

test("a hand edit of the kernel rules is reported as drift and restored", async () => {
  const a = agents[0]!;
  const hostId = (await host(a.name)).id as string;
  await lab.nft(a.ns, [
    "add",
    "rule",
    "inet",
    "palisade",
    "input",
    "tcp",
    "dport",
    "9999",
    "drop",
    "comment",
    '"hand edit"',
  ]);
  assert.match(await kernel(a), /hand edit/);
  // Ask for a check the way the API does (CheckDrift through the host's channel, to
  // whichever replica holds the stream). The agents' periodic check (every 30 s) runs
  // beside the rollouts too; either check reports the drift and restores it.
  const redis = new Redis(TEST_REDIS_URL);
  try {
    assert.equal(
      await publishToHost(redis, hostId, { type: "check_drift" }),
      1,
      "exactly one replica holds web-0's stream",
    );
  } finally {
    redis.disconnect();
  }
  const h = await waitUntil(
    async () => {
      const h = await host(a.name);
      return h.driftDetails?.drifted && h.driftDetails?.restored ? h : undefined;
    },
    60_000,
    "drift report",
  );
  assert.ok(String(h.driftDetails.details).length > 0);
  const k = await kernel(a);
  assert.doesNotMatch(k, /hand edit/);
  assert.match(k, new RegExp(marker("v1")));
});

test("an agent offline during a deployment converges when it returns", async () => {
  const a = agents[2]!; // web-2
  await a.proc!.stop();
  await waitUntil(async () => (await host(a.name)).connection === "disconnected", 60_000, "web-2 disconnected");
  const res = await api("POST", "/v1/deployments", {
    ruleset: "edge",
    version: versions.v2,
    selector: { labels: { env: "prod" } },
    strategy: { canary: 0, batchSize: 5, confirmTimeoutSeconds: 10 },
  });
  assert.equal(res.status, 202, JSON.stringify(res.json));
  const depId = res.json.id as string;
  await waitUntil(
    async () => (await deployment(depId)).targets.filter((t) => t.status === "applied").length === 2,
    60_000,
    "online hosts applied",
  );
  assert.equal((await deployment(depId)).status, "running");
  assert.match(await kernel(a), new RegExp(marker("v1")), "the offline host still runs v1");
  fleet.startAgent(a); // same state dir: no token needed
  await waitUntil(
    async () => (await deployment(depId)).status === "succeeded",
    90_000,
    `deployment ${depId} succeeded\n${a.proc?.output().slice(-2000)}`,
  );
  assert.match(await kernel(a), new RegExp(marker("v2")));
});

test("SIGKILL of the replica running a rollout: the other replica completes it", async () => {
  const held = agents[1]!; // web-1: batch 1; stopped so the rollout waits there
  process.kill(held.proc!.pid!, "SIGSTOP");
  let stopped = true;
  try {
    const res = await api("POST", "/v1/deployments", {
      ruleset: "edge",
      version: versions.v3,
      selector: { labels: { env: "prod" } },
      strategy: { canary: 1, batchSize: 1, confirmTimeoutSeconds: 10 },
    });
    assert.equal(res.status, 202);
    const depId = res.json.id as string;
    await waitUntil(
      async () => (await deployment(depId)).targets.find((t) => t.host === "web-1")?.status === "applying",
      60_000,
      "rollout waiting on web-1",
    );
    const runner = fleet.replicas.find((r) =>
      r.logs().some((l) => l.msg === "rollout started" && l.deploymentId === depId),
    );
    assert.ok(runner, "one replica logged the rollout start");
    await killReplica(runner);
    process.kill(held.proc!.pid!, "SIGCONT");
    stopped = false;
    await waitUntil(
      async () => (await deployment(depId)).status === "succeeded",
      150_000,
      `deployment ${depId} completed by the survivor\n${fleet
        .live()
        .map((r) => r.out().slice(-3000))
        .join("\n")}`,
      500,
    );
    const survivor = fleet.live()[0]!;
    assert.ok(
      survivor
        .logs()
        .some((l) => (l.msg === "rollout resumed" || l.msg === "rollout started") && l.deploymentId === depId),
    );
    for (const a of agents.filter((x) => x.labels.env === "prod"))
      assert.match(await kernel(a), new RegExp(marker("v3")), a.name);
    // Bring the killed replica back for what follows.
    await fleet.restartReplica(runner);
  } finally {
    if (stopped) process.kill(held.proc!.pid!, "SIGCONT");
  }
});

test("a version that cuts the agent off from the API is rolled back by the agent itself", async () => {
  const a = agents[0]!; // web-0
  const push = await api("POST", "/v1/rulesets/edge/versions", {
    policy: {
      description: "locks the agent out",
      failsafe: { enabled: false, ports: [50051] },
      chains: {
        input: {
          hook: "input",
          policy: "accept",
          rules: [{ comment: marker("v4"), match: { protocol: "tcp", dport: 2204 }, action: "accept" }],
        },
        output: {
          hook: "output",
          policy: "accept",
          rules: [{ comment: "drop the API", match: { daddr: [API_ADDR] }, action: "drop" }],
        },
      },
    },
  });
  assert.equal(push.status, 201, JSON.stringify(push.json));
  const res = await api("POST", "/v1/deployments", {
    ruleset: "edge",
    version: push.json.version,
    selector: { hosts: [a.name] },
    strategy: { canary: 0, confirmTimeoutSeconds: 5, retries: 0 },
  });
  assert.equal(res.status, 202, JSON.stringify(res.json));
  const depId = res.json.id as string;
  const started = Date.now();
  // The new rules land (the agent applied them) ...
  await waitUntil(async () => (await kernel(a)).includes(marker("v4")), 30_000, "v4 in web-0's kernel");
  // ... then, with no Confirm able to reach it, the agent restores v3 by itself.
  await waitUntil(
    async () => {
      const k = await kernel(a);
      return k.includes(marker("v3")) && !k.includes(marker("v4"));
    },
    30_000,
    "web-0 restored v3 by itself",
  );
  assert.ok(Date.now() - started < 30_000);
  const d = await waitUntil(
    async () => {
      const d = await deployment(depId);
      return d.targets[0]?.status === "rolled_back" ? d : undefined;
    },
    120_000,
    `target rolled_back\n${a.proc?.output().slice(-3000)}`,
  );
  assert.ok(d.targets[0]!.error);
  // The agent's "applied" may arrive late (TCP retransmits once the old rules are back);
  // whatever order, the deployment ends failed with the host rolled back.
  assert.equal(d.status, "failed");
  await waitUntil(async () => (await host(a.name)).connection === "connected", 60_000, "web-0 back in contact");
  assert.deepEqual((await host(a.name)).appliedVersion, { ruleset: "edge", version: versions.v3 });
});
