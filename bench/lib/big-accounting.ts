// The /16 accounting table the memory and drift benches fill: one `account` rule whose
// kernel-filled set acct_big_src takes an address of 10.99.0.0/16 per host seen.
import type { PolicyInput } from "../../src/engine/index.ts";
import type { NetnsLab } from "../../test/support/netns.ts";
import { note } from "./progress.ts";

export const BIG_ACCOUNTING: PolicyInput = {
  description: "bench: a /16 accounting table",
  accounting: { big: { prefix: "10.99.0.0/16" } },
  chains: { input: { hook: "input", policy: "accept", rules: [{ action: { type: "account", table: "big" } }] } },
};

/** Add `n` (<= 65,536) addresses of 10.99.0.0/16, each with a counter, to acct_big_src in `ns`. */
export async function fillBigAccounting(lab: NetnsLab, ns: string, n = 65_536): Promise<void> {
  note(`filling ${n} accounting elements`);
  for (let i = 0; i < n; i += 8192) {
    const els: string[] = [];
    for (let j = i; j < Math.min(n, i + 8192); j++)
      els.push(`10.99.${j >> 8}.${j & 255} counter packets 1 bytes ${60 + (j % 1000)}`);
    await lab.nft(ns, ["-f", "-"], `add element inet palisade acct_big_src { ${els.join(", ")} }\n`, {
      timeoutMs: 120_000,
    });
  }
}
