// periodic-reads: what the agent's two periodic reads of the kernel cost: the drift check
// (every 60 s; it compares rules, chains and named objects, never the elements of
// kernel-filled sets) and the telemetry collector's reading (every interval; it needs every
// element). Two tables: the case the change is for (an accounting set holding 65,536
// addresses) and the other side of its trade (10,000 rules, no element). Each reading beside
// the way it was made before, rebuilt here from the same driver calls, in the same run,
// interleaved, BENCH_RUNS times (default 7):
//
//   drift, before      `nft -j list tables`, then `nft -j list table` (every element,
//                      printed by nft and parsed by the agent, then dropped); normalised
//                      and compared as the detector did
//   drift.check        DriftDetector.check as shipped: one `nft -j -t -p list ruleset`
//                      (no element fetched), then each static set alone
//   collector, before  `list tables`, `list counters table` per table, then `list table`
//   readKernel         the collector's reading as shipped, given the shape of its previous
//                      reading: a terse `list ruleset` for the tables and their counters
//                      (or, where the tables hold fewer than half as many set elements as
//                      rules, `list tables` + `list counters` as before), then `list table`
//
// nft 1.0.6 fetches every element of the ruleset for `list tables` and `list counters`,
// and of the table for `list table` even with -t; a terse `list ruleset` fetches none.
// The tables: bench/lib/big-accounting.ts's /16 accounting policy, and linearRules(10_000),
// each with one static set added (so the check reads one set alone).
// CPU: this process (process.cpuUsage) plus its reaped children, nft and ip
// (/proc/self/stat cutime + cstime, 10 ms ticks); the bench runs the sources through tsx.
// Memory is not compared here: the agent's peak moved by 1-30 MB between runs of the same
// reading (GC timing); nft's own peak for each listing is in bench/README.md. A drift reading
// that finds drift, or collector readings that disagree with the first one, stop the bench.
// Needs root. Usage: npm run bench -- bench/periodic-reads.ts
import { Applier } from "../src/agent/apply.ts";
import { compare, DriftDetector, dynamicSetsOfTables, normalise } from "../src/agent/drift.ts";
import { readPalisade } from "../src/agent/kernel/read.ts";
import { readingOf, readKernel } from "../src/agent/telemetry/reading.ts";
import { nftDriver, type CounterState } from "../src/engine/driver/index.ts";
import { compileNft, validatePolicy, type PolicyInput } from "../src/engine/index.ts";
import { memoryLog } from "../src/runtime/log.ts";
import { createLab, type NetnsLab } from "../test/support/netns.ts";
import { BIG_ACCOUNTING, fillBigAccounting } from "./lib/big-accounting.ts";
import { linearRules } from "./lib/policies.ts";
import { note } from "./lib/progress.ts";
import { procStatCpuMs } from "./lib/proc-cpu.ts";
import { machine, median, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const ELEMENTS = 65_536;

const STATIC_SET = "add set inet palisade allow { type ipv4_addr ; flags interval ; elements = { 192.0.2.0/24 } ; }\n";

/** CPU ms of this process (µs-exact) and its reaped children (ticks). */
function cpuMs(): number {
  const own = process.cpuUsage();
  return (own.user + own.system) / 1000 + procStatCpuMs().children;
}

async function measure(fn: () => Promise<void>): Promise<number> {
  const c0 = cpuMs();
  await fn();
  return cpuMs() - c0;
}

interface Scenario {
  title: string;
  policy: PolicyInput;
  /** Accounting elements added to acct_big_src after the apply (what traffic would add). */
  elements: number;
}

// The case this is for, and the other side of the trade: a terse `list ruleset` prints every
// rule, where `list tables` only fetched them.
const SCENARIOS: Scenario[] = [
  { title: "65,536 accounting elements + 1 static set", policy: BIG_ACCOUNTING, elements: ELEMENTS },
  { title: "10,000 rules, no set element + 1 static set", policy: linearRules(10_000), elements: 0 },
];

async function scenario(lab: NetnsLab, sc: Scenario): Promise<string> {
  const ns = await lab.addNamespace();
  const v = validatePolicy(sc.policy, { target: "nftables" });
  if (!v.ok || !v.policy) throw new Error(`policy: ${JSON.stringify(v.errors)}`);
  const c = compileNft(v.policy);
  if (!c.ok) throw new Error(`compile: ${JSON.stringify(c.errors)}`);
  const text = c.text + STATIC_SET;
  const log = memoryLog("error");
  const driver = nftDriver({ netns: ns });
  const applier = new Applier(driver, log);
  const drift = new DriftDetector(driver, applier, log);
  const r = await applier.safeApply({
    text,
    confirmTimeoutMs: 1000,
    confirmed: async () => true,
    onConfirmed: () => drift.setDesired(text, c.tables),
  });
  if (r.status !== "applied") throw new Error(`apply: ${r.status} ${r.error ?? ""}`);
  if (sc.elements) await fillBigAccounting(lab, ns, sc.elements);

  // The readings as they were made before, from the same driver calls.
  const dyn = dynamicSetsOfTables(c.tables);
  const wholeBaseline = normalise(await readPalisade(driver), dyn);
  const collectorBefore = async () => {
    const tables = await driver.listTables();
    const counters: CounterState[] = [];
    for (const t of tables) counters.push(...(await driver.readCounters(t.family, t.name)));
    const st = await readPalisade(driver, tables);
    st.counters = counters;
    const reading = readingOf(st); // what readKernel returned
    return { counters, reading, elements: st.sets.find((s) => s.name === "acct_big_src")?.elements.length ?? 0 };
  };
  const totals = (cs: CounterState[]) => JSON.stringify(cs.map((x) => [x.name, x.packets, x.bytes]).sort());
  const expected = await collectorBefore();
  if (expected.elements !== sc.elements) throw new Error(`read ${expected.elements} elements, not ${sc.elements}`);
  const keys = (r: ReturnType<typeof readingOf>) => JSON.stringify([...r.counters.keys()].sort());
  // As the collector calls it: with what its previous reading held.
  const first = await readKernel(driver);
  const expectedKeys = keys(first);
  const cases = {
    "drift, before": async () => {
      const diffs = compare(wholeBaseline, normalise(await readPalisade(driver), dyn));
      if (diffs.length) throw new Error(`whole-table reading found drift: ${diffs.join("; ")}`);
    },
    "drift.check": async () => {
      const rep = await drift.check({ restore: false });
      if (rep.drifted) throw new Error(`drift.check found drift: ${rep.details}`);
    },
    "collector, before": async () => {
      const r = await collectorBefore();
      if (totals(r.counters) !== totals(expected.counters) || keys(r.reading) !== expectedKeys)
        throw new Error("collector (before): not the first reading's counters");
    },
    readKernel: async () => {
      const r = await readKernel(driver, first.shape);
      if (keys(r) !== expectedKeys) throw new Error("readKernel: not the counters of the first reading");
    },
  };
  type Case = keyof typeof cases;
  const names = Object.keys(cases) as Case[];
  const samples = new Map<Case, number[]>(names.map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const k of i % 2 ? [...names].reverse() : names) {
      note(`${sc.title}: run ${i + 1}/${RUNS}: ${k}`);
      samples.get(k)!.push(await measure(cases[k]));
    }
  }
  const cpu = (k: Case) => median(samples.get(k)!);
  const before: Record<Case, Case> = {
    "drift, before": "drift, before",
    "drift.check": "drift, before",
    "collector, before": "collector, before",
    readKernel: "collector, before",
  };
  const rows = [["reading", "CPU (agent + nft)", "x before"]];
  for (const k of names) rows.push([k, `${cpu(k).toFixed(0)} ms`, ratio(cpu(k), cpu(before[k]))]);
  return `\n${sc.title}: one reading each, ${RUNS} runs, medians (CPU ticks of children: 10 ms)\n${table(rows)}`;
}

async function main(): Promise<void> {
  const host = machine();
  const lab = createLab();
  try {
    const out: string[] = [];
    for (const sc of SCENARIOS) out.push(await scenario(lab, sc));
    console.log(`periodic-reads — ${host}`);
    console.log(NOISE_NOTE);
    console.log(out.join("\n"));
  } finally {
    await lab.cleanup();
  }
}

await main();
