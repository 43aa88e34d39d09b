// render-worker: what rendering a DesiredState in the agent's worker thread
// (src/agent/policy-worker.ts) costs against rendering it in place, as the agent did
// before the worker (bench/footprint.ts has why: the resting agent never holds zod's
// policy schema and the compiler). For the README's small policy and a 10k-rule one:
//
//   in place   renderDesired (src/agent/render.ts) in this process, its code already warm
//              (what a long-running agent that had rendered before did)
//   cold       a new worker from the built file (dist/agent/palisade-agent-render.cjs):
//              thread and isolate start, the bundle parsed, zod's schema built, then the
//              render (an apply after the worker idled out: the agent's usual case)
//   warm       a second render on that worker (an apply within POLICY_WORKER_IDLE_MS of
//              the previous request: the render right after its facts, a rollout's next version)
//
// Median wall time and CPU (this process's user + sys: every thread, the worker's included)
// over BENCH_RUNS runs, interleaved. `npm run build` first. The result crosses the thread
// boundary as a structured clone (text and compiled tables), which the timings include.
import { Worker } from "node:worker_threads";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { renderDesired } from "../src/agent/render.ts";
import { parse as parseYaml } from "yaml";
import { linearRules } from "./lib/policies.ts";
import { machine, median, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const ROOT = join(import.meta.dirname, "..");
const WORKER = join(ROOT, "dist/agent/palisade-agent-render.cjs");
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const failsafe = { apiAddresses: ["192.0.2.10"], apiPort: 50051 };

interface Sample {
  wallMs: number;
  cpuMs: number;
}

async function measure(fn: () => Promise<unknown> | unknown): Promise<Sample> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { wallMs: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
}

function ask(w: Worker, policyJson: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    w.once("message", (m: { ok: boolean; result: { ok?: boolean }; error?: string }) =>
      m.ok && m.result.ok ? resolve(m.result) : reject(new Error(m.error ?? JSON.stringify(m.result))),
    );
    w.postMessage({ id: 1, op: "render", policyJson, failsafe });
  });
}

if (!existsSync(WORKER)) {
  console.error("dist/agent/palisade-agent-render.cjs is missing: run `npm run build` first");
  process.exit(1);
}
console.log(`render-worker — ${machine()}`);
console.log(NOISE_NOTE);
const policies: [string, string][] = [
  ["small.yaml", JSON.stringify(parseYaml(readFileSync(join(ROOT, "bench/fixtures/small.yaml"), "utf8")))],
  ["10k linear rules", JSON.stringify(linearRules(10_000))],
];
const rows = [["policy", "way", "wall (median)", "CPU (median)", "CPU x in place"]];
for (const [name, json] of policies) {
  renderDesired(json, failsafe); // warm the in-place code, as in an agent that rendered before
  const s: Record<"inPlace" | "cold" | "warm", Sample[]> = { inPlace: [], cold: [], warm: [] };
  for (let i = 0; i < RUNS; i++) {
    s.inPlace.push(await measure(() => renderDesired(json, failsafe)));
    let w: Worker | undefined;
    s.cold.push(
      await measure(async () => {
        // As the agent starts it (policy-worker.ts): no --import tsx from this process.
        w = new Worker(new URL(`file://${WORKER}`), { execArgv: [] });
        await ask(w, json);
      }),
    );
    s.warm.push(await measure(() => ask(w!, json)));
    await w!.terminate();
  }
  const base = median(s.inPlace.map((x) => x.cpuMs));
  for (const [way, xs] of Object.entries(s)) {
    const cpu = median(xs.map((x) => x.cpuMs));
    rows.push([
      name,
      way,
      `${median(xs.map((x) => x.wallMs)).toFixed(0)} ms`,
      `${cpu.toFixed(0)} ms`,
      ratio(cpu, base),
    ]);
  }
}
console.log(`\n${RUNS} runs each, interleaved\n${table(rows)}`);
