// agent-apply: CPU the agent spends on an apply (issue 11: "agent CPU for a 10k-rule apply
// <= 1.5x raw nft -f of the same text"), beside raw `nft -f FILE` of the same rendered text
// from the same starting state, measured in the same run.
//
// Transitions: small -> 10k, 10k -> small, 10k -> 10k with one rule changed (small =
// bench/fixtures/small.yaml, 10k = 10,000 linear saddr drop rules). Per run and transition,
// in a throwaway namespace with the starting policy loaded (untimed):
//   agent   a `node` (the shipped unit's flags and MALLOC_ settings) runs what the agent
//           runs for a DesiredState: renderDesired (validate + compile) and Applier.safeApply with the real driver
//           (snapshot, incremental plan, nft -f; confirmed at once). Two starting points:
//           "running": the same process applied the starting policy itself (a running
//           agent, which knows what it last applied and does not list the kernel);
//           "restarted": a fresh process (no known state: the snapshot lists the kernel).
//           CPU = utime + stime of the process and its reaped children (nft, ip) from
//           /proc/self/stat, around those two steps only (not node's start-up).
//   raw     `ip netns exec NS nft -f FILE` of the text the agent rendered, CPU from the
//           same counters of a small waiting process. That text deletes and re-adds the
//           table, so raw does the kernel work of the agent's transaction (flush + load).
// CPU clock: each child (agent or raw) moves itself into a cgroup of its own (cgroup v1
// cpuacct, pal<pid>c<k>, removed when it exits) and reads cpuacct.usage, nanoseconds of
// every thread and child process in it; /proc's counters are 10 ms ticks, too coarse for a
// 10 ms raw load (1.5x of it is 15 ms). Without a writable cpuacct hierarchy: the ticks.
//   whole   the agent's whole handling of the DesiredState as src/agent/main.ts wires it
//           (bench/lib/agent-handler.ts, bundled here as the agent is): the spaKnock facts
//           of both versions and the render in the agent's PolicyWorker thread, started
//           from the built dist/agent/palisade-agent-render.cjs as the shipped agent
//           starts it (a new worker: the agent stops it once a render is answered), then
//           ApplyPipeline.apply: pending.json, safeApply, the Confirm, the drift baseline
//           (one listing of the Palisade tables), applied.json. A running agent: the same
//           process handled the starting policy first, and its worker was gone before the
//           timed one. Not in it: the applier's kernel hooks (telemetry, condition sets).
// BENCH_BASELINE=REV (a git revision): the whole column also for REV's sources, in the same
// runs (a change measured against its baseline). Medians of BENCH_RUNS (default 5); ratios agent/raw. Needs root, and `npm run build`
// (the whole column runs the built render worker).
// Usage: npm run bench -- bench/agent-apply.ts
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { parse as parseYaml } from "yaml";
import { createLab } from "../test/support/netns.ts";
import { unitAllocatorEnv, unitNodeFlags } from "../test/support/unit-privileges.ts";
import { linearRules } from "./lib/policies.ts";
import { note } from "./lib/progress.ts";
import { procStatCpuMs, TICK_MS } from "./lib/proc-cpu.ts";
import { machine, median, ms, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const ROOT = join(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CPUACCT = "/sys/fs/cgroup/cpuacct";
const SETTLE = process.env.BENCH_SETTLE !== "0";

/**
 * Resolves once no thread of this process but the main one is runnable (state R in
 * /proc/self/task/T/stat) at two polls in a row, 10 ms apart (at most 2 s). V8 finishes
 * optimizing what a step made hot, and part of its GC, on its own threads after the step
 * returns: TurboFan compiling the validator and the compiler after a render took 10-80 ms of
 * CPU on those threads in the apply's window (perf, 2026-12-04). Each step is timed until its
 * process is quiet, so that work counts in the step that caused it. A thread waiting for a
 * CPU is R too, so a loaded machine does not end the wait early. BENCH_SETTLE=0: no wait.
 */
async function quiet(): Promise<void> {
  if (!SETTLE) return;
  const main = String(process.pid);
  for (let i = 0, calm = 0; i < 200 && calm < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
    const busy = readdirSync("/proc/self/task").some((t) => {
      if (t === main) return false;
      const st = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
      return st[st.lastIndexOf(")") + 2] === "R";
    });
    calm = busy ? 0 : calm + 1;
  }
}

/**
 * CPU of this process and its children, ms: its cgroup's cpuacct.usage when the parent gave
 * it one (BENCH_CGROUP: the process joins it here), else fields 14-17 of /proc/self/stat
 * (itself and its reaped children). The raw case's waiting process runs RAW_CPU, the same
 * as text.
 */
function cpuClock(): () => number {
  const cg = process.env.BENCH_CGROUP;
  if (cg) {
    writeFileSync(join(cg, "cgroup.procs"), String(process.pid));
    return () => Number(readFileSync(join(cg, "cpuacct.usage"), "utf8")) / 1e6;
  }
  return () => {
    const c = procStatCpuMs();
    return c.own + c.children;
  };
}
const RAW_CPU = `(() => {
  const fs = require("node:fs"); const cg = process.env.BENCH_CGROUP;
  if (cg) { fs.writeFileSync(cg + "/cgroup.procs", String(process.pid)); return () => Number(fs.readFileSync(cg + "/cpuacct.usage", "utf8")) / 1e6; }
  return () => { const f = fs.readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" "); return (+f[11] + +f[12] + +f[13] + +f[14]) * ${TICK_MS}; };
})()`;

/** A fresh cpuacct cgroup for one child, or undefined (no writable cgroup v1 cpuacct). */
let cgroups = 0;
let cgroupClock = false;
function newCgroup(): string | undefined {
  if (process.env.BENCH_TICKS === "1") return undefined;
  const dir = join(CPUACCT, `pal${process.pid}c${cgroups++}`);
  try {
    mkdirSync(dir);
    cgroupClock = true;
    return dir;
  } catch {
    return undefined;
  }
}
const dropCgroup = (dir: string | undefined) => {
  try {
    if (dir) rmdirSync(dir);
  } catch {
    // A process left in it (a child killed on timeout): the error at hand says more.
  }
};

interface Sample {
  renderMs: number;
  applyMs: number;
  mode: string;
}

/**
 * Child: render + safeApply the policy in `file`; prints {renderMs, applyMs, mode}. The
 * rendered text goes to `textOut`. With `fromFile`, the same applier first applies that
 * policy, untimed (a running agent's previous version).
 */
async function child(ns: string, file: string, textOut: string, fromFile?: string): Promise<void> {
  const cpuMs = cpuClock();
  const { renderDesired } = await import("../src/agent/render.ts");
  const { Applier } = await import("../src/agent/apply.ts");
  const { memoryLog } = await import("../src/runtime/log.ts");
  const { nftDriver } = await import("../src/engine/driver/index.ts");
  const applier = new Applier(nftDriver({ netns: ns, timeoutMs: 120_000 }), memoryLog("error"));
  const render = (f: string) => {
    const r = renderDesired(readFileSync(f, "utf8"), { apiAddresses: ["127.0.0.1"], apiPort: 50051 });
    if (!r.ok) throw new Error(r.error);
    return r;
  };
  const applyIt = async (r: { text: string; tables: import("../src/engine/index.ts").TableDefinition[] }) => {
    const out = await applier.safeApply({
      text: r.text,
      tables: r.tables,
      confirmTimeoutMs: 1000,
      confirmed: async () => true,
    });
    if (out.status !== "applied") throw new Error(`apply: ${JSON.stringify(out)}`);
    return out;
  };
  if (fromFile) await applyIt(render(fromFile));
  await quiet();
  const c0 = cpuMs();
  const r = render(file);
  await quiet();
  const c1 = cpuMs();
  const out = await applyIt(r);
  await quiet();
  const c2 = cpuMs();
  writeFileSync(textOut, r.text);
  process.stdout.write(JSON.stringify({ renderMs: c1 - c0, applyMs: c2 - c1, mode: out.mode }) + "\n");
}

interface WholeSample {
  /** The whole handling, settled. */
  wholeMs: number;
  /** From its start to the render's answer (facts, worker start, render; no settle). */
  toRenderedMs: number;
  /** From the render's answer to APPLYING (pending.json, safeApply up to the kernel holding it). */
  toApplyingMs: number;
  workers: number;
}

/**
 * Child: a running agent (bench/lib/agent-handler.ts from `bundle`) handles the policy in
 * `fromFile` (untimed), waits until its render worker is gone, then handles `file`, timed.
 */
async function wholeChild(ns: string, file: string, fromFile: string, bundle: string): Promise<void> {
  const cpuMs = cpuClock();
  const { agentHandler } = (await import(pathToFileURL(bundle).href)) as typeof import("./lib/agent-handler.ts");
  const state = mkdtempSync(join(tmpdir(), "palisade-bench-agent-state-"));
  try {
    const at = { rendered: 0, applying: 0 };
    const h = await agentHandler(ns, state, (k) => (at[k] = cpuMs()));
    await h.handle(readFileSync(fromFile, "utf8"));
    while (h.workerRunning) await new Promise((r) => setTimeout(r, 20));
    const before = h.workersStarted;
    await quiet();
    const c0 = cpuMs();
    await h.handle(readFileSync(file, "utf8"));
    await quiet();
    const c1 = cpuMs();
    const sample: WholeSample = {
      wholeMs: c1 - c0,
      toRenderedMs: at.rendered - c0,
      toApplyingMs: at.applying - at.rendered,
      workers: h.workersStarted - before,
    };
    await h.close();
    process.stdout.write(JSON.stringify(sample) + "\n");
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

/**
 * bench/lib/agent-handler.ts bundled as the agent is, starting the built render worker.
 * `root`: the sources to bundle (a baseline revision's, BENCH_BASELINE), else this tree's.
 */
async function bundleHandler(dir: string, root = ROOT, name = "agent-handler"): Promise<string> {
  const worker = join(ROOT, "dist/agent/palisade-agent-render.cjs");
  try {
    readFileSync(worker);
  } catch {
    throw new Error("dist/agent/palisade-agent-render.cjs is missing: run `npm run build` first");
  }
  const out = join(dir, `${name}.mjs`);
  await build({
    absWorkingDir: root,
    entryPoints: [join(root, "bench/lib/agent-handler.ts")],
    outfile: out,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
    minifyWhitespace: true,
    minifySyntax: true,
    banner: {
      js: 'import { createRequire as __palisadeCreateRequire } from "node:module";\nconst require = __palisadeCreateRequire(import.meta.url);',
    },
    define: { __AGENT_RENDER_WORKER__: JSON.stringify(pathToFileURL(worker).href) },
  });
  return out;
}

async function main(): Promise<void> {
  const host = machine(); // the load average before the runs, as its text says
  const lab = createLab();
  const dir = mkdtempSync(join(tmpdir(), "palisade-bench-agent-apply-"));
  const unit = readFileSync(join(ROOT, "deploy/palisade-agent.service"), "utf8");
  const flags = unitNodeFlags(unit);
  const allocator = unitAllocatorEnv(unit);
  try {
    const ns = await lab.addNamespace();
    const small = parseYaml(readFileSync(join(ROOT, "bench/fixtures/small.yaml"), "utf8"));
    const big = linearRules(10_000);
    const bigChanged = linearRules(10_000);
    (bigChanged.chains!.input!.rules![5_000] as { action: string }).action = "accept";
    const docs = { small, big, bigChanged } as Record<string, unknown>;
    for (const [k, d] of Object.entries(docs)) writeFileSync(join(dir, `${k}.json`), JSON.stringify(d));
    const transitions: [string, string, string][] = [
      ["small -> 10k", "small", "big"],
      ["10k -> small", "big", "small"],
      ["10k -> 10k, one rule changed", "big", "bigChanged"],
    ];
    const bundle = await bundleHandler(dir);
    // BENCH_BASELINE=REV: the whole column also for that revision's agent (its src/ and
    // bench/lib, bundled the same way, with this tree's built render worker), in the same runs.
    const baseRev = process.env.BENCH_BASELINE;
    let baseBundle: string | undefined;
    if (baseRev) {
      const tree = join(dir, "baseline");
      mkdirSync(tree);
      const tar = spawnSync("bash", [
        "-c",
        `git -C "$1" archive "$2" src bench/lib package.json | tar -x -C "$3"`,
        "-",
        ROOT,
        baseRev,
        tree,
      ]);
      if (tar.status !== 0) throw new Error(`BENCH_BASELINE=${baseRev}: ${tar.stderr}`);
      symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
      baseBundle = await bundleHandler(dir, tree, "agent-handler-baseline");
    }
    const runChild = <T = Sample>(doc: string, from?: string, whole?: string): T => {
      const cg = newCgroup();
      const args = whole
        ? ["--whole", ns, join(dir, `${doc}.json`), join(dir, `${from}.json`), whole]
        : [
            "--child",
            ns,
            join(dir, `${doc}.json`),
            join(dir, `${doc}.nft`),
            ...(from ? [join(dir, `${from}.json`)] : []),
          ];
      const r = spawnSync(process.execPath, [...flags, "--import", "tsx", import.meta.filename, ...args], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 300_000,
        env: { ...process.env, ...allocator, BENCH_CGROUP: cg ?? "" },
      });
      dropCgroup(cg);
      if (r.status !== 0) throw new Error(`agent child (${doc}) exited ${r.status}: ${r.stderr.slice(-2000)}`);
      return JSON.parse(r.stdout.trim().split("\n").pop()!) as T;
    };
    const reset = async (from: string) => {
      await lab.nft(ns, ["flush", "ruleset"], undefined, { timeoutMs: 60_000 });
      runChild(from); // the starting state, through the agent itself (untimed)
    };
    const rows = [
      [
        "transition",
        "whole, running agent",
        "whole / raw",
        ...(baseRev ? [`whole, ${baseRev}`, `${baseRev} / raw`] : []),
        "render",
        "apply, running agent",
        "apply, restarted agent",
        "raw nft -f FILE",
        "running / raw",
        "restarted / raw",
        "(render + running) / raw",
        "plan",
      ],
    ];
    for (const [label, from, to] of transitions) {
      const running: Sample[] = [];
      const restarted: Sample[] = [];
      const raw: number[] = [];
      const whole: WholeSample[] = [];
      const baseline: WholeSample[] = [];
      for (let i = 0; i < RUNS; i++) {
        note(`${label}: run ${i + 1}/${RUNS}`);
        await lab.nft(ns, ["flush", "ruleset"], undefined, { timeoutMs: 60_000 });
        whole.push(runChild<WholeSample>(to, from, bundle));
        if (baseBundle) {
          await lab.nft(ns, ["flush", "ruleset"], undefined, { timeoutMs: 60_000 });
          baseline.push(runChild<WholeSample>(to, from, baseBundle));
        }
        await lab.nft(ns, ["flush", "ruleset"], undefined, { timeoutMs: 60_000 });
        running.push(runChild(to, from));
        await reset(from);
        restarted.push(runChild(to));
        await reset(from);
        const rawCg = newCgroup();
        const r = spawnSync(
          process.execPath,
          [
            "-e",
            `
          const { spawnSync } = require("node:child_process"); const fs = require("node:fs");
          const cpu = ${RAW_CPU};
          const c0 = cpu(); const r = spawnSync("ip", ["netns", "exec", ${JSON.stringify(ns)}, "nft", "-f", ${JSON.stringify(join(dir, `${to}.nft`))}], { stdio: "inherit" });
          if (r.status !== 0) process.exit(1); process.stdout.write(String(cpu() - c0));`,
          ],
          { encoding: "utf8", timeout: 300_000, env: { ...process.env, BENCH_CGROUP: rawCg ?? "" } },
        );
        dropCgroup(rawCg);
        if (r.status !== 0) throw new Error(`raw nft -f exited ${r.status}: ${r.stderr}`);
        raw.push(Number(r.stdout));
      }
      const rm = median([...running, ...restarted].map((s) => s.renderMs));
      const am = median(running.map((s) => s.applyMs));
      const cm = median(restarted.map((s) => s.applyMs));
      const raw1 = median(raw);
      const wm = median(whole.map((s) => s.wholeMs));
      rows.push([
        label,
        ms(wm),
        ratio(wm, raw1),
        ...(baseRev
          ? [ms(median(baseline.map((s) => s.wholeMs))), ratio(median(baseline.map((s) => s.wholeMs)), raw1)]
          : []),
        ms(rm),
        ms(am),
        ms(cm),
        ms(raw1),
        ratio(am, raw1),
        ratio(cm, raw1),
        ratio(rm + am, raw1),
        [...new Set([...running, ...restarted].map((s) => s.mode))].join(","),
      ]);
      note(
        `${label}: whole ${whole.map((s) => s.wholeMs.toFixed(1)).join(",")} (medians: to the render's answer ${ms(median(whole.map((s) => s.toRenderedMs)))}, then to APPLYING ${ms(median(whole.map((s) => s.toApplyingMs)))}, the rest (Confirm, drift baseline, applied.json, settle) ${ms(median(whole.map((s) => s.wholeMs - s.toRenderedMs - s.toApplyingMs)))}; workers ${[...new Set(whole.map((s) => s.workers))].join(",")})${baseRev ? ` ${baseRev} ${baseline.map((s) => s.wholeMs.toFixed(1)).join(",")}` : ""} running ${running.map((s) => s.applyMs.toFixed(1)).join(",")} restarted ${restarted.map((s) => s.applyMs.toFixed(1)).join(",")} raw ${raw.map((x) => x.toFixed(1)).join(",")}`,
      );
    }
    console.log(`agent-apply — ${host}`);
    console.log(NOISE_NOTE);
    console.log(
      `\nCPU (user + sys, with children, ${cgroupClock ? "cgroup cpuacct.usage" : "/proc ticks of 10 ms"}; ${RUNS} runs, medians; target: agent <= 1.5x raw nft -f)\n${table(rows)}`,
    );
  } finally {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--whole")
  await wholeChild(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6]!);
else if (process.argv[2] === "--child")
  await child(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6]);
else await main();
