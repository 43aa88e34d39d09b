// What one preset contributes to the expanded policy.
import type { z } from "zod";
import type { Chain, CounterDef, Rule } from "../policy/index.ts";

/** The protect_* chain a rule goes into; each is jumped to from the first user base chain at that hook. */
export type Slot = "prerouting" | "input" | "forward" | "output";

export interface PresetOutput {
  rules: Partial<Record<Slot, Rule[]>>;
  /** Helper chains (user chains reached by goto from a protect_* chain). */
  chains?: Record<string, Chain>;
  counters?: Record<string, z.infer<typeof CounterDef>>;
}

/**
 * Tables of the protect_* chains: raw for anti-spoofing (drop before conntrack spends an entry; iptables rpfilter lives there), filter otherwise.
 * The nftables compiler runs anti-spoofing after conntrack instead, once per connection direction (compile/nft/anti-spoofing.ts).
 */
export const SLOT_TABLE = {
  prerouting: "raw",
  input: "filter",
  forward: "filter",
  output: "filter",
} as const satisfies Record<Slot, Chain["table"]>;
export const SLOTS: readonly Slot[] = ["prerouting", "input", "forward", "output"];

export const protectChain = (slot: Slot) => `protect_${slot}`;
/** Base chain created when the user has none at a hook the presets need. */
export const protectBaseChain = (slot: Slot) => `protect_${slot}_base`;

export function comment(preset: string, what: string): string {
  return `preset ${preset}: ${what}`.slice(0, 128);
}
