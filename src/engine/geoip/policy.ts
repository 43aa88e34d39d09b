// Which countries a policy's rules test: what the API sends an agent and checks at deploy.
import type { Policy } from "../policy/index.ts";

export function policyCountries(policy: Policy): string[] {
  const out = new Set<string>();
  for (const chain of Object.values(policy.chains)) {
    for (const rule of chain.rules ?? []) {
      const g = rule.match?.xt?.geoip;
      if (!g) continue;
      for (const c of [...(g.source ?? []), ...(g.destination ?? [])]) out.add(c);
    }
  }
  return [...out].sort();
}
