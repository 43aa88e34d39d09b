// Names of the policy's objects: those written bare into nft text (sets, chains, counters,
// quotas) must not be nft keywords, nor names the nft render gives its own chains and
// counters; a set must not have the name of a set the agent fills itself (geoip countries,
// conditions), which it finds in the kernel by its name.
// The keywords and the render's own names concern the nftables target only (the nft render
// and the agent, which loads nftables): iptables-restore names its chains and rules its own
// way. So these are checked with the target support (target.ts, `target: "nftables"`), never
// for iptables nor without a target: a policy meant for iptables may name a chain `import`.
// The sets the agent fills are refused whatever the target (reservedSetErrors, semantic.ts):
// every version pushed is one an agent may be sent, and the agent finds them by name.
import { error, type Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";
import { isNftKeyword } from "../nft/names.ts";
import { geoOfSet, geoSetName } from "../geoip/names.ts";
import { CONDITION_SET_PREFIX, conditionOfSet } from "../conditions/names.ts";
import { FWD_CHAINS } from "../compile/nft/forwarding.ts";
import { parseGrowCounterName } from "../compile/nft/quota.ts";

/**
 * What a set of this name is to the agent when the policy does not mean it (a geoip
 * country's set, a condition's), or undefined for a name that is the policy's own.
 */
export function reservedSetName(name: string): string | undefined {
  return reservedSet(name)?.what;
}

/** The reserved prefix a set name has, and what a set of that name is to the agent. */
function reservedSet(name: string): { prefix: string; what: string } | undefined {
  const geo = geoOfSet(name);
  if (geo)
    return {
      prefix: geoSetName(geo.family, ""),
      what: `the geoip match's set for ${geo.country} (${geo.family === "ipv4" ? "IPv4" : "IPv6"}), which the agent fills with that country's ranges`,
    };
  const condition = conditionOfSet(name);
  if (condition !== undefined)
    return {
      prefix: CONDITION_SET_PREFIX,
      what: `the set of condition "${condition}", which the agent fills or empties as the condition is switched`,
    };
  return undefined;
}

/**
 * The policy's sets named like one the agent fills itself, for every target: the push
 * refuses them rather than the agent at the apply.
 */
export function reservedSetErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const name of Object.keys(policy.sets).sort()) {
    const r = reservedSet(name);
    if (r)
      out.push(
        error(
          ["sets", name],
          "set_name_reserved",
          `set name "${name}" has the prefix "${r.prefix}" reserved for the sets the agent fills: it is ${r.what}; rename the set and what refers to it`,
        ),
      );
  }
  return out;
}

/** What the nft render makes a chain of this name, whatever the policy holds, or undefined. */
export function reservedChainName(name: string): string | undefined {
  return (Object.values(FWD_CHAINS) as string[]).includes(name)
    ? "the chain port forwarding compiles into (forwarding)"
    : undefined;
}

/** What a counter of this name is to the render and the agent (a growing quota's), or undefined. */
function reservedCounterName(name: string): string | undefined {
  const grow = parseGrowCounterName(name);
  return grow
    ? `the name of the counter a growing quota ${grow.quota} (${grow.mode}) renders as, which the agent reports as that quota`
    : undefined;
}

/**
 * The objects whose names are written bare into nft text (rules refer to them by name), and
 * the names of each kind that the nft render takes for objects of its own (the sets the
 * agent fills: reservedSetErrors).
 */
const KINDS = [
  { key: "sets", what: "set", reserved: () => undefined },
  { key: "chains", what: "chain", reserved: reservedChainName },
  { key: "counters", what: "counter", reserved: reservedCounterName },
  { key: "quotas", what: "quota", reserved: () => undefined },
] as const;

/** The name errors of a policy rendered for nftables (target.ts). */
export function nftNameErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { key, what, reserved } of KINDS) {
    for (const name of Object.keys(policy[key]).sort()) {
      const why = reserved(name);
      if (isNftKeyword(name))
        out.push(
          error(
            [key, name],
            "name_is_nft_keyword",
            `${what} name "${name}" is an nft keyword, which nft cannot read as the ${what}'s name; rename the ${what} and what refers to it`,
          ),
        );
      else if (why)
        out.push(
          error(
            [key, name],
            `${what}_name_reserved`,
            `${what} name "${name}" is ${why}; rename the ${what} and what refers to it`,
          ),
        );
    }
  }
  return out;
}
