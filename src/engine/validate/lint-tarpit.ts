// tarpit_without_notrack (xtables-addons manual, TARPIT): with conntrack loaded, each
// tarpitted connection costs a conntrack entry unless a raw-table NOTRACK rule exempts it.
import { warning, type Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";
import { covers } from "./covers.ts";
import { rulesOf, type RuleRef } from "./model.ts";

const NAT_ACTIONS = new Set(["snat", "dnat", "masquerade", "redirect", "netmap"]);

export function tarpitWarnings(policy: Policy): Diagnostic[] {
  const rules = rulesOf(policy);
  const tarpits = rules.filter(
    (r) => r.action.type === "tarpit" || (r.action.type === "chaos" && r.action.mode === "tarpit"),
  );
  if (tarpits.length === 0 || !conntrackInUse(policy, rules)) return [];
  const notracks = rules.filter((r) => r.action.type === "notrack" && r.chain.table === "raw");
  const out: Diagnostic[] = [];
  for (const t of tarpits) {
    // Interfaces and output-side keys differ between raw prerouting and the tarpit's hook; compare the rest.
    const { oif: _o, ...traffic } = t.match;
    if (notracks.some((n) => covers(n.match, traffic))) continue;
    out.push(
      warning(
        [...t.path, "action"],
        "tarpit_without_notrack",
        `conntrack is in use (connection-state matches, NAT or forwards), so every tarpitted connection holds a conntrack entry for its 12-24 minutes; add a notrack rule in a raw prerouting chain for the same traffic (e.g. the same protocol and dport)`,
      ),
    );
  }
  return out;
}

function conntrackInUse(policy: Policy, rules: readonly RuleRef[]): boolean {
  const f = policy.forwarding;
  if (f.portForwards.length || f.rangeForwards.length || f.markForwards.length) return true;
  const p = policy.protections;
  if (p.bogusPackets?.enabled || p.synFlood) return true;
  return rules.some(
    (r) =>
      r.match.ctState !== undefined ||
      r.match.ctmark !== undefined ||
      r.action.type === "connmark" ||
      NAT_ACTIONS.has(r.action.type),
  );
}
