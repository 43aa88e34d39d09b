// The fleet kernel tests' fixture: real `palisade agent` processes, each in its own network
// namespace linked to a hub namespace, and API replicas (`palisade server` child processes
// on loopback, a throwaway database, a queue prefix of their own). The hub holds the API
// address on its loopback; socat there forwards entry port 50051+i over a unix socket to a
// balancer that prefers replica i and falls back to the others in order (one entry per
// replica). Agents are enrolled with their labels, started and connected when
// openFleetLab returns. close() removes everything, even after a failed test.
// The agent channel is mutual TLS like the product's default: the replicas' certificates
// name the API address, and their enrollment ports are served at ENROLL_ENTRY_PORT + i the
// same way (agents are told with --enroll-server, since port + 1 is the next entry).
// `env: { PALISADE_GRPC_PLAINTEXT: "1" }` only for tests about the plaintext lab mode.
// FLEET_DEBUG=1 runs the agents at debug level and prints agent and replica logs at close.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, deleteRedisKeys, TEST_REDIS_URL, type TestDatabase } from "./db.ts";
import {
  BIN,
  killReplica,
  restartReplica,
  startBalancer,
  startReplicas,
  waitUntil,
  type Balancer,
  type Replica,
} from "./fleet-processes.ts";
import { createLab, type Background, type NetnsLab } from "./netns.ts";
import { banTimeouts } from "./nft-lab.ts";
import { restJson, type RestJson } from "./rest-json.ts";

/** The agents' entry port for replica 0; replica i's is ENTRY_PORT + i. */
export const ENTRY_PORT = 50051;
/** With mutual TLS, replica i's enrollment port is served at ENROLL_ENTRY_PORT + i. */
export const ENROLL_ENTRY_PORT = 50151;

export interface FleetAgent {
  name: string;
  /** The namespace it runs in (and manages). */
  ns: string;
  /** Its address on the link to the hub. */
  ip: string;
  /** The entry port it dials at the API address (which replica it prefers). */
  port: number;
  stateDir: string;
  labels: Record<string, string>;
  /** The running process (replaced by startAgent). */
  proc?: Background;
}

export interface FleetLabOptions {
  /** Names the queue prefix, admin token, sockets and state dirs. */
  name: string;
  /** The API's address in the hub; each test file its own range, so their packets never mix. */
  apiAddr: string;
  /** API replicas (default 1). */
  replicas?: number;
  /** Replica environment beyond database, Redis, admin token and queue prefix. */
  env?: Record<string, string>;
  /** More addresses on the hub's loopback: the sources tests send from. */
  sources?: string[];
  /** The agents; `entry` is the replica they prefer (default 0). */
  agents: { name: string; labels: Record<string, string>; entry?: number }[];
  /** Agent flags after the lab's (later flags win): the lab runs no periodic drift or telemetry. */
  agentFlags?: string[];
  /** Bound on every process the lab starts in a namespace (default 15 min). */
  maxLifetimeMs?: number;
  /** Per REST request (default 30 s). */
  apiTimeoutMs?: number;
}

export interface FleetLab {
  lab: NetnsLab;
  /** The namespace with the API address, the sources and one link to each agent. */
  hub: string;
  database: TestDatabase;
  /** In start order; restartReplica puts the new process in the old one's place. */
  replicas: Replica[];
  agents: FleetAgent[];
  /** The admin token the replicas accept. */
  admin: string;
  /** The replicas' BullMQ and Redis key prefix. */
  prefix: string;
  /** REST as admin, to the first live replica that answers. */
  api: RestJson;
  /** Replicas whose process has not exited. */
  live(): Replica[];
  /** Start `a` (enrolling with `token`, or from its state dir without one). */
  startAgent(a: FleetAgent, token?: string): Background;
  /** Does the API see `name`'s stream up? */
  connected(name: string): Promise<boolean>;
  /** True when a SYN from the hub (from `source`, one of `sources`) to closed `port` of `a` gets its RST back. */
  reaches(a: FleetAgent, port: number, source?: string): Promise<boolean>;
  /** Elements of every set of `a`'s ban table with the kernel's remaining ms ("expires"); none without the table. */
  kernelBans(a: FleetAgent): Promise<Map<string, number>>;
  /** Kill replica `r` (if it still runs) and start it again on its ports, ready. */
  restartReplica(r: Replica): Promise<Replica>;
  close(): Promise<void>;
}

export async function openFleetLab(o: FleetLabOptions): Promise<FleetLab> {
  const id = randomBytes(4).toString("hex");
  const maxLifetimeMs = o.maxLifetimeMs ?? 15 * 60_000;
  const lab = createLab();
  const balancers: Balancer[] = [];
  const agents: FleetAgent[] = [];
  const replicas: Replica[] = [];
  let database: TestDatabase | undefined;
  const live = () => replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
  const admin = `${o.name}-admin-${randomBytes(12).toString("hex")}`;
  const prefix = `palisade-${o.name}:${process.pid}:${id}`;
  const api = restJson(() => live().map((r) => r.url), admin, { timeoutMs: o.apiTimeoutMs });

  const close = async () => {
    if (process.env.FLEET_DEBUG) {
      for (const a of agents) process.stderr.write(`--- ${a.name}\n${a.proc?.output()}\n`);
      for (const r of replicas)
        process.stderr.write(
          `--- replica ${r.name}\n${r
            .out()
            .split("\n")
            .filter((l) => !/incoming request|request completed/.test(l))
            .join("\n")}\n`,
        );
    }
    for (const a of agents) await a.proc?.stop().catch(() => {});
    for (const r of replicas) await killReplica(r).catch(() => {});
    for (const b of balancers) await b.close().catch(() => {});
    await lab.cleanup();
    for (const a of agents) await rm(a.stateDir, { recursive: true, force: true });
    await database?.drop().catch(() => {});
    await deleteRedisKeys(prefix);
  };

  const fleet: FleetLab = {
    lab,
    hub: "",
    database: undefined as never,
    replicas,
    agents,
    admin,
    prefix,
    api,
    live,
    startAgent(a, token) {
      const argv = [
        process.execPath,
        BIN,
        "agent",
        "--server",
        `${o.apiAddr}:${a.port}`,
        "--state-dir",
        a.stateDir,
        "--name",
        a.name,
        "--drift-interval",
        "0",
        "--telemetry-interval",
        "60",
        ...(process.env.FLEET_DEBUG ? ["--log-level", "debug"] : []),
        ...(o.agentFlags ?? []),
      ];
      if (replicas.some((r) => r.enrollPort))
        argv.push("--enroll-server", `${o.apiAddr}:${ENROLL_ENTRY_PORT + a.port - ENTRY_PORT}`);
      if (token) argv.push("--enroll-token", token);
      a.proc = lab.background(a.ns, argv, { maxLifetimeMs });
      return a.proc;
    },
    async connected(name) {
      return (await api("GET", `/v1/hosts/${name}`)).json.connection === "connected";
    },
    async reaches(a, port, source) {
      const r = await lab.tcpFlags(fleet.hub, a.ip, port, "S", { count: 2, ...(source && { source }) });
      return r.received > 0;
    },
    kernelBans: (a) => banTimeouts(lab, a.ns),
    async restartReplica(r) {
      const i = replicas.indexOf(r);
      assert.ok(i >= 0, `replica ${r.name} belongs to this lab`);
      replicas[i] = await restartReplica(r);
      return replicas[i];
    },
    close,
  };

  try {
    database = fleet.database = await createTestDatabase();
    const env = {
      DATABASE_URL: database.url,
      REDIS_URL: TEST_REDIS_URL,
      PALISADE_ADMIN_TOKEN: admin,
      PALISADE_QUEUE_PREFIX: prefix,
      PALISADE_TLS_SERVER_NAMES: o.apiAddr,
      ...o.env,
    };
    replicas.push(...(await startReplicas(o.replicas ?? 1, env)));
    // Entry i prefers replica i, then the others in order; ports stay the same across restarts.
    const grpc = replicas.map((r) => r.grpcPort);
    for (let i = 0; i < grpc.length; i++) {
      const order = [...grpc.slice(i), ...grpc.slice(0, i)];
      balancers.push(await startBalancer(join(tmpdir(), `palisade-${o.name}-${id}-${i}.sock`), () => order));
    }
    // Mutual TLS: the enrollment ports behind entries of their own, in the same order.
    const enroll = replicas.map((r) => r.enrollPort).filter((p) => p > 0);
    const enrollBalancers: Balancer[] = [];
    for (let i = 0; i < enroll.length; i++) {
      const order = [...enroll.slice(i), ...enroll.slice(0, i)];
      enrollBalancers.push(await startBalancer(join(tmpdir(), `palisade-${o.name}-${id}-e${i}.sock`), () => order));
    }
    balancers.push(...enrollBalancers);
    const hub = (fleet.hub = await lab.addNamespace());
    await lab.exec(hub, ["ip", "addr", "add", `${o.apiAddr}/32`, "dev", "lo"]);
    for (const s of o.sources ?? []) await lab.exec(hub, ["ip", "addr", "add", `${s}/32`, "dev", "lo"]);
    const entries = [
      ...grpc.map((_, i) => ({ port: ENTRY_PORT + i, path: balancers[i]!.path })),
      ...enrollBalancers.map((b, i) => ({ port: ENROLL_ENTRY_PORT + i, path: b.path })),
    ];
    for (const e of entries)
      lab.background(
        hub,
        ["socat", `TCP-LISTEN:${e.port},bind=${o.apiAddr},fork,reuseaddr`, `UNIX-CONNECT:${e.path}`],
        { maxLifetimeMs },
      );
    for (const { name, labels, entry = 0 } of o.agents) {
      const ns = await lab.addNamespace();
      const link = await lab.link(hub, ns);
      await lab.defaultRoute(ns, link.a.ip4);
      const stateDir = await mkdtemp(join(tmpdir(), `palisade-${o.name}-${name}-`));
      agents.push({ name, ns, ip: link.b.ip4, port: ENTRY_PORT + entry, labels, stateDir });
    }
    // socat listens once it runs: wait until the first agent's namespace reaches every entry.
    for (const e of entries)
      await waitUntil(
        () => lab.tcpConnect(agents[0]!.ns, o.apiAddr, e.port),
        30_000,
        `entry ${e.port} in the hub`,
        100,
      );
    for (const a of agents) {
      const t = await api("POST", "/v1/enrollment-tokens", { labels: a.labels });
      assert.equal(t.status, 201, JSON.stringify(t.json));
      fleet.startAgent(a, t.json.token);
    }
    await waitUntil(
      async () => {
        for (const a of agents) if (!(await fleet.connected(a.name).catch(() => false))) return false;
        return true;
      },
      90_000,
      `all agents connected\n${agents.map((a) => `${a.name}: ${a.proc?.output().slice(-1500)}`).join("\n")}`,
    );
    return fleet;
  } catch (e) {
    await close();
    throw e;
  }
}
