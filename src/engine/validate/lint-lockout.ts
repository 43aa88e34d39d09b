// lockout_risk: with the failsafe off, a default-drop input/output chain that lets nothing
// of the agent's API connection through cuts the agent off from the API that could fix it.
import { warning, type Diagnostic, type Path } from "../diagnostics.ts";
import { unwrap, type Chain, type Match, type Policy } from "../policy/index.ts";
import { covers } from "./covers.ts";
import { rulesOf, sortedEntries } from "./model.ts";

export function lockoutWarnings(policy: Policy): Diagnostic[] {
  if (policy.failsafe.enabled) return [];
  const out: Diagnostic[] = [];
  const ports = policy.failsafe.ports;
  for (const [name, chain] of sortedEntries(policy.chains)) {
    if (chain.table !== "filter" || (chain.hook !== "input" && chain.hook !== "output")) continue;
    const at = dropsAll(name, chain);
    if (!at) continue;
    // Replies from the API arrive on input with the API port as source; requests leave on output to it.
    const portKey = chain.hook === "input" ? "sport" : "dport";
    const reach = reachable(policy, name);
    const keepsApi = rulesOf(policy).some(
      (r) => reach.has(r.chainName) && r.action.type === "accept" && allowsApi(r.match, portKey, ports),
    );
    if (!keepsApi) {
      out.push(
        warning(
          at,
          "lockout_risk",
          `chain "${name}" (${chain.hook}) drops by default, the failsafe is off and no rule accepts the agent's connection to the API: applying this policy can cut the agent off for good. Accept ctState established,related early in the chain, or tcp ${portKey} ${ports.join(",")}, or enable the failsafe`,
        ),
      );
    }
  }
  return out;
}

/**
 * The path that drops everything: the default policy, or a final unconditional drop/reject,
 * or queue without bypass (with no program reading the queue, the kernel drops the packet).
 */
function dropsAll(name: string, chain: Chain): Path | null {
  const last = chain.rules[chain.rules.length - 1];
  const a = last?.action;
  if (
    last &&
    !last.match &&
    (a === "drop" ||
      (typeof a === "object" &&
        (a.type === "drop" || a.type === "reject" || (a.type === "queue" && a.bypass !== true))))
  ) {
    return ["chains", name, "rules", chain.rules.length - 1];
  }
  return chain.policy === "drop" ? ["chains", name, "policy"] : null;
}

/**
 * Lenient on purpose: a rule restricted to the API's address or an interface still counts
 * (we do not know the endpoint here); what matters is established state or the API port.
 */
function allowsApi(m: Match, portKey: "sport" | "dport", ports: number[]): boolean {
  const { saddr: _s, daddr: _d, iif: _i, oif: _o, family: _f, ctState, ...rest } = m;
  if (ctState !== undefined) {
    const { value, negated } = unwrap(ctState);
    if (!negated && value.includes("established") && covers(rest, {})) return true;
  }
  return ports.some((port) =>
    covers(
      { ...rest, ...(ctState ? { ctState } : {}) },
      { protocol: "tcp", [portKey]: port, ctState: ["new", "established"] },
    ),
  );
}

/** A chain and every user chain it can jump to. */
function reachable(policy: Policy, from: string): Set<string> {
  const seen = new Set([from]);
  const work = [from];
  while (work.length) {
    for (const rule of policy.chains[work.pop()!]!.rules) {
      const a = rule.action;
      if (
        typeof a === "object" &&
        (a.type === "jump" || a.type === "goto") &&
        policy.chains[a.chain] &&
        !seen.has(a.chain)
      )
        seen.add(a.chain), work.push(a.chain);
    }
  }
  return seen;
}
