// Smaller lints: unreachable user chains, unused objects, an empty policy, short SPA secrets,
// ICMP of the other family.
import { warning, type Diagnostic } from "../diagnostics.ts";
import { unwrap, type Match, type Policy } from "../policy/index.ts";
import { chainHooks, rulesOf, sortedEntries } from "./model.ts";

export function miscWarnings(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const f = policy.forwarding;
  const p = policy.protections;
  const hasProtections = Object.values(p).some((v) => v !== undefined && !(Array.isArray(v) && v.length === 0));
  if (
    Object.keys(policy.chains).length === 0 &&
    !hasProtections &&
    !f.portForwards.length &&
    !f.rangeForwards.length &&
    !f.markForwards.length
  ) {
    out.push(
      warning(
        [],
        "empty_policy",
        `the policy has no chains, protections or forwards: applying it removes every Palisade rule from the host`,
      ),
    );
  }
  const hooks = chainHooks(policy);
  for (const [name, chain] of sortedEntries(policy.chains)) {
    if (!chain.hook && hooks.get(name)!.size === 0) {
      out.push(
        warning(
          ["chains", name],
          "unreachable_user_chain",
          `chain "${name}" has no hook and no base chain reaches it by jump/goto, so its rules never run`,
        ),
      );
    }
  }
  const used = {
    sets: new Set<string>(),
    counters: new Set<string>(),
    quotas: new Set<string>(),
    accounting: new Set<string>(),
  };
  for (const r of rulesOf(policy)) {
    const icmp = icmpOtherFamily(r.match);
    if (icmp) out.push(warning([...r.path, "match", "protocol"], "icmp_other_family", icmp));
    for (const key of ["saddr", "daddr"] as const) {
      const v = r.match[key];
      if (v === undefined) continue;
      const val = typeof v === "object" && !Array.isArray(v) ? v.not : v;
      for (const item of Array.isArray(val) ? val : [val]) if (item.startsWith("@")) used.sets.add(item.slice(1));
    }
    if (r.match.tupleSet) used.sets.add(unwrap(r.match.tupleSet).value.set);
    if (r.match.quota) used.quotas.add(r.match.quota.name);
    if (r.action.type === "counter") used.counters.add(r.action.name);
    if (r.action.type === "account") used.accounting.add(r.action.table);
    if (r.action.type === "setUpdate") used.sets.add(r.action.set);
  }
  for (const [name] of sortedEntries(policy.sets))
    if (!used.sets.has(name))
      out.push(warning(["sets", name], "unused_object", `set "${name}" is declared but no rule matches on it`));
  for (const key of ["counters", "quotas", "accounting"] as const) {
    for (const name of Object.keys(policy[key]).sort()) {
      if (!used[key].has(name))
        out.push(warning([key, name], "unused_object", `${key} entry "${name}" is declared but no rule uses it`));
    }
  }
  out.push(...spaSecretWarnings(policy));
  return out;
}

/**
 * ICMP of the other family (ip6tables -p icmp, iptables -p ipv6-icmp, a common mistake):
 * valid, it matches packets of the rule's family that carry that protocol number, which
 * hosts do not send, so the rule likely meant the family's own ICMP.
 */
function icmpOtherFamily(m: Match): string | undefined {
  const p = m.protocol === undefined ? undefined : unwrap(m.protocol);
  if (!p || p.negated) return undefined;
  if (p.value === "icmp" && m.family === "ipv6")
    return "protocol icmp in an IPv6 rule matches IPv6 packets whose next header is 1 (IPv4's ICMP), which IPv6 hosts do not send, as ip6tables -p icmp does; ICMPv6 (ping, neighbour discovery) is protocol: icmpv6";
  if (p.value === "icmpv6" && m.family === "ipv4")
    return "protocol icmpv6 in an IPv4 rule matches IPv4 packets whose protocol is 58 (ICMPv6), which IPv4 hosts do not send, as iptables -p ipv6-icmp does; ICMP is protocol: icmp";
  return undefined;
}

/** Below this a secret may be guessed offline from one captured knock or the version checksum. */
export const SPA_SECRET_MIN = 16;

function spaSecretWarnings(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  (policy.protections.spaKnock ?? []).forEach((k, i) => {
    for (const key of ["openSecret", "closeSecret"] as const) {
      if (k[key].length >= SPA_SECRET_MIN) continue;
      out.push(
        warning(
          ["protections", "spaKnock", i, key],
          "spa_weak_secret",
          `${key} of "${k.name}" is ${k[key].length} characters: a captured knock or the version checksum lets anyone try guesses offline; use at least ${SPA_SECRET_MIN} random characters`,
        ),
      );
    }
  });
  return out;
}
