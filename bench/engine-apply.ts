// engine-apply: compile (validate + render) and load time of three policies, each beside a
// raw `ip netns exec NS nft -f FILE` of the same rendered text in the same run.
//
//   (a) 10k linear `ip saddr X drop` rules in one input chain
//   (b) a 100k-address blocklist (one named ipv4_addr set, one drop rule)
//   (c) a 1M-address blocklist
//
// Per run and case, three loads into a fresh throwaway namespace, each starting with
// Palisade's table absent (deleted, untimed, before every load), in alternating order:
//   engine   driver.apply (guard + `nft -f -`), as the agent applies: the atomic `nft -f` is its
//            own check (the kernel takes the whole transaction or none of it). The `nft -c` the
//            agent runs only after a refusal is timed apart (untimed in the engine column)
//   raw-file ip netns exec NS nft -f FILE             (the reference of the target)
//   raw-pipe ip netns exec NS nft -f -, text on stdin (same pipe, no guard: isolates the guard)
// Target from issue 3: engine apply within 1.2x of raw nft -f. Figures only, no pass/fail.
//
// Usage: npm run bench -- bench/engine-apply.ts   (BENCH_RUNS=5 BENCH_RUNS_1M=3 by default)
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { driver } from "../src/engine/index.ts";
import { createLab, type NetnsLab } from "../test/support/netns.ts";
import { CASES, type Case } from "./lib/policies.ts";
import { compileTimed, type CompileTimes } from "./lib/compile.ts";
import { machine, median, min, max, ms, ratio, table, NOISE_NOTE } from "./lib/stats.ts";
import { note, step } from "./lib/progress.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const RUNS_1M = Number(process.env.BENCH_RUNS_1M ?? 3);
const NFT_TIMEOUT_MS = 120_000;

interface Sample {
  compile: CompileTimes;
  guardMs: number;
  engineMs: number;
  /** A `nft -c` dry run of the same text, outside engineMs: what a refused apply adds. */
  checkMs: number;
  engineNftMs: number;
  rawFileMs: number;
  rawPipeMs: number;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function dropTable(lab: NetnsLab, ns: string): Promise<void> {
  await lab.nft(ns, ["delete", "table", "inet", "palisade"], undefined, { allowFailure: true, timeoutMs: 60_000 });
}

async function benchCase(lab: NetnsLab, ns: string, dir: string, c: Case, runs: number): Promise<Sample[]> {
  const gen = step(`${c.label}: building the policy document`);
  const doc = c.doc();
  gen.done();
  const file = join(dir, `${c.key}.nft`);
  const samples: Sample[] = [];
  for (let r = 0; r < runs; r++) {
    const p = step(`${c.label}: run ${r + 1}/${runs}: compile`);
    const compile = compileTimed(doc);
    if (r === 0) writeFileSync(file, compile.text);
    const g0 = performance.now();
    driver.assertPalisadeOnly(compile.text);
    const guardMs = performance.now() - g0;
    let engineNftMs = 0;
    let checkMs = 0;
    const loads: Record<"engine" | "rawFile" | "rawPipe", () => Promise<number>> = {
      engine: async () => {
        let nftMs = 0;
        checkMs = (await driver.check(compile.text, { netns: ns, timeoutMs: NFT_TIMEOUT_MS })).durationMs;
        const wall = await timed(async () => {
          nftMs = (await driver.apply(compile.text, { netns: ns, timeoutMs: NFT_TIMEOUT_MS })).durationMs;
        });
        engineNftMs = nftMs;
        return wall;
      },
      rawFile: () => timed(() => lab.nft(ns, ["-f", file], undefined, { timeoutMs: NFT_TIMEOUT_MS })),
      rawPipe: () => timed(() => lab.nft(ns, ["-f", "-"], compile.text, { timeoutMs: NFT_TIMEOUT_MS })),
    };
    // Rotate the order each run so drift in the machine's load does not favour one loader.
    const orders: Array<Array<keyof typeof loads>> = [
      ["engine", "rawFile", "rawPipe"],
      ["rawFile", "rawPipe", "engine"],
      ["rawPipe", "engine", "rawFile"],
    ];
    const got: Partial<Record<keyof typeof loads, number>> = {};
    for (const which of orders[r % orders.length]!) {
      p.update(`${c.label}: run ${r + 1}/${runs}: ${which}`);
      await dropTable(lab, ns);
      got[which] = await loads[which]();
    }
    await dropTable(lab, ns);
    p.done(
      `(compile ${ms(compile.totalMs)}, engine ${ms(got.engine!)}, raw -f FILE ${ms(got.rawFile!)}, raw -f - ${ms(got.rawPipe!)})`,
    );
    samples.push({
      compile,
      guardMs,
      engineMs: got.engine!,
      checkMs,
      engineNftMs,
      rawFileMs: got.rawFile!,
      rawPipeMs: got.rawPipe!,
    });
  }
  return samples;
}

async function main(): Promise<void> {
  const header = machine();
  const started = performance.now();
  const lab = createLab();
  const dir = mkdtempSync(join(tmpdir(), "palisade-bench-"));
  const results: Array<{ c: Case; runs: number; s: Sample[]; bytes: number }> = [];
  try {
    const ns = await lab.addNamespace();
    note(`namespace ${ns}; runs: ${RUNS} (10k, 100k), ${RUNS_1M} (1M)`);
    for (const [c, runs] of [
      [CASES.rules10k, RUNS],
      [CASES.set100k, RUNS],
      [CASES.set1m, RUNS_1M],
    ] as const) {
      if (runs === 0) continue; // BENCH_RUNS_1M=0: a quick run without the 1M case
      const s = await benchCase(lab, ns, dir, c, runs);
      results.push({ c, runs, s, bytes: Buffer.byteLength(s[0]!.compile.text) });
    }
  } finally {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }

  const out: string[] = [];
  out.push("engine-apply: compile + load of rendered policies, engine driver vs raw nft -f (medians)");
  out.push(header);
  out.push(NOISE_NOTE);
  out.push("Each load starts with table inet palisade absent (deleted, untimed); loads alternate order per run.");
  out.push("");
  const rows: string[][] = [
    [
      "policy",
      "runs",
      "text",
      "compile",
      "engine check+apply",
      "raw -f FILE",
      "raw -f -",
      "apply/raw",
      "(compile+apply)/raw",
      "apply/raw range",
    ],
  ];
  for (const { c, runs, s, bytes } of results) {
    const compile = median(s.map((x) => x.compile.totalMs));
    const eng = median(s.map((x) => x.engineMs));
    const raw = median(s.map((x) => x.rawFileMs));
    const rr = s.map((x) => x.engineMs / x.rawFileMs);
    rows.push([
      c.label,
      String(runs),
      `${(bytes / 1e6).toFixed(1)} MB`,
      ms(compile),
      ms(eng),
      ms(raw),
      ms(median(s.map((x) => x.rawPipeMs))),
      ratio(eng, raw),
      ratio(compile + eng, raw),
      `${min(rr).toFixed(2)}-${max(rr).toFixed(2)}x`,
    ]);
  }
  out.push(table(rows));
  out.push("");
  out.push(
    "Where the time goes (medians; engine = guard + spawn `ip netns exec nft -f -` + stdin; durationMs = each nft run):",
  );
  const rows2: string[][] = [
    [
      "policy",
      "validate (with lints)",
      "compileNft",
      "guard",
      "nft -c run (only after a refusal)",
      "apply nft run",
      "apply - raw -f FILE",
      "raw -f - minus raw -f FILE",
    ],
  ];
  for (const { c, s } of results) {
    rows2.push([
      c.label,
      ms(median(s.map((x) => x.compile.validateMs))),
      ms(median(s.map((x) => x.compile.compileMs))),
      ms(median(s.map((x) => x.guardMs))),
      ms(median(s.map((x) => x.checkMs))),
      ms(median(s.map((x) => x.engineNftMs))),
      ms(median(s.map((x) => x.engineMs - x.rawFileMs))),
      ms(median(s.map((x) => x.rawPipeMs - x.rawFileMs))),
    ]);
  }
  out.push(table(rows2));
  out.push("");
  out.push(
    `Target (issue 3): engine apply (as the agent runs it: no dry run first) within 1.2x of raw nft -f. ${results.map(({ c, s }) => `${c.label}: ${ratio(median(s.map((x) => x.engineMs)), median(s.map((x) => x.rawFileMs)))} ${median(s.map((x) => x.engineMs)) <= 1.2 * median(s.map((x) => x.rawFileMs)) ? "met" : "NOT met"}`).join("; ")}.`,
  );
  out.push(`Total bench time ${ms(performance.now() - started)}.`);
  process.stdout.write(out.join("\n") + "\n");
}

main().catch((e) => {
  process.stderr.write(`engine-apply failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
