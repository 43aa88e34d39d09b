// Policy documents the benches compile. Addresses come from 11.0.0.0/8 counted up
// (11.0.0.0, 11.0.0.1, ...): they are only set elements / rule operands, never sent to.
// The lab's own links use 10.200.<k>.0/24, which no generated rule or element touches,
// so bench traffic always passes every rule (the worst case for linear rules).
import type { PolicyInput } from "../../src/engine/index.ts";

export function benchAddress(i: number): string {
  const n = (0x0b000000 + i) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** `n` linear rules `ip saddr <addr> drop` in one input chain (policy accept). */
export function linearRules(n: number): PolicyInput {
  const rules = new Array(n);
  for (let i = 0; i < n; i++) rules[i] = { match: { saddr: benchAddress(i) }, action: "drop" };
  return {
    description: `bench: ${n} linear saddr drop rules`,
    chains: { input: { hook: "input", policy: "accept", rules } },
  };
}

/** One named ipv4_addr (hash) set of `n` addresses, referenced by one drop rule. */
export function blocklist(n: number): PolicyInput {
  const elements = new Array<string>(n);
  for (let i = 0; i < n; i++) elements[i] = benchAddress(i);
  return {
    description: `bench: ${n}-address blocklist`,
    sets: { blocklist: { type: "ipv4_addr", elements } },
    chains: {
      input: {
        hook: "input",
        policy: "accept",
        rules: [{ comment: "blocklisted sources", match: { saddr: "@blocklist" }, action: "drop" }],
      },
    },
  };
}

export interface Case {
  key: string;
  label: string;
  doc: () => PolicyInput;
}

export const CASES = {
  rules10k: { key: "rules10k", label: "10k linear rules", doc: () => linearRules(10_000) },
  set100k: { key: "set100k", label: "100k-address set", doc: () => blocklist(100_000) },
  set1m: { key: "set1m", label: "1M-address set", doc: () => blocklist(1_000_000) },
} satisfies Record<string, Case>;
