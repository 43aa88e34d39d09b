// Fleet accounting ingest through the real gRPC path (issue 15): simulated agents, each
// reporting one TelemetryBatch of BENCH_ADDRS accounting rows every BENCH_INTERVAL_MS,
// to two API replicas (`palisade server` child processes: agent gRPC, ingest, the
// telemetry rollups), from BENCH_AGENT_PROCS separate processes (bench/lib/ingest-agents.ts;
// half of the agents on each replica). One PostgreSQL (a fresh test database).
//
// Steps of BENCH_STEPS hosts (the first N of the enrolled agents report), each for
// BENCH_STEP_S seconds: offered rows/s (hosts x addresses / interval), rows/s acked (each
// batch's transaction committed), ack lag (send to ack) p50/p95/max, the backlog (batches
// queued or unacknowledged: the agents' spools) at its largest and at the end, CPU seconds
// per second of the replicas, of PostgreSQL (the backends of this database) and of the
// agent processes. A step keeps up when its acked rate is the offered one and its backlog
// stays at about one batch per agent.
//
// Baseline in the same run: one COPY stream (pg-copy-streams, one connection) of the same
// rows into the same table, for BENCH_STEP_S / 2 seconds: what one PostgreSQL takes at
// most through the cheapest path, with nothing else (no gRPC, ledger, dirty marks,
// rollups). Interleaved before each step.
//
// Rollup lag: every 2 s during a step, the age of the oldest dirty mark (telemetry_dirty:
// a minute whose rollup is still owed) and how many marks wait; a rollup that keeps up
// holds the lag near the run interval (15 s) plus a minute, one that falls behind makes
// it grow through the step.
//
// Env (defaults): BENCH_STEPS=25,50,100 BENCH_ADDRS=1000 BENCH_INTERVAL_MS=10000
// BENCH_STEP_S=60 BENCH_AGENT_PROCS=2. BENCH_AUTO_EXPLAIN_MS (off): log, through
// PostgreSQL's auto_explain (ANALYZE, BUFFERS, nested statements), the plan of every
// statement in the bench database slower than that, to the server's log. Needs
// PostgreSQL and Redis (as tests); auto_explain needs a superuser connection.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { createTestDatabase, deleteRedisKeys } from "../test/support/db.ts";
import { killReplica, type Replica } from "../test/support/fleet-processes.ts";
import { startBenchReplicas } from "./lib/sim-fleet.ts";
import { int, machine, max, ms, p50, p95, table } from "./lib/stats.ts";

const list = (name: string, dflt: string) =>
  (process.env[name] ?? dflt).split(",").map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: comma-separated positive integers`);
    return n;
  });
const STEPS = list("BENCH_STEPS", "25,50,100");
const one = (name: string, dflt: string) => list(name, dflt)[0]!;
const ADDRS = one("BENCH_ADDRS", "1000");
const INTERVAL = one("BENCH_INTERVAL_MS", "10000");
const STEP_S = one("BENCH_STEP_S", "60");
const PROCS = one("BENCH_AGENT_PROCS", "2");
const AUTO_EXPLAIN_MS = process.env.BENCH_AUTO_EXPLAIN_MS ? one("BENCH_AUTO_EXPLAIN_MS", "1") : undefined;
const N = Math.max(...STEPS);
const err = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const TICK = 100; // clock ticks per second (/proc/<pid>/stat)

/** CPU seconds (user + system) of a process, 0 when it is gone. */
function cpuOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

interface AgentProc {
  child: ChildProcess;
  lines: string[];
  wake?: () => void;
  out: string;
}
const nextLine = async (p: AgentProc, timeoutMs: number): Promise<string> => {
  const end = Date.now() + timeoutMs;
  while (p.lines.length === 0) {
    if (Date.now() > end) throw new Error(`agent process silent for ${timeoutMs} ms: ${p.out.slice(-2000)}`);
    await new Promise<void>((r) => {
      p.wake = r;
      setTimeout(r, 500);
    });
  }
  return p.lines.shift()!;
};

const machineLine = machine();
const database = await createTestDatabase();
const prefix = `palisade-bench-ingest:${process.pid}:${randomBytes(4).toString("hex")}`;
const replicas: Replica[] = [];
const procs: AgentProc[] = [];
const pgc = new pg.Client({ connectionString: database.url });
let exitCode = 0;
try {
  await pgc.connect();
  if (AUTO_EXPLAIN_MS !== undefined) {
    // Set before the replicas connect: a database's settings apply to sessions opened later.
    const db = pg.escapeIdentifier(database.name);
    for (const [k, v] of [
      ["session_preload_libraries", "auto_explain"],
      ["auto_explain.log_min_duration", String(AUTO_EXPLAIN_MS)],
      ["auto_explain.log_analyze", "on"],
      ["auto_explain.log_buffers", "on"],
      ["auto_explain.log_nested_statements", "on"],
    ])
      await pgc.query(`ALTER DATABASE ${db} SET ${k} = ${pg.escapeLiteral(v!)}`);
    err(`auto_explain on for statements over ${AUTO_EXPLAIN_MS} ms in database ${database.name} (server log)`);
  }
  err(
    `fleet ingest: steps ${STEPS.join(", ")} hosts x ${ADDRS} addresses every ${INTERVAL} ms, ${STEP_S} s each; 2 replicas, ${PROCS} agent processes`,
  );
  const started = await startBenchReplicas(2, database.url, prefix);
  replicas.push(...started.replicas);
  const { api } = started;
  const specs: { name: string; token: string; address: string }[] = [];
  for (let i = 0; i < N; i++) {
    const { json: j } = await api<{ token: string }>("POST", "/v1/enrollment-tokens", { labels: {}, ttlSeconds: 3600 });
    specs.push({
      name: `ing-${String(i).padStart(5, "0")}`,
      token: j.token,
      address: `127.0.0.1:${replicas[i % 2]!.grpcPort}`,
    });
  }
  for (let p = 0; p < PROCS; p++) {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "lib/ingest-agents.ts")], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const proc: AgentProc = { child, lines: [], out: "" };
    child.stderr!.on("data", (b: Buffer) => (proc.out += b.toString()));
    createInterface({ input: child.stdout! }).on("line", (l) => {
      proc.lines.push(l);
      proc.wake?.();
    });
    const mine = specs.filter((_, i) => i % PROCS === p);
    child.stdin!.write(
      `${JSON.stringify({ agents: mine, addresses: ADDRS, intervalMs: INTERVAL, table: "lan", firstIp: 1 })}\n`,
    );
    procs.push(proc);
  }
  for (const p of procs) {
    const m = JSON.parse(await nextLine(p, 600_000)) as { ready?: number };
    if (m.ready === undefined) throw new Error(`agent process: ${JSON.stringify(m)}`);
  }
  err(`${N} agents enrolled and connected`);

  // Backends of this database (the replicas' pools and this client), for their CPU.
  const backends = async () =>
    (await pgc.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).rows.map(
      (r) => r.pid,
    );
  const hostId = (await pgc.query<{ id: string }>("SELECT id FROM hosts LIMIT 1")).rows[0]!.id;
  const copyRows = (secs: number) => async (): Promise<number> => {
    const c = new pg.Client({ connectionString: database.url });
    await c.connect();
    let rows = 0;
    const end = performance.now() + secs * 1000;
    const t0 = performance.now();
    try {
      function* chunks() {
        while (performance.now() < end) {
          const at = new Date().toISOString();
          let s = "";
          for (let k = 0; k < ADDRS; k++)
            s += `${at}\t${hostId}\tcopy\t10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}\t${1000 + k}\t3\t500\t2\n`;
          rows += ADDRS;
          yield s;
        }
      }
      await pipeline(
        Readable.from(chunks()),
        c.query(
          copyFrom(
            "COPY accounting_samples (at, host_id, table_name, address, src_bytes, src_packets, dst_bytes, dst_packets) FROM STDIN",
          ),
        ),
      );
    } finally {
      await c.end();
    }
    return rows / ((performance.now() - t0) / 1000);
  };

  const out: string[][] = [
    [
      "hosts",
      "offered rows/s",
      "acked rows/s",
      "acked/offered",
      "ack lag p50",
      "p95",
      "max",
      "backlog max / end (batches)",
      "CPU s/s: replicas",
      "PostgreSQL",
      "agents",
      "rollup lag max / end",
      "marks waiting max / end",
      "load (1 min, end)",
      "one COPY rows/s (baseline)",
    ],
  ];
  for (const hosts of STEPS) {
    const copyRate = await copyRows(STEP_S / 2)();
    err(`one COPY stream: ${int(copyRate)} rows/s`);
    const pg0 = new Map((await backends()).map((p) => [p, cpuOf(p)]));
    const cpu0 = {
      rep: replicas.reduce((a, r) => a + cpuOf(r.child.pid!), 0),
      ag: procs.reduce((a, p) => a + cpuOf(p.child.pid!), 0),
    };
    const t0 = performance.now();
    // The rollup's lag, sampled while the step runs (a separate connection: pgc is also
    // read at the step's end).
    const lagSamples: { lag: number; marks: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      const c = new pg.Client({ connectionString: database.url });
      await c.connect();
      try {
        while (sampling) {
          const { rows } = await c.query<{ lag: number | null; n: number }>(
            "SELECT extract(epoch FROM now() - min(bucket))::float8 * 1000 AS lag, count(*)::int AS n FROM telemetry_dirty",
          );
          lagSamples.push({ lag: rows[0]!.lag ?? 0, marks: rows[0]!.n });
          await new Promise((r) => setTimeout(r, 2_000));
        }
      } finally {
        await c.end();
      }
    })();
    // Agent i is in process i % PROCS at index floor(i / PROCS).
    procs.forEach((p, k) => {
      const mine: number[] = [];
      for (let i = k; i < hosts; i += PROCS) mine.push(Math.floor(i / PROCS));
      p.child.stdin!.write(`${JSON.stringify({ run: { hosts: mine, ms: STEP_S * 1000 } })}\n`);
    });
    const results = await Promise.all(
      procs.map(
        async (p) =>
          (
            JSON.parse(await nextLine(p, STEP_S * 1000 + 120_000)) as {
              result: {
                sent: number;
                acked: number;
                lags: number[];
                maxBacklog: number;
                backlog: number;
                elapsedMs: number;
              };
            }
          ).result,
      ),
    );
    const secs = (performance.now() - t0) / 1000;
    sampling = false;
    await sampler;
    const lastLag = lagSamples.at(-1) ?? { lag: 0, marks: 0 };
    const lagCol = `${ms(max(lagSamples.map((x) => x.lag)))} / ${ms(lastLag.lag)}`;
    const marksCol = `${int(max(lagSamples.map((x) => x.marks)))} / ${int(lastLag.marks)}`;
    const cpu = {
      rep: (replicas.reduce((a, r) => a + cpuOf(r.child.pid!), 0) - cpu0.rep) / secs,
      // Backends open at the end (a new one counts whole); one that ended meanwhile is
      // lost, so this is a lower bound.
      pg: (await backends()).reduce((a, p) => a + cpuOf(p) - (pg0.get(p) ?? 0), 0) / secs,
      ag: (procs.reduce((a, p) => a + cpuOf(p.child.pid!), 0) - cpu0.ag) / secs,
    };
    const acked = results.reduce((a, r) => a + r.acked, 0);
    const lags = results.flatMap((r) => r.lags);
    const offered = (hosts * ADDRS * 1000) / INTERVAL;
    const ackedRate = (acked * ADDRS) / secs;
    const maxBacklog = results.reduce((a, r) => a + r.maxBacklog, 0);
    const backlog = results.reduce((a, r) => a + r.backlog, 0);
    err(
      `${hosts} hosts: offered ${int(offered)} rows/s, acked ${int(ackedRate)} rows/s, lag p50 ${ms(p50(lags))} p95 ${ms(p95(lags))}, backlog ${maxBacklog}/${backlog}, rollup lag ${lagCol}, marks ${marksCol}, load ${loadavg()[0]!.toFixed(1)}, CPU replicas ${cpu.rep.toFixed(2)} pg ${cpu.pg.toFixed(2)} agents ${cpu.ag.toFixed(2)}`,
    );
    out.push([
      String(hosts),
      int(offered),
      int(ackedRate),
      (ackedRate / offered).toFixed(2),
      lags.length ? ms(p50(lags)) : "-",
      lags.length ? ms(p95(lags)) : "-",
      lags.length ? ms(max(lags)) : "-",
      `${maxBacklog} / ${backlog}`,
      cpu.rep.toFixed(2),
      cpu.pg.toFixed(2),
      cpu.ag.toFixed(2),
      lagCol,
      marksCol,
      loadavg()[0]!.toFixed(1),
      int(copyRate),
    ]);
    // Let what is still in flight finish before the next step.
    await new Promise((r) => setTimeout(r, Math.min(30_000, INTERVAL * 2)));
  }
  const [stored] = (
    await pgc.query<{ n: string }>("SELECT count(*)::text AS n FROM accounting_samples WHERE table_name = 'lan'")
  ).rows;
  console.log(
    "Palisade fleet ingest benchmark (bench/fleet-ingest.ts): simulated agents -> gRPC -> 2 replicas -> PostgreSQL",
  );
  console.log(machineLine);
  console.log(
    `${ADDRS} addresses per host, one batch per host every ${INTERVAL} ms, ${STEP_S} s per step, ${PROCS} agent processes, at most 4 unacknowledged batches per agent`,
  );
  console.log(table(out));
  console.log(`rows stored through the ingest: ${int(Number(stored!.n))}`);
} catch (e) {
  exitCode = 1;
  err(`failed: ${(e as Error).stack ?? String(e)}`);
  for (const r of replicas) err(`replica ${r.name}: ${r.out().slice(-1500)}`);
} finally {
  for (const p of procs) p.child.stdin?.end();
  for (const p of procs)
    if (p.child.exitCode === null && p.child.pid)
      setTimeout(() => p.child.exitCode === null && p.child.kill("SIGKILL"), 5_000).unref();
  for (const r of replicas) await killReplica(r);
  await pgc.end().catch(() => {});
  await deleteRedisKeys(prefix);
  await database.drop();
}
process.exit(exitCode);
