// An agent killed (SIGKILL of the real `palisade agent` process) inside the commit-confirm
// window, on a real kernel with a real API (`palisade server` child process): the agent in
// its own network namespace reaches the API at 10.214.0.1 in a hub namespace, where socat
// forwards to a unix-socket balancer in this process and on to the replica on loopback.
//
// After the restart the kernel, the agent's applied.json, the host's applied version and
// the deployment target must all agree: the unconfirmed version is gone (the agent rolled
// it back before it connected) and the target is rolled_back with the reason.
//   - plain version: the Confirm is held back by dropping the agent's uplink in the hub
//     (a nft table there, never the agent's) until the agent logged that it waits;
//   - lockout version (failsafe off, its output chain drops the API; drift checks off):
//     the agent cuts itself off, so no Confirm can come at all.
// Everything waits on logs, kernel listings and API state; nothing on guessed sleeps.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { publishToHost } from "../../src/api/host-bus.ts";
import { TEST_REDIS_URL } from "../support/db.ts";
import { ENTRY_PORT, openFleetLab, type FleetAgent, type FleetLab } from "../support/fleet-lab.ts";
import { waitUntil } from "../support/fleet-processes.ts";
import type { NetnsLab } from "../support/netns.ts";
import type { RestJson } from "../support/rest-json.ts";

const API_ADDR = "10.214.0.1";
const PORT = ENTRY_PORT;
const NAME = "edge-crash";

let fleet: FleetLab;
let lab: NetnsLab;
let hub: string;
let edge: FleetAgent;
let api: RestJson;
const versions: Record<string, number> = {};

const marker = (v: string) => `palisade-${v}-marker`;
const plain = (v: string, port: number) => ({
  description: `crash ${v}`,
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [{ comment: marker(v), match: { protocol: "tcp", dport: port }, action: "accept" }],
    },
  },
});
const lockout = (v: string) => ({
  description: "cuts the agent off from the API",
  failsafe: { enabled: false, ports: [PORT] },
  chains: {
    input: {
      hook: "input",
      policy: "accept",
      rules: [{ comment: marker(v), match: { protocol: "tcp", dport: 2299 }, action: "accept" }],
    },
    output: {
      hook: "output",
      policy: "accept",
      rules: [{ comment: "drop the API", match: { daddr: [API_ADDR] }, action: "drop" }],
    },
  },
});

async function kernel(): Promise<string> {
  const r = await lab.nft(edge.ns, ["list", "table", "inet", "palisade"], undefined, { allowFailure: true });
  return r.code === 0 ? r.stdout : "";
}

async function host() {
  return (await api("GET", `/v1/hosts/${NAME}`)).json;
}

async function deployment(depId: string) {
  return (await api("GET", `/v1/deployments/${depId}`)).json as {
    status: string;
    targets: { host: string; status: string; error: string | null }[];
  };
}

async function push(v: string, policy: unknown): Promise<number> {
  const r = await api("POST", "/v1/rulesets/edge/versions", { policy, message: v });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return (versions[v] = r.json.version as number);
}

async function deploy(v: string, confirmTimeoutSeconds: number): Promise<string> {
  const r = await api("POST", "/v1/deployments", {
    ruleset: "edge",
    version: versions[v],
    selector: { hosts: [NAME] },
    strategy: { canary: 0, confirmTimeoutSeconds, retries: 0 },
  });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return r.json.id as string;
}

/** JSON log lines of the current agent process. */
function agentLogs(): { msg?: string }[] {
  return (edge.proc?.output() ?? "").split("\n").flatMap((l) => {
    try {
      return l.startsWith("{") ? [JSON.parse(l) as { msg?: string }] : [];
    } catch {
      return [];
    }
  });
}

async function appliedJson(): Promise<{ version: number } | undefined> {
  try {
    return JSON.parse(await readFile(join(edge.stateDir, "applied.json"), "utf8")) as { version: number };
  } catch {
    return undefined;
  }
}

const exists = (f: string) =>
  readFile(join(edge.stateDir, f)).then(
    () => true,
    () => false,
  );

/** Everything agrees on `v`: kernel, applied.json, the host's applied version, a drift check. */
async function assertAgreeOn(v: string, other: string): Promise<void> {
  const k = await kernel();
  assert.match(k, new RegExp(marker(v)), `the kernel runs ${v}`);
  assert.doesNotMatch(k, new RegExp(marker(other)), `the kernel no longer holds ${other}`);
  assert.equal((await appliedJson())?.version, versions[v], "applied.json");
  assert.equal(await exists("pending.json"), false, "no pending apply left");
  await waitUntil(async () => (await host()).connection === "connected", 60_000, "agent connected");
  assert.deepEqual(
    (await host()).appliedVersion,
    { ruleset: "edge", version: versions[v] },
    "the host's applied version",
  );
  // A drift check now finds nothing to undo: the baseline is the version the kernel runs.
  const before = (await host()).driftDetails?.reportedAt as string | undefined;
  const redis = new Redis(TEST_REDIS_URL);
  try {
    assert.equal(await publishToHost(redis, (await host()).id as string, { type: "check_drift" }), 1);
  } finally {
    redis.disconnect();
  }
  const h = await waitUntil(
    async () => {
      const h = await host();
      return h.driftDetails?.reportedAt && h.driftDetails.reportedAt !== before ? h : undefined;
    },
    30_000,
    "a drift report",
  );
  assert.equal(h.driftDetails?.drifted, false, JSON.stringify(h.driftDetails));
  assert.match(await kernel(), new RegExp(marker(v)));
}

before(async () => {
  fleet = await openFleetLab({
    name: "crash",
    apiAddr: API_ADDR,
    agents: [{ name: NAME, labels: {} }],
    maxLifetimeMs: 10 * 60_000,
    apiTimeoutMs: 60_000,
  });
  ({ lab, hub, api } = fleet);
  edge = fleet.agents[0]!;
  assert.equal((await api("POST", "/v1/rulesets", { name: "edge" })).status, 201);
  // The starting point: v1, confirmed.
  await push("v1", plain("v1", 2201));
  const d = await deploy("v1", 20);
  await waitUntil(
    async () => (await deployment(d)).status === "succeeded",
    60_000,
    `v1 deployed\n${edge.proc?.output().slice(-2000)}`,
  );
  assert.match(await kernel(), new RegExp(marker("v1")));
});

after(async () => {
  await fleet?.close();
});

/** Deploy `v`, SIGKILL the agent once it waits for the Confirm, restart it; returns the deployment. */
async function crashInConfirmWindow(v: string, holdConfirm: boolean): Promise<string> {
  // The hub drops what the agent sends to the API: DesiredState still reaches the agent,
  // its APPLYING (and so the Confirm) does not.
  if (holdConfirm)
    await lab.exec(hub, [
      "nft",
      `add table inet h4hold; add chain inet h4hold in { type filter hook input priority 0; }; add rule inet h4hold in ip daddr ${API_ADDR} tcp dport ${PORT} drop`,
    ]);
  const waiting = () => agentLogs().filter((l) => l.msg === "ruleset applied; waiting for confirmation").length;
  const seen = waiting();
  const depId = await deploy(v, 20);
  await waitUntil(
    async () => waiting() > seen,
    30_000,
    `agent waiting for the Confirm\n${edge.proc?.output().slice(-2000)}`,
    50,
  );
  assert.match(await kernel(), new RegExp(marker(v)), "the unconfirmed version is in the kernel");
  assert.equal(await exists("pending.json"), true, "the pending apply is on disk before the kill");
  await edge.proc!.stop(); // SIGKILL, inside the 20 s window
  assert.match(await kernel(), new RegExp(marker(v)), "SIGKILL left the unconfirmed version in the kernel");
  if (holdConfirm) await lab.exec(hub, ["nft", "delete table inet h4hold"]);
  fleet.startAgent(edge);
  // Both final: the detail view reads the deployment row and its targets in two queries, so
  // one response can show the target settled and the deployment not yet.
  const d = await waitUntil(
    async () => {
      const d = await deployment(depId);
      return d.targets[0] && !["pending", "applying"].includes(d.targets[0].status) && d.status !== "running"
        ? d
        : undefined;
    },
    45_000,
    `the target settled\n${edge.proc?.output().slice(-3000)}`,
  );
  assert.equal(d.targets[0]!.status, "rolled_back", JSON.stringify(d));
  assert.match(d.targets[0]!.error ?? "", /agent_restarted/);
  assert.equal(d.status, "failed");
  return depId;
}

test("SIGKILL while waiting for the Confirm: the restarted agent rolls back first; kernel, host and target agree", async () => {
  await push("v2", plain("v2", 2202));
  const depId = await crashInConfirmWindow("v2", true);
  await assertAgreeOn("v1", "v2");
  // A final target never changes again (whatever the agent's outbox still held).
  assert.equal((await deployment(depId)).targets[0]!.status, "rolled_back");
});

test("SIGKILL while a lockout version waits for its Confirm: the agent is back in contact after the restart", async () => {
  await push("v3", lockout("v3"));
  const depId = await crashInConfirmWindow("v3", false);
  await assertAgreeOn("v1", "v3");
  assert.equal((await deployment(depId)).targets[0]!.status, "rolled_back");
});
