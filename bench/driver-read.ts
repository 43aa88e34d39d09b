// driver-read: what reading a 65,536-element accounting set costs the agent's process
// (issue 11: "read large sets without holding several copies"), beside the floor
// measured in the same run.
//
// One throwaway namespace holds the compiled /16 accounting table (bench/footprint.ts's
// policy) with 65,536 addresses in acct_big_src, each with a counter. Every case runs in
// a fresh `node` (the flags of the shipped systemd unit), interleaved, BENCH_RUNS times:
//
//   floor       `nft -j list table` spawned, its output read from the pipe and dropped
//               (what any reader pays: node + the pipe, nothing kept)
//   readTable   driver.readTable of the whole table (typed RulesetState)
//   readKernel  telemetry's whole reading (src/agent/telemetry/reading.ts), the call the
//               collector makes every interval
//
// Per case: peak RSS (VmHWM) of the process, its RSS just before the read (the process
// floor), the growth between the two, and the wall time of the read; medians, and the
// growth as a ratio of the floor's growth.
// Needs root. Usage: npm run bench -- bench/driver-read.ts   (BENCH_RUNS=7 by default)
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLab } from "../test/support/netns.ts";
import { unitNodeFlags } from "../test/support/unit-privileges.ts";
import { BIG_ACCOUNTING, fillBigAccounting } from "./lib/big-accounting.ts";
import { note } from "./lib/progress.ts";
import { machine, median, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const ROOT = join(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const ELEMENTS = 65_536;
const MB = 1024 * 1024;
const CASES = ["floor", "readTable", "readKernel"] as const;
type Case = (typeof CASES)[number];

function status(): { rss: number; hwm: number } {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Child: one case, prints {before, peak, ms} as JSON. */
async function child(which: Case, ns: string): Promise<void> {
  // Load the code first, so its size is in `before`, not in the read.
  const driver = await import("../src/engine/driver/index.ts");
  const reading = await import("../src/agent/telemetry/reading.ts");
  globalThis.gc?.();
  writeClearRefs();
  const before = status().rss;
  const t0 = performance.now();
  let rows = 0;
  if (which === "floor") {
    await new Promise<void>((resolve, reject) => {
      const p = spawn("ip", ["netns", "exec", ns, "nft", "-j", "list", "table", "inet", "palisade"], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      p.stdout.on("data", (b: Buffer) => (rows += b.length));
      p.on("error", reject);
      p.on("close", (c) => (c === 0 ? resolve() : reject(new Error(`nft exited ${c}`))));
    });
  } else if (which === "readTable") {
    const st = await driver.readTable("inet", "palisade", { netns: ns });
    rows = st.sets.reduce((n, s) => n + s.elements.length, 0);
  } else {
    const r = await reading.readKernel(driver.nftDriver({ netns: ns }));
    rows = r.counters.size;
  }
  const ms = performance.now() - t0;
  process.stdout.write(JSON.stringify({ before, peak: status().hwm, ms, rows }) + "\n");
}

/** Reset VmHWM to the current RSS: the peak measured is the read's, not start-up's. */
function writeClearRefs(): void {
  writeFileSync("/proc/self/clear_refs", "5");
}

interface Sample {
  before: number;
  peak: number;
  ms: number;
  rows: number;
}

async function main(): Promise<void> {
  const host = machine(); // the load average before the runs, as its text says
  const lab = createLab();
  try {
    const ns = await lab.addNamespace();
    const { validatePolicy, compileNft } = await import("../src/engine/index.ts");
    const v = validatePolicy(BIG_ACCOUNTING, { target: "nftables" });
    if (!v.ok || !v.policy) throw new Error(`policy: ${JSON.stringify(v.errors)}`);
    const c = compileNft(v.policy);
    if (!c.ok) throw new Error(`compile: ${JSON.stringify(c.errors)}`);
    await lab.nft(ns, ["-f", "-"], c.text);
    await fillBigAccounting(lab, ns, ELEMENTS);
    const flags = unitNodeFlags(readFileSync(join(ROOT, "deploy/palisade-agent.service"), "utf8"));
    const samples = new Map<Case, Sample[]>(CASES.map((k) => [k, []]));
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 ? [...CASES].reverse() : [...CASES];
      for (const k of order) {
        note(`run ${i + 1}/${RUNS}: ${k}`);
        const r = spawnSync(process.execPath, [...flags, "--import", "tsx", import.meta.filename, "--child", k, ns], {
          cwd: ROOT,
          encoding: "utf8",
          timeout: 120_000,
        });
        if (r.status !== 0) throw new Error(`${k}: exit ${r.status}: ${r.stderr}`);
        samples.get(k)!.push(JSON.parse(r.stdout.trim().split("\n").pop()!) as Sample);
      }
    }
    const growth = (k: Case) => median(samples.get(k)!.map((s) => s.peak - s.before));
    const floor = growth("floor");
    const rows = [["case", "rows read", "RSS before", "peak RSS", "growth", "growth x floor", "peak x floor", "wall"]];
    const floorPeak = median(samples.get("floor")!.map((s) => s.peak));
    for (const k of CASES) {
      const ss = samples.get(k)!;
      const peak = median(ss.map((s) => s.peak));
      rows.push([
        k,
        k === "floor"
          ? `${(median(ss.map((s) => s.rows)) / MB).toFixed(1)} MB JSON`
          : String(median(ss.map((s) => s.rows))),
        `${(median(ss.map((s) => s.before)) / MB).toFixed(1)} MB`,
        `${(peak / MB).toFixed(1)} MB`,
        `${(growth(k) / MB).toFixed(1)} MB`,
        ratio(growth(k), floor),
        ratio(peak, floorPeak),
        `${median(ss.map((s) => s.ms)).toFixed(0)} ms`,
      ]);
    }
    console.log(`driver-read — ${host}`);
    console.log(NOISE_NOTE);
    console.log(
      `\nreading ${ELEMENTS.toLocaleString("en-US")} counted set elements, fresh node ${flags.join(" ")} per run, ${RUNS} runs, medians\n${table(rows)}`,
    );
  } finally {
    await lab.cleanup();
  }
}

if (process.argv[2] === "--child") await child(process.argv[3] as Case, process.argv[4]!);
else await main();
