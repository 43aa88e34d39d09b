// Which countries a policy's rules test, and in which address families: what the API sends
// an agent and checks at deploy and load. A match can sit in a chain's rule or in a mark
// forward's match (forwarding.markForwards); both compile to lookups in the country sets.
import type { Match, Policy } from "../policy/index.ts";

export type GeoFamily = "ipv4" | "ipv6";
const BOTH: readonly GeoFamily[] = ["ipv4", "ipv6"];

function sortedFamilies(acc: Map<string, Set<GeoFamily>>): Map<string, GeoFamily[]> {
  return new Map(
    [...acc.keys()].sort().map((c) => [c, BOTH.filter((f) => acc.get(c)!.has(f))] as [string, GeoFamily[]]),
  );
}

function policyMatches(policy: Policy): (Match | undefined)[] {
  const out: (Match | undefined)[] = [];
  for (const chain of Object.values(policy.chains)) for (const rule of chain.rules ?? []) out.push(rule.match);
  for (const f of policy.forwarding?.markForwards ?? []) out.push(f.match);
  return out;
}

/**
 * Per country (sorted), the families whose set a rule looks it up in. A match restricted by
 * `family` tests that family only; any other is taken to test both (the compiler may narrow
 * it further from its addresses, so this can name a family no rule reaches, never miss one).
 */
export function policyCountryFamilies(policy: Policy): Map<string, GeoFamily[]> {
  const acc = new Map<string, Set<GeoFamily>>();
  for (const m of policyMatches(policy)) {
    const g = m?.xt?.geoip;
    if (!g) continue;
    const fams = m.family ? [m.family] : BOTH;
    for (const c of [...(g.source ?? []), ...(g.destination ?? [])]) {
      if (!acc.has(c)) acc.set(c, new Set());
      for (const f of fams) acc.get(c)!.add(f);
    }
  }
  return sortedFamilies(acc);
}

export function policyCountries(policy: Policy): string[] {
  return [...policyCountryFamilies(policy).keys()];
}

/** The union of several policies' country families (a rollback goes back to several versions). */
export function mergeCountryFamilies(
  maps: Iterable<ReadonlyMap<string, readonly GeoFamily[]>>,
): Map<string, GeoFamily[]> {
  const acc = new Map<string, Set<GeoFamily>>();
  for (const m of maps)
    for (const [c, fams] of m) {
      if (!acc.has(c)) acc.set(c, new Set());
      for (const f of fams) acc.get(c)!.add(f);
    }
  return sortedFamilies(acc);
}
