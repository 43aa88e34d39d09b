// engine-throughput: 64-byte UDP packets per second received between two namespaces
// (iperf3 -u -l 64 -b 0, bounded duration, -J parsed) through
//   A  an empty ruleset (no table at all)
//   B  the compiled 1M-address blocklist (one hash set, one drop rule in the input hook)
//   C  10k linear saddr drop rules, for contrast (issue 3 measured ~1 % of empty)
//
// Shape: one client namespace linked by three identical veth pairs to three receiver
// namespaces, one per ruleset, each loaded once through driver.apply. Rounds rotate the
// order (A B C, B C A, C A B, ...) so drift in the machine's load spreads over all three;
// medians are taken per ruleset. Received pps = (packets sent - packets the server counted
// lost) / seconds, from the client's JSON, whose UDP totals come from the server's report.
// No generated address is in 10.200.0.0/16, so every packet passes every rule.
// Target (issue 3): blocklist >= 95 % of empty. Figures only, no pass/fail.
//
// Usage: npm run bench -- bench/engine-throughput.ts  (BENCH_ROUNDS=7, BENCH_SECONDS=3)
import { driver } from "../src/engine/index.ts";
import { createLab, type Background } from "../test/support/netns.ts";
import { CASES } from "./lib/policies.ts";
import { compileTimed } from "./lib/compile.ts";
import { machine, median, min, max, int, ms, percent, table, NOISE_NOTE } from "./lib/stats.ts";
import { note, step, withStep } from "./lib/progress.ts";
import { iperfUdp, startIperfServer } from "./lib/iperf.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

interface Target {
  key: "empty" | "set1m" | "rules10k";
  label: string;
  ns: string;
  ip: string;
  server?: Background;
  pps: number[];
  sentPps: number[];
}

async function main(): Promise<void> {
  const header = machine();
  const started = performance.now();
  const lab = createLab();
  const targets: Target[] = [];
  const loads: string[] = [];
  try {
    const client = await lab.addNamespace();
    for (const [key, label] of [
      ["empty", "empty ruleset"],
      ["set1m", "1M-address blocklist"],
      ["rules10k", "10k linear rules"],
    ] as const) {
      const ns = await lab.addNamespace();
      const link = await lab.link(client, ns);
      targets.push({ key, label, ns, ip: link.b.ip4, pps: [], sentPps: [] });
    }
    note(`client ${client}; receivers ${targets.map((t) => `${t.label}=${t.ns}`).join(", ")}`);
    for (const t of targets) {
      if (t.key === "empty") continue;
      const c = t.key === "set1m" ? CASES.set1m : CASES.rules10k;
      const compiled = await withStep(`${c.label}: building and compiling the policy`, () => compileTimed(c.doc()));
      const applied = await withStep(`${c.label}: driver.apply into ${t.ns}`, () =>
        driver.apply(compiled.text, { netns: t.ns, timeoutMs: 120_000 }),
      );
      loads.push(`${c.label}: compile ${ms(compiled.totalMs)}, apply ${ms(applied.durationMs)}`);
      const chain = await lab.nft(t.ns, ["list", "chain", "inet", "palisade", "input"], undefined, {
        timeoutMs: 60_000,
      });
      const rules = chain.stdout.split("\n").filter((l) => / drop( |$)/.test(l)).length;
      if (rules === 0) throw new Error(`no drop rule in ${t.ns} after apply`);
    }
    const lifetime = (ROUNDS * targets.length * (SECONDS + 15) + 60) * 1000;
    for (const t of targets) t.server = await startIperfServer(lab, t.ns, t.ip, lifetime);
    const p = step(`UDP 64-byte runs: ${ROUNDS} rounds x ${targets.length} rulesets x ${SECONDS} s`);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(r + k) % targets.length]!;
        p.update(`round ${r + 1}/${ROUNDS}: ${t.label}`);
        const got = await iperfUdp(lab, client, { server: t.ip, seconds: SECONDS, what: `to ${t.label}` });
        t.pps.push(got.received);
        t.sentPps.push(got.sent);
      }
    }
    p.done();
  } finally {
    await lab.cleanup();
  }

  const empty = targets.find((t) => t.key === "empty")!;
  const base = median(empty.pps);
  const out: string[] = [];
  out.push(
    `engine-throughput: 64-byte UDP, iperf3 -u -l 64 -b 0 -t ${SECONDS}, received packets/s at the server (medians of ${ROUNDS} rotated rounds)`,
  );
  out.push(header);
  out.push(NOISE_NOTE);
  out.push(
    "Rulesets sit in the receiver's input hook; one client, three identical veth links, one receiver namespace per ruleset.",
  );
  for (const l of loads) out.push(`  ${l}`);
  out.push("");
  const rows: string[][] = [
    ["ruleset", "runs", "received pps", "min", "max", "sent pps", "vs empty", "per-round vs empty"],
  ];
  for (const t of targets) {
    const per = t.pps.map((x, i) => (empty.pps[i] ? (100 * x) / empty.pps[i]! : NaN));
    rows.push([
      t.label,
      String(t.pps.length),
      int(median(t.pps)),
      int(min(t.pps)),
      int(max(t.pps)),
      int(median(t.sentPps)),
      percent(median(t.pps), base),
      t === empty ? "" : per.map((x) => x.toFixed(0)).join(" ") + " %",
    ]);
  }
  out.push(table(rows));
  out.push("");
  const bl = targets.find((t) => t.key === "set1m")!;
  const blRatio = median(bl.pps) / base;
  out.push(
    `Target (issue 3): 1M-address blocklist >= 95 % of empty: ${percent(median(bl.pps), base)}, ${blRatio >= 0.95 ? "met" : "NOT met"} (single run; see the noise note).`,
  );
  out.push(`Total bench time ${ms(performance.now() - started)}.`);
  process.stdout.write(out.join("\n") + "\n");
}

main().catch((e) => {
  process.stderr.write(`engine-throughput failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
