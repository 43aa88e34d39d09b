// Fleet-wide bans on real kernels: three agents (`palisade agent` inside their own network
// namespaces), one API replica (child process on loopback) reached through socat in a hub
// namespace at 10.214.0.1, and sources to ban on the hub's loopback. Packets are crafted
// with hping3 from those sources towards a closed port of each agent's namespace: an
// answer (RST) means the packet got in, none means it was dropped.
//
// Proves: bad input is refused whole; a ban by label reaches exactly the selected kernels
// and drops the source there; removal lifts it; expiry lifts it in the kernel and the API
// together; an agent that was away converges to the current lists when it reconnects.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from "../support/db.ts";
import { createLab, type Background, type NetnsLab } from "../support/netns.ts";
import {
  BIN,
  freePort,
  killReplica,
  startBalancer,
  startReplica,
  waitUntil,
  type Balancer,
  type Replica,
} from "../support/fleet-processes.ts";

const API_ADDR = "10.214.0.1";
const SRC = ["10.214.50.5", "10.214.50.6", "10.214.50.7", "10.214.50.8"];
const ADMIN = `bans-admin-${randomBytes(12).toString("hex")}`;
const id = randomBytes(4).toString("hex");

interface AgentProc {
  name: string;
  ns: string;
  ip: string;
  stateDir: string;
  labels: Record<string, string>;
  proc?: Background;
}

let lab: NetnsLab;
let hub: string;
let database: TestDatabase;
let replica: Replica;
let balancer: Balancer;
const agents: AgentProc[] = [];

async function api<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`http://127.0.0.1:${replica.httpPort}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, json: (await res.json()) as T };
}

/** Elements of every set of the ban table, with the kernel's remaining ms ("expires"). */
async function kernelBans(a: AgentProc): Promise<Map<string, number>> {
  const r = await lab.nft(a.ns, ["list", "table", "inet", "palisade_bans"], undefined, { allowFailure: true });
  const out = new Map<string, number>();
  if (r.code !== 0) return out;
  const ms = (t: string) =>
    [...t.matchAll(/(\d+)(d|h|ms|m|s)/g)].reduce(
      (n, [, v, u]) => n + Number(v) * { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[u as "s"],
      0,
    );
  for (const m of r.stdout.matchAll(/([0-9a-f.:/]+) timeout \S+ expires (\S+?)(?=[,\s}])/g)) out.set(m[1]!, ms(m[2]!));
  return out;
}

/** True when a SYN from `src` to a closed port of `a` gets its RST back. */
async function reaches(src: string, a: AgentProc): Promise<boolean> {
  const r = await lab.tcpFlags(hub, a.ip, 9, "S", { count: 2, source: src });
  return r.received > 0;
}

function startAgent(a: AgentProc, token?: string): void {
  const argv = [
    process.execPath,
    BIN,
    "agent",
    "--server",
    `${API_ADDR}:50051`,
    "--state-dir",
    a.stateDir,
    "--name",
    a.name,
    "--drift-interval",
    "0",
    "--telemetry-interval",
    "60",
  ];
  if (token) argv.push("--enroll-token", token);
  a.proc = lab.background(a.ns, argv, { maxLifetimeMs: 15 * 60_000 });
}

const connected = async (name: string) => (await api("GET", `/v1/hosts/${name}`)).json.connection === "connected";

before(async () => {
  lab = createLab();
  database = await createTestDatabase();
  const ports = { http: await freePort(), grpc: await freePort() };
  replica = startReplica("A", ports, {
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    PALISADE_ADMIN_TOKEN: ADMIN,
    PALISADE_QUEUE_PREFIX: `palisade-bans:${process.pid}:${id}`,
  });
  await waitUntil(
    async () => (await fetch(`http://127.0.0.1:${ports.http}/healthz`).catch(() => undefined))?.ok,
    60_000,
    `replica up\n${replica.out()}`,
  );
  await waitUntil(async () => replica.out().includes("agent gRPC server listening"), 30_000, "replica gRPC");
  balancer = await startBalancer(join(tmpdir(), `palisade-bans-${id}.sock`), () => [ports.grpc]);
  hub = await lab.addNamespace();
  await lab.exec(hub, ["ip", "addr", "add", `${API_ADDR}/32`, "dev", "lo"]);
  for (const s of SRC) await lab.exec(hub, ["ip", "addr", "add", `${s}/32`, "dev", "lo"]);
  lab.background(hub, ["socat", `TCP-LISTEN:50051,bind=${API_ADDR},fork,reuseaddr`, `UNIX-CONNECT:${balancer.path}`], {
    maxLifetimeMs: 15 * 60_000,
  });
  const plan: [string, Record<string, string>][] = [
    ["web-0", { role: "web" }],
    ["web-1", { role: "web" }],
    ["db-0", { role: "db" }],
  ];
  for (const [name, labels] of plan) {
    const ns = await lab.addNamespace();
    const link = await lab.link(hub, ns);
    await lab.defaultRoute(ns, link.a.ip4);
    agents.push({
      name,
      ns,
      ip: link.b.ip4,
      labels,
      stateDir: await mkdtemp(join(tmpdir(), `palisade-bans-${name}-`)),
    });
  }
  for (let i = 0; i < 100 && !(await lab.tcpConnect(agents[0]!.ns, API_ADDR, 50051)); i++)
    await new Promise((r) => setTimeout(r, 100));
  for (const a of agents) {
    const t = await api("POST", "/v1/enrollment-tokens", { labels: a.labels });
    assert.equal(t.status, 201, JSON.stringify(t.json));
    startAgent(a, t.json.token);
  }
  await waitUntil(
    async () => {
      for (const a of agents) if (!(await connected(a.name).catch(() => false))) return false;
      return true;
    },
    90_000,
    `all agents connected\n${agents.map((a) => `${a.name}: ${a.proc?.output().slice(-1500)}`).join("\n")}`,
  );
});

after(async () => {
  if (process.env.BANS_DEBUG) for (const a of agents) process.stderr.write(`--- ${a.name}\n${a.proc?.output()}\n`);
  for (const a of agents) await a.proc?.stop().catch(() => {});
  if (replica) await killReplica(replica).catch(() => {});
  await balancer?.close().catch(() => {});
  await lab?.cleanup();
  for (const a of agents) await rm(a.stateDir, { recursive: true, force: true });
  await database?.drop().catch(() => {});
});

test("bad input is refused whole with a clear error and nothing is applied", async () => {
  const r = await api("POST", "/v1/bans", {
    list: "edge",
    addresses: [SRC[0], "0.0.0.0/0", "10.1.2.300", "127.0.0.1", "10.0.0.1/8", "::/0"],
    ttlSeconds: 600,
  });
  assert.equal(r.status, 400, JSON.stringify(r.json));
  const codes = Object.fromEntries(r.json.error.details.map((d: { path: string; code: string }) => [d.path, d.code]));
  assert.deepEqual(codes, {
    "/addresses/1": "whole_internet",
    "/addresses/2": "malformed_address",
    "/addresses/3": "covers_api_address",
    "/addresses/4": "host_bits_set",
    "/addresses/5": "whole_internet",
  });
  assert.equal((await api("GET", "/v1/bans")).json.items.length, 0);
  for (const a of agents) assert.equal((await kernelBans(a)).size, 0, `${a.name} holds no ban`);
  assert.ok(await reaches(SRC[0]!, agents[0]!), "the source still gets in");
});

test("a ban by label reaches exactly the selected kernels, drops the source there, and removal lifts it", async () => {
  const [web0, web1, db0] = agents as [AgentProc, AgentProc, AgentProc];
  assert.ok(await reaches(SRC[0]!, web0), "before the ban the source gets in");
  const r = await api("POST", "/v1/bans", {
    list: "edge",
    addresses: [SRC[0], "2001:db8::5", "2001:db8:1::/48", "198.51.100.0/24"],
    ttlSeconds: 600,
    reason: "probing",
    selector: { labels: { role: "web" } },
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.hosts, 2);
  for (const a of [web0, web1]) {
    const k = await waitUntil(
      async () => ((await kernelBans(a)).size === 4 ? kernelBans(a) : undefined),
      30_000,
      `${a.name} gets the bans`,
    );
    assert.deepEqual([...k.keys()].sort(), ["10.214.50.5", "198.51.100.0/24", "2001:db8:1::/48", "2001:db8::5"]);
    assert.equal(await reaches(SRC[0]!, a), false, `${a.name} drops the banned source`);
    assert.ok(await reaches(SRC[1]!, a), `${a.name} still lets another source in`);
  }
  assert.equal((await kernelBans(db0)).size, 0, "db-0 is not selected");
  assert.ok(await reaches(SRC[0]!, db0), "db-0 lets the source in");
  const listed = await api("GET", "/v1/bans?list=edge&host=web-1");
  assert.equal(listed.json.items.length, 4);
  assert.equal((await api("GET", "/v1/bans?host=db-0")).json.items.length, 0);

  const del = await api("DELETE", `/v1/bans/edge/${SRC[0]}`);
  assert.equal(del.status, 200, JSON.stringify(del.json));
  for (const a of [web0, web1]) {
    await waitUntil(async () => !(await kernelBans(a)).has(SRC[0]!), 30_000, `${a.name} lifts the ban`);
    assert.ok(await reaches(SRC[0]!, a), `${a.name} lets the source in again`);
    assert.equal((await kernelBans(a)).size, 3, "the other bans stay");
  }
  const audit = (await api("GET", "/v1/audit?limit=50")).json.items.map((i: { action: string }) => i.action);
  assert.ok(audit.includes("ban.add") && audit.includes("ban.remove"), audit.join(","));
});

test("an expired ban leaves the kernels and the API together", async () => {
  const ttl = 4;
  const r = await api("POST", "/v1/bans", { list: "short", addresses: [SRC[2]], ttlSeconds: ttl });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const expiresAt = Date.parse(r.json.items[0].expiresAt);
  for (const a of agents) {
    const k = await waitUntil(
      async () => ((await kernelBans(a)).get(SRC[2]!) !== undefined ? kernelBans(a) : undefined),
      30_000,
      `${a.name} gets the short ban`,
    );
    // The kernel counts down to the API's expiry (within delivery and listing time, never past it by more).
    const kernelEnd = Date.now() + k.get(SRC[2]!)!;
    assert.ok(
      Math.abs(kernelEnd - expiresAt) < 1500,
      `${a.name}: kernel ends at ${new Date(kernelEnd).toISOString()}, API at ${new Date(expiresAt).toISOString()}`,
    );
    assert.equal(await reaches(SRC[2]!, a), false);
  }
  // Whichever side lets go first, the other follows at once: when the API stops listing
  // it, no kernel has more than a moment left; when the kernels dropped it, the API no
  // longer lists it.
  await waitUntil(
    async () => !(await api("GET", "/v1/bans?list=short")).json.items.length,
    30_000,
    "API drops the expired ban",
  );
  for (const a of agents) {
    const left = (await kernelBans(a)).get(SRC[2]!);
    assert.ok(left === undefined || left < 1000, `${a.name} still holds the expired ban for ${left} ms`);
  }
  for (const a of agents) {
    await waitUntil(async () => !(await kernelBans(a)).has(SRC[2]!), 10_000, `${a.name} drops the expired ban`);
    assert.ok(await reaches(SRC[2]!, a), `${a.name} lets the source in after expiry`);
  }
  assert.equal((await api("GET", "/v1/bans?list=short")).json.items.length, 0);
});

test("an agent that was away converges to the current lists when it reconnects", async () => {
  const db0 = agents[2]!;
  const b1 = await api("POST", "/v1/bans", { list: "away", addresses: [SRC[3]], ttlSeconds: 600 });
  assert.equal(b1.status, 201);
  await waitUntil(async () => (await kernelBans(db0)).has(SRC[3]!), 30_000, "db-0 gets the first ban");
  await db0.proc!.stop();
  await waitUntil(async () => !(await connected(db0.name)), 30_000, "db-0 disconnected");
  // While it is away: one ban lifted, one added (to every host).
  assert.equal((await api("DELETE", `/v1/bans/away/${SRC[3]}`)).status, 200);
  assert.equal((await api("POST", "/v1/bans", { list: "away", addresses: [SRC[1]], ttlSeconds: 600 })).status, 201);
  assert.ok((await kernelBans(db0)).has(SRC[3]!), "the kernel still holds the lifted ban while the agent is away");
  startAgent(db0);
  await waitUntil(
    async () => {
      const k = await kernelBans(db0);
      return k.has(SRC[1]!) && !k.has(SRC[3]!);
    },
    60_000,
    `db-0 converges\n${db0.proc?.output().slice(-2000)}`,
  );
  assert.equal(await reaches(SRC[1]!, db0), false);
  assert.ok(await reaches(SRC[3]!, db0));
});

test("an update the kernel refuses is not lost: the agent reloads the full state and converges", async () => {
  const web0 = agents[0]!;
  const before = await kernelBans(web0);
  assert.ok(before.has(SRC[1]!), "web-0 holds the away ban");
  // Someone removes the ban table behind the agent's back: its next change (element adds to
  // sets it believes exist) is refused by the kernel.
  await lab.nft(web0.ns, ["delete", "table", "inet", "palisade_bans"]);
  const r = await api("POST", "/v1/bans", {
    list: "away",
    addresses: ["198.51.100.77"],
    ttlSeconds: 600,
    selector: { hosts: [web0.name] },
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  await waitUntil(
    async () => web0.proc!.output().includes("ban update not applied"),
    30_000,
    `web-0 fails the change\n${web0.proc?.output().slice(-2000)}`,
  );
  await waitUntil(
    async () => {
      const k = await kernelBans(web0);
      return [...before.keys(), "198.51.100.77"].every((a) => k.has(a));
    },
    60_000,
    `web-0 converges after the failure\n${web0.proc?.output().slice(-2000)}`,
  );
  assert.equal(await reaches(SRC[1]!, web0), false, "the banned source is dropped again");
  await waitUntil(async () => connected(web0.name), 30_000, "web-0 is connected again");
});
