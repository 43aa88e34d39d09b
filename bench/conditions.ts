// conditions: what the agent pays to flip an operator condition (docs/conditions.md),
// beside raw nft and a full policy apply in the same run. One throwaway namespace with the
// golden policy test/golden/condition.nft loaded; the agent's ConditionKeeper
// (src/agent/conditions.ts) with the nft driver, exactly as the agent runs it, minus the
// gRPC stream (the API -> kernel figure is printed by test/kernel/conditions-agent.test.ts).
//
//   agent flip     ConditionKeeper.update({web on}) then ({web off}): one `nft -f` (set names read at the last full sync)
//   raw flip       `nft add element ... { ipv4, ipv6 }` then `nft flush set ...`
//   full apply     `nft -f` of the whole compiled policy (what a version with/without the rule costs)
//
// Medians over BENCH_RUNS (default 7) of each step; ratios against the raw flip of the same run.
// Needs root. Usage: npm run bench -- bench/conditions.ts
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConditionKeeper } from "../src/agent/conditions.ts";
import { createLog } from "../src/runtime/log.ts";
import { createLab } from "../test/support/netns.ts";
import { note } from "./lib/progress.ts";
import { machine, median, ms, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const GOLDEN = join(import.meta.dirname, "..", "test", "golden", "condition.nft");

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error("bench/conditions.ts needs root (network namespaces, nft)");
    process.exit(2);
  }
  const host = machine(); // the load average before the runs, as its text says
  const lab = createLab();
  try {
    const ns = await lab.addNamespace();
    const text = readFileSync(GOLDEN, "utf8");
    const nft = (args: string[], input?: string) =>
      execFileSync("ip", ["netns", "exec", ns, "nft", ...args], input === undefined ? {} : { input });
    nft(["-f", "-"], text);
    const keeper = new ConditionKeeper({ netns: ns }, (fn) => fn(), createLog("error"));
    const flip = async (on: boolean) => {
      const t0 = performance.now();
      const r = await keeper.update({ full: false, values: [{ name: "web", on }] });
      if (r?.sets !== 1) throw new Error("condition update failed (see the log)");
      return performance.now() - t0;
    };
    const timed = (fn: () => unknown) => {
      const t0 = performance.now();
      fn();
      return performance.now() - t0;
    };
    const agent: number[] = [];
    const raw: number[] = [];
    const full: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      note(`run ${r + 1}`);
      agent.push(await flip(true), await flip(false));
      raw.push(
        timed(() => nft(["add", "element", "inet", "palisade", "condition_web", "{ ipv4, ipv6 }"])),
        timed(() => nft(["flush", "set", "inet", "palisade", "condition_web"])),
      );
      full.push(timed(() => nft(["-f", "-"], text)));
    }
    console.log(`conditions (${host}), ${RUNS} runs (2 flips each), medians`);
    console.log(
      table([
        ["case", "median", "vs raw flip"],
        [
          "agent flip (ConditionKeeper: one nft -f, set names cached)",
          ms(median(agent)),
          ratio(median(agent), median(raw)),
        ],
        ["raw flip (`nft add element` / `nft flush set`)", ms(median(raw)), "1.00x"],
        [
          "full apply of the policy (`nft -f` of the compiled text)",
          ms(median(full)),
          ratio(median(full), median(raw)),
        ],
      ]),
    );
    console.log(NOISE_NOTE);
  } finally {
    await lab.cleanup();
  }
}

await main();
