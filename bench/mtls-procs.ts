// The cost of mutual TLS on the agent channel at fleet size, with every part in its own
// process (bench/mtls.ts keeps agents and servers in one process, whose event loop starves
// at N=500). Two fleets side by side, each on its own database and queue prefix: two API
// replicas (`palisade server`) with mutual TLS, two with PALISADE_GRPC_PLAINTEXT=1, and
// BENCH_AGENT_PROCS processes of simulated agents per fleet (bench/lib/fanout-agents.ts:
// grpc-js clients, half on each replica; the mTLS ones enroll as the real agent does, with
// the pinned CA and a CSR, and hold their stream on the client certificate). The runs
// alternate between the fleets so both see the same machine load; plaintext is the
// baseline of every ratio.
//
// Reconnect: every agent of the fleet closes its stream; once the API shows none of them
// connected, all N open a new channel at once (TCP, the TLS handshake with the client
// certificate, the Connect stream, Hello); timed from the command to each agent's first
// heartbeat echo (the server holds the stream). Fan-out: as bench/fanout.ts, from
// POST /v1/deployments to each agent's Confirm. Times cross process boundaries on one
// machine's clock (performance.timeOrigin + now()).
// Env: BENCH_N (default 500), BENCH_RUNS (default 3), BENCH_AGENT_PROCS (default 4 per fleet).
// Needs Postgres and Redis (as tests).
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createDb, type Db } from "../src/api/db/client.ts";
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from "../test/support/db.ts";
import { killReplica, startReplica, type Replica } from "../test/support/fleet-processes.ts";
import { freePorts } from "../test/support/ports.ts";
import { validPolicy } from "../test/support/policies.ts";
import { waitFor } from "../test/support/wait.ts";
import { median, ms, percentile, ratio, table } from "./lib/stats.ts";
import { Redis } from "ioredis";

const N = Number(process.env.BENCH_N ?? 500);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PROCS = Math.max(1, Math.min(N, Number(process.env.BENCH_AGENT_PROCS ?? 4)));
const ADMIN = `bench-admin-${randomBytes(12).toString("hex")}`;
const err = (s: string) => process.stderr.write(s + "\n");
const now = () => performance.timeOrigin + performance.now();

interface AgentProc {
  child: ChildProcess;
  out: string;
  /** Resolvers of the next answer of each kind. */
  waiting: Map<string, (v: unknown) => void>;
}

interface Fleet {
  name: "plaintext" | "mTLS";
  database: TestDatabase;
  db: Db;
  prefix: string;
  replicas: Replica[];
  procs: AgentProc[];
  confirmedAt: Map<string, number>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
}

function ask<T>(p: AgentProc, kind: string, cmd: object): Promise<T> {
  return new Promise((resolve, reject) => {
    p.waiting.set(kind, resolve as (v: unknown) => void);
    p.child.once("exit", (code) => reject(new Error(`agent process exited ${code}: ${p.out.slice(-2000)}`)));
    p.child.stdin!.write(JSON.stringify(cmd) + "\n");
  });
}

async function startFleetOf(tls: boolean): Promise<Fleet> {
  const name = tls ? "mTLS" : "plaintext";
  const database = await createTestDatabase();
  const prefix = `palisade-bench:${process.pid}:${randomBytes(4).toString("hex")}`;
  const env = {
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    PALISADE_ADMIN_TOKEN: ADMIN,
    PALISADE_QUEUE_PREFIX: prefix,
    ...(tls ? {} : { PALISADE_GRPC_PLAINTEXT: "1" }),
    LOG_LEVEL: "warn",
  };
  const replicas: Replica[] = [];
  // Both replicas' ports chosen at once, held open (freePorts): one by one, one could come back twice.
  const free = await freePorts(6);
  for (const [i, r] of ["A", "B"].entries()) {
    const [http, grpc, enroll] = free.slice(3 * i, 3 * i + 3) as [number, number, number];
    const ports = { http, grpc, enroll };
    replicas.push(startReplica(`${name}-${r}`, ports, env));
  }
  for (const r of replicas) {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${r.httpPort}/healthz`).catch(() => undefined))?.ok === true,
      60_000,
      `replica ${r.name} up\n${r.out()}`,
      200,
    );
    await waitFor(() => r.out().includes("agent gRPC server listening"), 30_000, `replica ${r.name} gRPC`, 100);
  }
  const api: Fleet["api"] = async (method, path, body) => {
    const res = await fetch(`http://127.0.0.1:${replicas[0]!.httpPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  await api("POST", "/v1/rulesets", { name: "fan" });
  await api("POST", "/v1/rulesets/fan/versions", { policy: validPolicy(443) });
  const specs: { name: string; token: string; address: string; enroll?: string }[] = new Array(N);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < N; i = next++) {
        const t = await api("POST", "/v1/enrollment-tokens", { labels: { fan: "all" }, ttlSeconds: 3600 });
        if (t.status !== 201) throw new Error(`enrollment token: ${t.status} ${JSON.stringify(t.json)}`);
        const r = replicas[i % 2]!;
        specs[i] = {
          name: `fan-${String(i).padStart(4, "0")}`,
          token: String(t.json.token),
          address: `127.0.0.1:${r.grpcPort}`,
          ...(tls && { enroll: `127.0.0.1:${r.enrollPort}` }),
        };
      }
    }),
  );
  const confirmedAt = new Map<string, number>();
  const procs: AgentProc[] = [];
  const ready: Promise<unknown>[] = [];
  for (let p = 0; p < PROCS; p++) {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "lib/fanout-agents.ts")], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const proc: AgentProc = { child, out: "", waiting: new Map() };
    child.stderr!.on("data", (b: Buffer) => (proc.out += b.toString()));
    ready.push(
      new Promise((resolve, reject) => {
        proc.waiting.set("ready", resolve);
        child.once("exit", (code) => reject(new Error(`agent process ${p} exited ${code}: ${proc.out.slice(-2000)}`)));
      }),
    );
    createInterface({ input: child.stdout! }).on("line", (l) => {
      const m = JSON.parse(l) as Record<string, unknown>;
      const c = m.confirm as { targetId: string; at: number } | undefined;
      if (c) confirmedAt.set(c.targetId, c.at);
      for (const k of Object.keys(m)) {
        const w = proc.waiting.get(k);
        if (w) {
          proc.waiting.delete(k);
          w(m[k]);
        }
      }
    });
    child.stdin!.write(JSON.stringify({ agents: specs.filter((_, i) => i % PROCS === p) }) + "\n");
    procs.push(proc);
  }
  await Promise.all(ready);
  err(`  ${name}: ${N} agents enrolled and connected (${PROCS} processes, half on each replica)`);
  return { name, database, db: createDb(database.url), prefix, replicas, procs, confirmedAt, api };
}

/** Every agent drops its stream; once the API shows none connected, all reconnect at once. */
async function reconnectAll(f: Fleet): Promise<{ each: number[]; retries: number; failed: number }> {
  await Promise.all(f.procs.map((p) => ask(p, "dropped", { drop: true })));
  await waitFor(
    async () => (await f.db.host.count({ where: { connection: "connected" } })) === 0,
    120_000,
    `${f.name}: old streams to end`,
    50,
  );
  const t0 = now();
  const answers = await Promise.all(
    f.procs.map((p) => ask<{ at: number[]; retries: number; failed: number }>(p, "connected", { connect: true })),
  );
  const failed = answers.reduce((n, a) => n + a.failed, 0);
  if (failed)
    err(
      `  ${f.name}: ${failed} agents did not reconnect: ${f.procs
        .map((p) =>
          p.out
            .split("\n")
            .filter((l) => l.startsWith("connect failed"))
            .slice(-2)
            .join("; "),
        )
        .join(" | ")}`,
    );
  return {
    each: answers.flatMap((a) => a.at.map((t) => t - t0)),
    retries: answers.reduce((n, a) => n + a.retries, 0),
    failed,
  };
}

/** `missing`: agents that are not connected (their targets never confirm; not waited for). */
async function deployOnce(f: Fleet, missing = 0): Promise<number[]> {
  const t0 = now();
  const res = await f.api("POST", "/v1/deployments", {
    ruleset: "fan",
    version: 1,
    selector: { labels: { fan: "all" } },
    strategy: { canary: 0, batchSize: 10_000, confirmTimeoutSeconds: 120, retries: 0 },
  });
  if (res.status !== 202) throw new Error(`deploy: ${res.status} ${JSON.stringify(res.json)}`);
  const id = String(res.json.id);
  const targets = (await f.db.deploymentTarget.findMany({ where: { deploymentId: id }, select: { id: true } })).map(
    (t) => t.id,
  );
  await waitFor(
    () => targets.filter((t) => f.confirmedAt.has(t)).length >= targets.length - missing,
    300_000,
    `${f.name}: all ${targets.length} confirmed (${targets.filter((t) => f.confirmedAt.has(t)).length} so far)`,
    20,
  );
  if (missing === 0)
    await waitFor(
      async () => (await f.db.deployment.findUniqueOrThrow({ where: { id } })).status === "succeeded",
      60_000,
      "deployment succeeded",
      50,
    );
  return targets.flatMap((t) => (f.confirmedAt.has(t) ? [f.confirmedAt.get(t)! - t0] : []));
}

async function stopFleet(f: Fleet): Promise<void> {
  for (const p of f.procs) p.child.stdin?.end();
  for (const p of f.procs)
    if (p.child.exitCode === null && p.child.pid)
      setTimeout(() => p.child.exitCode === null && p.child.kill("SIGKILL"), 5_000).unref();
  for (const r of f.replicas) await killReplica(r);
  await f.db.$disconnect();
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const keys = await redis.keys(`${f.prefix}:*`);
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
  await f.database.drop();
}

interface Run {
  failed: number;
  retries: number;
  reconnectAll: number;
  reconnectP99: number;
  fanP50: number;
  fanP99: number;
}

async function main(): Promise<void> {
  err(`mtls-procs: N=${N}, runs=${RUNS}, ${PROCS} agent processes and 2 replicas per fleet`);
  const fleets: Fleet[] = [];
  try {
    fleets.push(await startFleetOf(false));
    fleets.push(await startFleetOf(true));
    const rows = new Map<string, Run[]>(fleets.map((f) => [f.name, []]));
    for (const f of fleets) {
      const c = await reconnectAll(f);
      const fan = await deployOnce(f, c.failed);
      err(
        `  warm-up ${f.name}: reconnect all ${ms(Math.max(...c.each))} (${c.retries} retries); fan-out p99 ${ms(percentile(fan, 99))}`,
      );
    }
    for (let r = 0; r < RUNS; r++) {
      for (const f of fleets) {
        const c = await reconnectAll(f);
        const fan = await deployOnce(f, c.failed);
        const run: Run = {
          failed: c.failed,
          retries: c.retries,
          reconnectAll: Math.max(...c.each),
          reconnectP99: percentile(c.each, 99),
          fanP50: percentile(fan, 50),
          fanP99: percentile(fan, 99),
        };
        rows.get(f.name)!.push(run);
        err(
          `  run ${r + 1}/${RUNS} ${f.name}: reconnect all ${ms(run.reconnectAll)} (p99 ${ms(run.reconnectP99)}, ${run.retries} retries, ${run.failed} failed); fan-out p50 ${ms(run.fanP50)} p99 ${ms(run.fanP99)}; load ${loadavg()[0]!.toFixed(1)}`,
        );
      }
    }
    const med = (name: string, k: keyof Run) => median(rows.get(name)!.map((x) => x[k]));
    const line = (label: string, k: keyof Run, fmt = ms) => [
      label,
      fmt(med("plaintext", k)),
      fmt(med("mTLS", k)),
      k === "retries" || k === "failed" ? "" : ratio(med("mTLS", k), med("plaintext", k)),
    ];
    process.stdout.write(
      `nproc ${cpus().length}, load average at end ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}\n`,
    );
    process.stdout.write(
      `processes: 2 API replicas and ${PROCS} simulated-agent processes per fleet, this driver; median of ${RUNS} alternating runs\n`,
    );
    process.stdout.write(
      table([
        [`N = ${N}`, "plaintext", "mutual TLS", "mTLS vs plaintext"],
        line("reconnect all", "reconnectAll"),
        line("reconnect p99", "reconnectP99"),
        line("fan-out p50", "fanP50"),
        line("fan-out p99", "fanP99"),
        line("connect retries", "retries", (x) => String(x)),
        line("agents not reconnected", "failed", (x) => String(x)),
      ]) + "\n",
    );
  } finally {
    for (const f of fleets) await stopFleet(f).catch((e: Error) => err(`cleanup ${f.name}: ${e.message}`));
  }
}

await main();
process.exit(0);
