// bans: what the agent pays to change its ban lists (docs/bans.md), beside raw nft in the
// same run. One throwaway namespace; the agent's BanKeeper (src/agent/bans.ts) with the
// nft driver, exactly as the agent runs it, minus the gRPC stream.
//
//   full 100k      a full update (after Hello) loading 100,000 single-address bans
//   one on 100k    one ban added (a delta) to a list whose set holds those 100,000:
//                  BanKeeper.update vs a raw `nft add element` of the same kind of element
//                  (a fresh address each time, same timeout), interleaved, BENCH_RUNS each
//   delta 100k     100,000 bans in one change (one API request's delta) on a new list
//
// Medians over BENCH_RUNS (default 7); ratios against the raw nft figure of the same run.
// Needs root. Usage: npm run bench -- bench/bans.ts
import { execFileSync } from "node:child_process";
import { BanKeeper } from "../src/agent/bans.ts";
import { createLog } from "../src/runtime/log.ts";
import type { BanUpdate } from "../src/protocol/agent.ts";
import { createLab } from "../test/support/netns.ts";
import { note } from "./lib/progress.ts";
import { machine, median, ms, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const N = 100_000;
const TTL = String(3_600_000);
const v4 = (base: number, i: number) => `${base}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error("bench/bans.ts needs root (network namespaces, nft)");
    process.exit(2);
  }
  const host = machine(); // the load average before the runs, as its text says
  const lab = createLab();
  try {
    const ns = await lab.addNamespace();
    const keeper = new BanKeeper({ netns: ns }, createLog("error"), async () => ({
      apiAddresses: ["192.0.2.1"],
      apiPort: 50051,
    }));
    const update = async (m: BanUpdate) => {
      const t0 = performance.now();
      const r = await keeper.update(m);
      if (!r) throw new Error("ban update failed (see the log)");
      return performance.now() - t0;
    };
    const entries = (base: number, n: number, from = 0) =>
      Array.from({ length: n }, (_, i) => ({ address: v4(base, from + i), ttlMs: TTL }));

    const full: number[] = [];
    const delta: number[] = [];
    // The large loads take seconds each on a loaded machine: BENCH_BULK_RUNS (default 2).
    for (let r = 0; r < Number(process.env.BENCH_BULK_RUNS ?? 2); r++) {
      note(`full load of ${N} bans, run ${r + 1}`);
      full.push(await update({ full: true, lists: [{ list: "bench", add: entries(10, N), remove: [] }] }));
      note(`delta of ${N} bans on a new list, run ${r + 1}`);
      delta.push(await update({ full: false, lists: [{ list: "bulk", add: entries(11, N), remove: [] }] }));
    }
    // Leave exactly the 100k list for the single adds.
    await update({ full: true, lists: [{ list: "bench", add: entries(10, N), remove: [] }] });

    const agent: number[] = [];
    const raw: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      note(`one add on ${N}, run ${r + 1}`);
      agent.push(
        await update({
          full: false,
          lists: [{ list: "bench", add: [{ address: v4(12, r), ttlMs: TTL }], remove: [] }],
        }),
      );
      const t0 = performance.now();
      execFileSync("ip", [
        "netns",
        "exec",
        ns,
        "nft",
        "add",
        "element",
        "inet",
        "palisade_bans",
        "bench_h4",
        `{ ${v4(13, r)} timeout ${TTL}ms }`,
      ]);
      raw.push(performance.now() - t0);
    }
    const count = execFileSync("ip", ["netns", "exec", ns, "nft", "list", "set", "inet", "palisade_bans", "bench_h4"], {
      maxBuffer: 256 * 1024 * 1024,
    })
      .toString()
      .split(",").length;

    console.log(`bans (${host}), ${RUNS} runs, medians; set bench_h4 holds ~${count} elements at the end`);
    console.log(
      table([
        ["case", "median", "runs", "vs raw nft add"],
        ["full update, 100k bans (table replaced)", ms(median(full)), full.map((x) => ms(x)).join(" "), ""],
        ["delta, 100k bans in one change (new list)", ms(median(delta)), delta.map((x) => ms(x)).join(" "), ""],
        [
          "one ban added, set holds 100k: agent",
          ms(median(agent)),
          agent.map((x) => ms(x)).join(" "),
          ratio(median(agent), median(raw)),
        ],
        [
          "one element added, set holds 100k: raw `nft add element`",
          ms(median(raw)),
          raw.map((x) => ms(x)).join(" "),
          "1.00x",
        ],
      ]),
    );
    console.log(NOISE_NOTE);
  } finally {
    await lab.cleanup();
  }
}

await main();
