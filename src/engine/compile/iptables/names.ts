// Chain and object names in the kernel. Palisade owns exactly the chains whose names start
// with PAL- (policy chains) or PALISADE- (one entry chain per builtin chain), so foreign
// chains are never flushed or deleted. xtables chain names hold at most 28 characters;
// longer policy names are shortened with a hash so they stay unique and deterministic.
import { sha256Hex } from "../../checksum.ts";

export const MAX_CHAIN = 28;
export const ENTRY_PREFIX = "PALISADE-";
export const CHAIN_PREFIX = "PAL-";

function short(prefix: string, name: string, max: number): string {
  const full = prefix + name;
  if (full.length <= max) return full;
  const h = sha256Hex(name).slice(0, 6);
  return `${prefix}${name.slice(0, max - prefix.length - 7)}-${h}`;
}

/** Kernel chain of a policy chain. */
export function chainName(policyChain: string): string {
  return short(CHAIN_PREFIX, policyChain, MAX_CHAIN);
}

/** The entry chain jumped to from a builtin chain (`INPUT` -> `PALISADE-INPUT`). */
export function entryChain(hook: string): string {
  return ENTRY_PREFIX + hook.toUpperCase();
}

export function builtinChain(hook: string): string {
  return hook.toUpperCase();
}

export function isPalisadeChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX) || name.startsWith(ENTRY_PREFIX);
}

/** ipset name of a policy set (ipset names hold at most 31 characters). */
export function ipsetName(set: string): string {
  return short("pal_", set, 31);
}

/** hashlimit table of a meter (shared by every rule that uses the meter). */
export function meterName(meter: string): string {
  return short("pal_", meter, 200);
}

/** hashlimit table of a `limit over` rule: one bucket per rule, named from its content. */
export function limitName(seed: string): string {
  return "pal_lim_" + sha256Hex(seed).slice(0, 12);
}

/** Comment that tags the rules of a named counter; the agent sums their counters. */
export function counterTag(counter: string): string {
  return `palisade-counter:${counter}`;
}
