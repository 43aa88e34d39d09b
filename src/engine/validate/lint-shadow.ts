// rule_shadowed: a rule after a terminating rule that matches a superset of its packets
// can never match. Typical after reordering or a bulk import.
import { warning, type Diagnostic } from "../diagnostics.ts";
import { TERMINATING, type Policy } from "../policy/index.ts";
import { pointer } from "../diagnostics.ts";
import { covers, isStateless } from "./covers.ts";
import { rulesOf, type RuleRef } from "./model.ts";

export function shadowWarnings(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const byChain = new Map<string, RuleRef[]>();
  for (const r of rulesOf(policy)) (byChain.get(r.chainName) ?? byChain.set(r.chainName, []).get(r.chainName)!).push(r);
  for (const rules of byChain.values()) {
    // Only terminating, stateless rules can shadow; keep them in order.
    const shadows: RuleRef[] = [];
    for (const r of rules) {
      const by = shadows.find((s) => covers(s.match, r.match));
      if (by) {
        const what = Object.keys(by.match).length === 0 ? "matches every packet" : "matches every packet this rule matches";
        out.push(warning(r.path, "rule_shadowed", `this rule can never match: the earlier rule ${pointer(by.path)} (${by.action.type}) ${what}; remove this rule or move it above that one`));
        continue;
      }
      if (TERMINATING.has(r.action.type) && isStateless(r.match)) shadows.push(r);
    }
  }
  return out;
}
