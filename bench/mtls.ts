// The cost of mutual TLS on the agent channel: N simulated agents (in-process grpc-js
// clients, half on each of two API replicas) connecting all at once, and the fan-out of one
// deployment to all of them, with mutual TLS and with plaintext. Both fleets live in this
// process and the runs alternate, so both see the same machine load; the plaintext fleet
// is the baseline of every ratio.
//
// Connect: every agent drops its channel, then all N open a new one (TCP + TLS handshake
// with the client certificate + Connect stream + Hello) at once; timed until each agent's
// heartbeat came back (the server holds the stream). Fan-out: as bench/fanout.ts, POST
// /v1/deployments to each agent's Confirm.
// Env: BENCH_N (default 500), BENCH_RUNS (default 5), BENCH_ONLY=plain|tls (one fleet, to
// chase a fault), BENCH_LOG=file (the servers' JSON log). Needs Postgres and Redis (as tests).
//
// Agents and servers share this process's event loop. When it stalls longer than the
// server's keepalive timeout (10 s) with a ping in flight, grpc-js drops the connection
// and its streams end (a real agent reconnects; a simulated one does not). So each phase
// prints the loop's worst delay, and streams that ended are counted, never waited on.
import { createWriteStream } from "node:fs";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { Log } from "../src/api/log.ts";
import { cpus, loadavg } from "node:os";
import { validPolicy } from "../test/support/policies.ts";
import { startFleet, waitFor, type Fleet, type SimAgent } from "../test/support/grpc-fleet.ts";
import { median, ms, percentile, ratio, table } from "./lib/stats.ts";

const N = Number(process.env.BENCH_N ?? 500);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const err = (s: string) => process.stderr.write(s + "\n");
// As the real agent: a connect that fails or gets no heartbeat echo in 30 s is retried after
// an exponential, jittered delay (0.5 s doubling to 10 s). Retries are counted and reported.
const RETRY = { attemptMs: 30_000, initialMs: 500, maxMs: 10_000 };
const retries = (agents: SimAgent[]) => agents.reduce((n, a) => n + a.retries, 0);
// BENCH_LOG=file: the servers' log as JSON lines (pino's shape), to see why a stream ended.
const logFile = process.env.BENCH_LOG ? createWriteStream(process.env.BENCH_LOG) : undefined;
const logOf = (fleet: string): Log | undefined => {
  if (!logFile) return undefined;
  const line = (level: string) => (obj: object, msg?: string) =>
    logFile.write(`${JSON.stringify({ time: Date.now(), level, fleet, msg, ...obj })}\n`);
  return { debug() {}, info: line("info"), warn: line("warn"), error: line("error") };
};
// The event loop's delay: agents and servers share this process, so a long stall delays both.
const loopDelay = monitorEventLoopDelay({ resolution: 20 });
loopDelay.enable();
const stall = () => {
  const max = loopDelay.max / 1e6;
  loopDelay.reset();
  return `event loop delay max ${ms(max)}`;
};

async function fleetOf(tls: boolean): Promise<{ f: Fleet; agents: SimAgent[] }> {
  const log = logOf(tls ? "mtls" : "plain");
  const f = await startFleet({ replicas: 2, tls, ...(log && { log }) });
  await f.startWorker({ pollMs: 250 });
  await f.startWorker({ pollMs: 250 });
  await f.t.req("POST", "/v1/rulesets", { body: { name: "fan" } });
  await f.t.req("POST", "/v1/rulesets/fan/versions", { body: { policy: validPolicy(443) } });
  const agents: SimAgent[] = new Array(N);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < N; i = next++)
        agents[i] = await f.agent(
          `fan-${String(i).padStart(4, "0")}`,
          { fan: "all" },
          { replica: i % 2, timeoutMs: 300_000, retry: RETRY },
        );
    }),
  );
  err(`  ${tls ? "mTLS" : "plaintext"}: ${N} agents enrolled and connected (${retries(agents)} connect retries)`);
  return { f, agents };
}

/** All agents reconnect at once; ms from the start to each one's first heartbeat echo. */
async function reconnectAll(
  f: Fleet,
  agents: SimAgent[],
): Promise<{ each: number[]; all: number; retries: number; lost: number }> {
  // Streams that ended since the last phase (this fleet idled while the other was measured).
  const lost = agents.filter((a) => a.endedWith).length;
  for (const a of agents) a.close();
  // The old streams are gone on the servers first: no new stream races its host's old one.
  await waitFor(() => f.replicas.every((r) => r.sessions().size === 0), 60_000, "old streams to end", 20);
  const before = retries(agents);
  const t0 = performance.now();
  const each = await Promise.all(
    agents.map(async (a) => (await a.connect({ timeoutMs: 300_000, retry: RETRY }), performance.now() - t0)),
  );
  return { each, all: performance.now() - t0, retries: retries(agents) - before, lost };
}

async function deployOnce(f: Fleet, agents: SimAgent[]): Promise<number[]> {
  const t0 = performance.now();
  const res = await f.t.req("POST", "/v1/deployments", {
    as: "operator",
    body: {
      ruleset: "fan",
      version: 1,
      selector: { labels: { fan: "all" } },
      strategy: { canary: 0, batchSize: 10_000, confirmTimeoutSeconds: 60, retries: 0 },
    },
  });
  if (res.statusCode !== 202) throw new Error(`deploy: ${res.statusCode} ${res.body}`);
  const id = (res.json() as { id: string }).id;
  const targets = new Map(
    (await f.t.db.deploymentTarget.findMany({ where: { deploymentId: id }, select: { id: true, hostId: true } })).map(
      (t) => [t.hostId, t.id],
    ),
  );
  await waitFor(
    () => {
      // A simulated agent does not reopen a stream that ended (a real one does and resends
      // its result): fail now, saying so, instead of waiting out the deadline.
      const ended = agents.filter((a) => a.endedWith).length;
      if (ended) throw new Error(`${ended} agents' streams ended during the fan-out`);
      return agents.every((a) => a.confirmedAt.has(targets.get(a.hostId)!));
    },
    180_000,
    `all ${agents.length} confirmed`,
    20,
  ).catch(async (e: Error) => {
    // Say where it stands: how many confirmed, got their DesiredState, and the targets' states.
    const confirmed = agents.filter((a) => a.confirmedAt.has(targets.get(a.hostId)!)).length;
    const desired = agents.filter((a) => a.desired.some((d) => d.targetId === targets.get(a.hostId))).length;
    const states = await f.t.db.deploymentTarget.groupBy({ by: ["status"], where: { deploymentId: id }, _count: true });
    const streams = f.replicas.map((r) => r.sessions().size);
    // And how the agents' own streams ended, if they did (the client's view).
    const ends = new Map<string, number>();
    for (const a of agents)
      if (a.endedWith) {
        const k = `${a.endedWith.code} ${a.endedWith.details}`;
        ends.set(k, (ends.get(k) ?? 0) + 1);
      }
    throw new Error(
      `${e.message}: ${confirmed} confirmed, ${desired} got their DesiredState, targets ${JSON.stringify(states.map((s) => [s.status, s._count]))}, streams per replica ${streams.join("/")}, agents' streams ended ${JSON.stringify([...ends])}; ${stall()}`,
    );
  });
  await waitFor(
    async () => (await f.t.db.deployment.findUniqueOrThrow({ where: { id } })).status === "succeeded",
    30_000,
    "deployment succeeded",
    50,
  );
  return agents.map((a) => a.confirmedAt.get(targets.get(a.hostId)!)! - t0);
}

interface Run {
  lost: number;
  retries: number;
  connectAll: number;
  connectP50: number;
  connectP99: number;
  fanP50: number;
  fanP99: number;
}

async function main(): Promise<void> {
  err(`mtls: N=${N}, runs=${RUNS}`);
  // BENCH_ONLY=plain|tls runs one fleet (to chase a fault; no ratio then).
  const only = process.env.BENCH_ONLY;
  const plain = only === "tls" ? undefined : await fleetOf(false);
  const tls = only === "plain" ? undefined : await fleetOf(true);
  try {
    const rows: Record<"plain" | "tls", Run[]> = { plain: [], tls: [] };
    // Warm-up of both: caches, JIT, pools.
    const fleets = (
      [
        ["plain", plain],
        ["tls", tls],
      ] as const
    ).flatMap(([name, x]) => (x ? [[name, x] as const] : []));
    for (const [name, x] of fleets) {
      const c = await reconnectAll(x.f, x.agents);
      err(
        `  warm-up ${name}: ${c.lost} streams had ended; reconnect all ${ms(c.all)} (${c.retries} retries), ${stall()}`,
      );
      const fan = await deployOnce(x.f, x.agents);
      err(`  warm-up ${name}: fan-out p99 ${ms(percentile(fan, 99))}, ${stall()}`);
    }
    for (let r = 0; r < RUNS; r++) {
      for (const [name, x] of fleets) {
        const c = await reconnectAll(x.f, x.agents);
        const fan = await deployOnce(x.f, x.agents);
        const run = {
          lost: c.lost,
          retries: c.retries,
          connectAll: c.all,
          connectP50: percentile(c.each, 50),
          connectP99: percentile(c.each, 99),
          fanP50: percentile(fan, 50),
          fanP99: percentile(fan, 99),
        };
        rows[name].push(run);
        err(
          `  run ${r + 1}/${RUNS} ${name}: ${run.lost} streams had ended; connect all ${ms(run.connectAll)} (p99 ${ms(run.connectP99)}, ${run.retries} retries); fan-out p50 ${ms(run.fanP50)} p99 ${ms(run.fanP99)}; ${stall()}`,
        );
      }
    }
    const med = (name: "plain" | "tls", k: keyof Run) => median(rows[name].map((x) => x[k]));
    process.stdout.write(
      `nproc ${cpus().length}, load average at end ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}\n`,
    );
    process.stdout.write(`${N} agents on 2 replicas, median of ${RUNS} alternating runs\n`);
    const line = (label: string, k: keyof Run) => [
      label,
      ms(med("plain", k)),
      ms(med("tls", k)),
      ratio(med("tls", k), med("plain", k)),
    ];
    process.stdout.write(
      table([
        ["", "plaintext", "mutual TLS", "mTLS vs plaintext"],
        line(`all ${N} connected`, "connectAll"),
        line("connect p50", "connectP50"),
        line("connect p99", "connectP99"),
        line("fan-out p50 (POST to Confirm)", "fanP50"),
        line("fan-out p99", "fanP99"),
        ["connect retries (median)", String(med("plain", "retries")), String(med("tls", "retries")), ""],
        ["streams ended while idle (median)", String(med("plain", "lost")), String(med("tls", "lost")), ""],
      ]) + "\n",
    );
  } finally {
    await plain?.f.close();
    await tls?.f.close();
  }
}

await main();
process.exit(0);
