// Names of the policy's objects: those written bare into nft text (sets, chains, counters,
// quotas) must not be nft keywords, nor names the nft render gives its own chains and
// counters; a set must not have the name of a set the agent fills itself (geoip countries,
// conditions), which it finds in the kernel by its name.
// Refused here, when a version is pushed, rather than first by the render on an agent.
import { error, type Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";
import { isNftKeyword } from "../nft/names.ts";
import { geoOfSet } from "../geoip/names.ts";
import { conditionOfSet } from "../conditions/names.ts";
import { FWD_CHAINS } from "../compile/nft/forwarding.ts";
import { parseGrowCounterName } from "../compile/nft/quota.ts";

/**
 * What a set of this name is to the agent when the policy does not mean it (a geoip
 * country's set, a condition's), or undefined for a name that is the policy's own.
 */
export function reservedSetName(name: string): string | undefined {
  const geo = geoOfSet(name);
  if (geo)
    return `the geoip match's set for ${geo.country} (${geo.family === "ipv4" ? "IPv4" : "IPv6"}), which the agent fills with that country's ranges`;
  const condition = conditionOfSet(name);
  if (condition !== undefined)
    return `the set of condition "${condition}", which the agent fills or empties as the condition is switched`;
  return undefined;
}

/** What the nft render makes a chain of this name, whatever the policy holds, or undefined. */
export function reservedChainName(name: string): string | undefined {
  return (Object.values(FWD_CHAINS) as string[]).includes(name)
    ? "the chain port forwarding compiles into (forwarding)"
    : undefined;
}

/** The objects whose names are written bare into nft text (rules refer to them by name). */
const BARE = { sets: "set", chains: "chain", counters: "counter", quotas: "quota" } as const;

export function nameErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [key, what] of Object.entries(BARE) as [keyof typeof BARE, string][]) {
    for (const name of Object.keys(policy[key]).sort()) {
      if (isNftKeyword(name))
        out.push(
          error(
            [key, name],
            "name_is_nft_keyword",
            `${what} name "${name}" is an nft keyword, which nft cannot read as the ${what}'s name; rename the ${what} and what refers to it`,
          ),
        );
    }
  }
  for (const name of Object.keys(policy.chains).sort()) {
    const reserved = reservedChainName(name);
    if (reserved)
      out.push(error(["chains", name], "chain_name_reserved", `chain name "${name}" is ${reserved}; rename the chain`));
  }
  for (const name of Object.keys(policy.counters).sort()) {
    const grow = parseGrowCounterName(name);
    if (grow)
      out.push(
        error(
          ["counters", name],
          "counter_name_reserved",
          `counter name "${name}" is the name of the counter a growing quota ${grow.quota} (${grow.mode}) renders as, which the agent reports as that quota; rename the counter`,
        ),
      );
  }
  for (const name of Object.keys(policy.sets).sort()) {
    const reserved = reservedSetName(name);
    if (reserved)
      out.push(
        error(
          ["sets", name],
          "set_name_reserved",
          `set name "${name}" is ${reserved}; rename the set and the rules that use it`,
        ),
      );
  }
  return out;
}
