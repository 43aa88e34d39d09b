// Fan-out of one deployment to N simulated agents (issue 4, "bench"): in-process grpc-js
// clients, each holding a Connect stream to one of two API replicas and answering
// DesiredState with ApplyResult applied at once. Timed from the POST /v1/deployments to
// each agent's Confirm (the API recorded "applied" and told the agent), so the figure
// covers REST, the BullMQ job, the Redis offer to the replica holding the stream, the
// claim in Postgres, the DesiredState, the result and its recording.
//
// Baseline in the same run: the same deployment to ONE host (N=1), interleaved with the
// N-host runs so both see the same machine load; the ratio is what fanning out costs.
// Env: BENCH_N (default 500), BENCH_RUNS (default 5). Needs Postgres and Redis (as tests).
import { performance } from "node:perf_hooks";
import { cpus, loadavg } from "node:os";
import { validPolicy } from "../test/support/policies.ts";
import { SimAgent, startFleet, waitFor, type Fleet } from "../test/support/grpc-fleet.ts";
import { median, ms, percentile, ratio, table } from "./lib/stats.ts";

const N = Number(process.env.BENCH_N ?? 500);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const err = (s: string) => process.stderr.write(s + "\n");

async function enrollAll(f: Fleet, n: number): Promise<SimAgent[]> {
  const agents: SimAgent[] = new Array(n);
  let next = 0;
  const workers = Array.from({ length: 16 }, async () => {
    for (let i = next++; i < n; i = next++) {
      agents[i] = await f.agent(`fan-${String(i).padStart(4, "0")}`, { fan: "all", ...(i === 0 ? { baseline: "yes" } : {}) }, { replica: i % 2 });
      if ((i + 1) % 100 === 0) err(`  enrolled ${i + 1}/${n}`);
    }
  });
  await Promise.all(workers);
  return agents;
}

/** One deployment; returns ms from POST to each selected agent's Confirm. */
async function once(f: Fleet, agents: SimAgent[], labels: Record<string, string>): Promise<number[]> {
  const t0 = performance.now();
  const res = await f.t.req("POST", "/v1/deployments", {
    as: "operator",
    body: { ruleset: "fan", version: 1, selector: { labels }, strategy: { canary: 0, batchSize: 10_000, confirmTimeoutSeconds: 60, retries: 0 } },
  });
  if (res.statusCode !== 202) throw new Error(`deploy: ${res.statusCode} ${res.body}`);
  const id = (res.json() as { id: string }).id;
  const targets = new Map((await f.t.db.deploymentTarget.findMany({ where: { deploymentId: id }, select: { id: true, hostId: true } })).map((t) => [t.hostId, t.id]));
  const selected = agents.filter((a) => targets.has(a.hostId));
  await waitFor(() => selected.every((a) => a.confirmedAt.has(targets.get(a.hostId)!)), 180_000, `all ${selected.length} confirmed`, 20);
  await waitFor(async () => (await f.t.db.deployment.findUniqueOrThrow({ where: { id } })).status === "succeeded", 30_000, "deployment succeeded", 50);
  return selected.map((a) => a.confirmedAt.get(targets.get(a.hostId)!)! - t0);
}

async function main(): Promise<void> {
  err(`fanout: N=${N}, runs=${RUNS}`);
  const f = await startFleet({ replicas: 2 });
  try {
    await f.startWorker({ pollMs: 250 });
    await f.startWorker({ pollMs: 250 });
    await f.t.req("POST", "/v1/rulesets", { body: { name: "fan" } });
    await f.t.req("POST", "/v1/rulesets/fan/versions", { body: { policy: validPolicy(443) } });
    const agents = await enrollAll(f, N);
    err(`  ${N} agents connected (half to each replica)`);
    const rows: { base: number[]; fan: number[] }[] = [];
    await once(f, agents, { fan: "all" }); // warm-up: caches, JIT, connection pools
    for (let r = 0; r < RUNS; r++) {
      const base = await once(f, agents, { baseline: "yes" });
      const fan = await once(f, agents, { fan: "all" });
      rows.push({ base, fan });
      err(`  run ${r + 1}/${RUNS}: N=1 ${ms(base[0]!)}; N=${N} p50 ${ms(percentile(fan, 50))} p99 ${ms(percentile(fan, 99))} p100 ${ms(percentile(fan, 100))}`);
    }
    const med = (pick: (x: { base: number[]; fan: number[] }) => number) => median(rows.map(pick));
    const b = med((x) => x.base[0]!);
    const p = (q: number) => med((x) => percentile(x.fan, q));
    process.stdout.write(`nproc ${cpus().length}, load average at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
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
    await f.close();
  }
}

await main();
process.exit(0);
