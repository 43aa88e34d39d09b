// A shared port-scan trap hit propagated to N simulated agents (issue 14, "bench"). As in
// bench/fanout.ts the parts are separate processes: two API replicas (`palisade server`)
// and BENCH_AGENT_PROCS processes of simulated agents (bench/lib/trap-agents.ts, grpc-js
// clients with the `bans` capability, half on each replica). Every host runs a version whose
// portScanTrap shares to list "scanners" (set on the hosts' rows). One agent reports a trap
// hit (TrapHits); timed from just before it sends to each agent's BanUpdate carrying the
// address, so the figure covers the report, the share's checks (policy, dedupe, Redis
// claim and rate cap, guard), the ban's transaction and audit, the per-host bus and the
// stream to every agent. Times cross process boundaries on one machine's clock.
//
// Baseline in the same run: an operator's POST /v1/bans of a fresh address to the same N
// hosts, interleaved, timed from the POST to each agent's BanUpdate: the ratio is what the
// trap path adds to the plain ban path.
// Env: BENCH_N (default 500), BENCH_RUNS (default 5), BENCH_AGENT_PROCS (default 4).
// Needs Postgres and Redis (as tests).
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { createDb } from "../src/api/db/client.ts";
import { createTestDatabase, deleteRedisKeys } from "../test/support/db.ts";
import { killReplica, type Replica } from "../test/support/fleet-processes.ts";
import { waitFor } from "../test/support/wait.ts";
import { median, ms, percentile, ratio, table } from "./lib/stats.ts";
import {
  enrollAgents,
  spawnAgentProcesses,
  startBenchReplicas,
  stopAgentProcesses,
  type AgentProcess,
} from "./lib/sim-fleet.ts";

const N = Number(process.env.BENCH_N ?? 500);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const PROCS = Math.max(1, Math.min(N, Number(process.env.BENCH_AGENT_PROCS ?? 4)));
const err = (s: string) => process.stderr.write(s + "\n");
const now = () => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  err(`trap-share: N=${N}, runs=${RUNS}, ${PROCS} agent processes, 2 replica processes`);
  const database = await createTestDatabase();
  const db = createDb(database.url);
  const prefix = `palisade-bench-trap:${process.pid}:${randomBytes(4).toString("hex")}`;
  const replicas: Replica[] = [];
  const procs: AgentProcess[] = [];
  const bannedAt = new Map<string, Map<string, number>>(); // address -> agent -> epoch ms
  const sentAt = new Map<string, number>();
  try {
    const started = await startBenchReplicas(2, database.url, prefix);
    replicas.push(...started.replicas);
    const { api } = started;
    await api("POST", "/v1/rulesets", { name: "fan" });
    const pushed = await api("POST", "/v1/rulesets/fan/versions", {
      policy: {
        chains: { input: { hook: "input", policy: "accept", rules: [] } },
        protections: { portScanTrap: { ports: [139], share: { list: "scanners", ttlSeconds: 3600 } } },
      },
    });
    if (pushed.status !== 201) throw new Error(`push: ${pushed.status} ${JSON.stringify(pushed.json)}`);

    // One-time enrollment tokens, then the agents split over the processes (round robin).
    const specs = await enrollAgents(api, replicas, N);
    spawnAgentProcesses(
      "trap-agents.ts",
      specs,
      PROCS,
      (m) => {
        if (m.ban) {
          let per = bannedAt.get(m.ban.address);
          if (!per) bannedAt.set(m.ban.address, (per = new Map()));
          if (!per.has(m.ban.name)) per.set(m.ban.name, m.ban.at);
        }
        if (m.sent) sentAt.set(m.sent.address, m.sent.at);
      },
      procs,
    );
    const ready = (await Promise.all(procs.map((p) => p.ready))).flat();
    err(`  ${ready.length} agents connected (half to each replica, ${PROCS} processes)`);

    // Every host runs the sharing version (as after a deployment; the share reads the hosts' rows).
    const version = await db.rulesetVersion.findFirstOrThrow({ where: { ruleset: { name: "fan" } } });
    await db.host.updateMany({ data: { appliedVersionId: version.id } });
    let seq = 0;
    const fresh = () => `198.18.${(++seq >> 8) & 255}.${seq & 255}`;
    const all = async (address: string) => {
      await waitFor(() => (bannedAt.get(address)?.size ?? 0) >= N, 180_000, `all ${N} agents banned ${address}`, 10);
      return [...bannedAt.get(address)!.values()];
    };
    /** A trap hit reported by agent 0; ms from its send to each agent's BanUpdate. */
    const trap = async (): Promise<number[]> => {
      const address = fresh();
      procs[0]!.child.stdin!.write(JSON.stringify({ trap: { name: specs[0]!.name, address } }) + "\n");
      const ats = await all(address);
      const t0 = sentAt.get(address)!;
      return ats.map((t) => t - t0);
    };
    /** An operator's ban of a fresh address on the same hosts; ms from the POST to each BanUpdate. */
    const operator = async (): Promise<number[]> => {
      const address = fresh();
      const t0 = now();
      const res = await api("POST", "/v1/bans", {
        list: "scanners",
        addresses: [address],
        ttlSeconds: 3600,
        selector: { labels: { fan: "all" } },
      });
      if (res.status !== 201) throw new Error(`ban: ${res.status} ${JSON.stringify(res.json)}`);
      return (await all(address)).map((t) => t - t0);
    };
    const once = { trap, operator };
    const rows: { base: number[]; fan: number[] }[] = [];
    await once.trap(); // warm-up: caches, JIT, connection pools
    await once.operator();
    for (let r = 0; r < RUNS; r++) {
      const base = await once.operator();
      const fan = await once.trap();
      rows.push({ base, fan });
      err(
        `  run ${r + 1}/${RUNS}: operator ban p99 ${ms(percentile(base, 99))}; trap hit p50 ${ms(percentile(fan, 50))} p99 ${ms(percentile(fan, 99))} p100 ${ms(percentile(fan, 100))}`,
      );
    }
    const med = (pick: (x: { base: number[]; fan: number[] }) => number) => median(rows.map(pick));
    const b = (q: number) => med((x) => percentile(x.base, q));
    const p = (q: number) => med((x) => percentile(x.fan, q));
    process.stdout.write(
      `nproc ${cpus().length}, load average at end ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}\n`,
    );
    process.stdout.write(
      `processes: 2 API replicas (palisade server), ${PROCS} simulated-agent processes, this driver\n`,
    );
    process.stdout.write(`N=${N} agents; time to each agent's BanUpdate; median of ${RUNS} runs\n`);
    process.stdout.write(
      table([
        ["path", "p50", "p99", "p100", "p99 vs baseline"],
        ["operator POST /v1/bans (baseline)", ms(b(50)), ms(b(99)), ms(b(100)), "1.00x"],
        ["trap hit on one host (TrapHits)", ms(p(50)), ms(p(99)), ms(p(100)), ratio(p(99), b(99))],
      ]) + "\n",
    );
  } finally {
    stopAgentProcesses(procs);
    for (const r of replicas) await killReplica(r);
    await db.$disconnect();
    await deleteRedisKeys(prefix);
    await database.drop();
  }
}

await main();
process.exit(0);
