// Fan-out of one deployment to N simulated agents (issue 4, "bench"). The parts run as
// separate processes, as in production: two API replicas (`palisade server` child
// processes: REST, agent gRPC and the deploy worker each) and BENCH_AGENT_PROCS processes
// of simulated agents (bench/lib/fanout-agents.ts: grpc-js clients, half on each
// replica, answering DesiredState with "applied" at once). This process only posts the
// deployment and collects the agents' reports. Timed from the POST /v1/deployments to
// each agent's Confirm (the API recorded "applied" and told the agent), so the figure
// covers REST, the BullMQ job, the Redis offer to the replica holding the stream, the
// claim in Postgres, the DesiredState, the result and its recording. Times cross process
// boundaries on one machine's clock (performance.timeOrigin + now()).
//
// Baseline in the same run: the same deployment to ONE host (N=1), interleaved with the
// N-host runs so both see the same machine load; the ratio is what fanning out costs.
// Env: BENCH_N (default 500), BENCH_RUNS (default 5), BENCH_AGENT_PROCS (default 4).
// Needs Postgres and Redis (as tests).
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { createDb } from "../src/api/db/client.ts";
import { createTestDatabase, deleteRedisKeys } from "../test/support/db.ts";
import { killReplica, type Replica } from "../test/support/fleet-processes.ts";
import { validPolicy } from "../test/support/policies.ts";
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
  err(`fanout: N=${N}, runs=${RUNS}, ${PROCS} agent processes, 2 replica processes`);
  const database = await createTestDatabase();
  const db = createDb(database.url);
  const prefix = `palisade-bench:${process.pid}:${randomBytes(4).toString("hex")}`;
  const replicas: Replica[] = [];
  const procs: AgentProcess[] = [];
  const confirmedAt = new Map<string, number>(); // targetId -> epoch ms
  try {
    const started = await startBenchReplicas(2, database.url, prefix);
    replicas.push(...started.replicas);
    const { api } = started;
    await api("POST", "/v1/rulesets", { name: "fan" });
    await api("POST", "/v1/rulesets/fan/versions", { policy: validPolicy(443) });

    // One-time enrollment tokens, then the agents split over the processes (round robin).
    const specs = await enrollAgents(api, replicas, N);
    spawnAgentProcesses(
      "fanout-agents.ts",
      specs,
      PROCS,
      (m) => {
        if (m.confirm) confirmedAt.set(m.confirm.targetId, m.confirm.at);
      },
      procs,
    );
    const ready = (await Promise.all(procs.map((p) => p.ready))).flat();
    err(`  ${ready.length} agents connected (half to each replica, ${PROCS} processes)`);

    /** One deployment; returns ms from POST to each selected agent's Confirm. */
    const once = async (labels: Record<string, string>): Promise<number[]> => {
      const t0 = now();
      const res = await api("POST", "/v1/deployments", {
        ruleset: "fan",
        version: 1,
        selector: { labels },
        strategy: { canary: 0, batchSize: 10_000, confirmTimeoutSeconds: 60, retries: 0 },
      });
      if (res.status !== 202) throw new Error(`deploy: ${res.status} ${JSON.stringify(res.json)}`);
      const id = String(res.json.id);
      const targets = (await db.deploymentTarget.findMany({ where: { deploymentId: id }, select: { id: true } })).map(
        (t) => t.id,
      );
      await waitFor(() => targets.every((t) => confirmedAt.has(t)), 180_000, `all ${targets.length} confirmed`, 20);
      await waitFor(
        async () => (await db.deployment.findUniqueOrThrow({ where: { id } })).status === "succeeded",
        30_000,
        "deployment succeeded",
        50,
      );
      return targets.map((t) => confirmedAt.get(t)! - t0);
    };
    const rows: { base: number[]; fan: number[] }[] = [];
    await once({ fan: "all" }); // warm-up: caches, JIT, connection pools
    for (let r = 0; r < RUNS; r++) {
      const base = await once({ baseline: "yes" });
      const fan = await once({ fan: "all" });
      rows.push({ base, fan });
      err(
        `  run ${r + 1}/${RUNS}: N=1 ${ms(base[0]!)}; N=${N} p50 ${ms(percentile(fan, 50))} p99 ${ms(percentile(fan, 99))} p100 ${ms(percentile(fan, 100))}`,
      );
    }
    const med = (pick: (x: { base: number[]; fan: number[] }) => number) => median(rows.map(pick));
    const b = med((x) => x.base[0]!);
    const p = (q: number) => med((x) => percentile(x.fan, q));
    process.stdout.write(
      `nproc ${cpus().length}, load average at end ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}\n`,
    );
    process.stdout.write(
      `processes: 2 API replicas (palisade server), ${PROCS} simulated-agent processes, this driver\n`,
    );
    process.stdout.write(`one deployment, time from POST to agents' Confirm; median of ${RUNS} runs\n`);
    process.stdout.write(
      table([
        ["fan-out", "50% applied", "99% applied", "100% applied", "100% vs N=1"],
        ["N=1 (baseline)", ms(b), ms(b), ms(b), "1.00x"],
        [`N=${N}`, ms(p(50)), ms(p(99)), ms(p(100)), ratio(p(100), b)],
      ]) + "\n",
    );
    process.stdout.write(`per-agent cost at N=${N}: ${ms(p(100) / N)} (100% time / N)\n`);
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
