// Port-scan sand trap (seed: iptables hardening tricks, "Port scanning"): a probe of a
// listed port logs and bans the source; the ban is the recent list's timeout, so it
// expires by itself (the seed's `--remove` rule is not needed).
import { isNegated, type Policy, type Protections, type Rule } from "../policy/index.ts";
import { parsePrefix, prefixContains } from "../net/address.ts";
import { comment, type PresetOutput, type Slot } from "./types.ts";

export const PORTSCAN_LIST = "protect_portscan";

export function portScanTrap(p: NonNullable<Protections["portScanTrap"]>): PresetOutput {
  const ports = p.ports.join(",");
  const ban: Rule = {
    comment: comment("portScanTrap", `drop sources banned for probing ${ports} (ban ${p.banSeconds}s)`),
    match: { recent: { name: PORTSCAN_LIST, mode: "rcheck", seconds: p.banSeconds, side: "source" } },
    action: "drop",
  };
  const probe: Rule[] = [
    {
      comment: comment("portScanTrap", `log and ban sources probing ${ports}`),
      match: { protocol: "tcp", dport: [...p.ports], recent: { name: PORTSCAN_LIST, mode: "set", side: "source" } },
      action: { type: "log", prefix: p.logPrefix },
    },
    {
      comment: comment("portScanTrap", `drop the probe of ${ports}`),
      match: { protocol: "tcp", dport: [...p.ports] },
      action: "drop",
    },
  ];
  const slots: Slot[] = p.forward ? ["input", "forward"] : ["input"];
  return { rules: Object.fromEntries(slots.map((s) => [s, [ban, ...probe]])) };
}

/** Ban checks must come before everything else a preset does: split them out for ordering. */
export function isBanCheck(rule: Rule): boolean {
  return rule.match?.recent?.name === PORTSCAN_LIST && rule.match.recent.mode === "rcheck";
}

/** What the agent and the API need to share a policy's trap hits (undefined: it does not share). */
export interface TrapShare {
  list: string;
  ttlSeconds: number;
  /** The trap's log prefix and ports: a log event with both is a new trap ban. */
  logPrefix: string;
  ports: number[];
  /**
   * Sources never banned fleet-wide (a trap hit's source can be forged): `share.exempt` and
   * every address or prefix the policy's own rules accept by `saddr` (directly or through a
   * static set). Checked by the API, where the fleet ban is made.
   */
  exempt: string[];
}

export function trapShareOf(policy: Pick<Policy, "protections" | "chains" | "sets">): TrapShare | undefined {
  const t = policy.protections.portScanTrap;
  if (!t?.share) return undefined;
  const exempt = new Set<string>(t.share.exempt ?? []);
  for (const a of acceptedSources(policy)) exempt.add(a);
  return {
    list: t.share.list,
    ttlSeconds: t.share.ttlSeconds,
    logPrefix: t.logPrefix,
    ports: [...t.ports],
    exempt: [...exempt],
  };
}

/** The exempt entry that covers `address`, if any. */
export function trapShareExemption(share: Pick<TrapShare, "exempt">, address: string): string | undefined {
  const inner = parsePrefix(address);
  if (!inner) return undefined;
  return share.exempt.find((e) => {
    const outer = parsePrefix(e);
    return outer !== null && prefixContains(outer, inner);
  });
}

/**
 * Addresses and prefixes that rules with action accept match by positive `saddr` (a
 * trusted peer's address is exactly what a forger would pick). Negated matches, dynamic
 * sets and other match keys are not followed: whatever they accept is not a fixed source.
 */
function acceptedSources(policy: Pick<Policy, "chains" | "sets">): string[] {
  const out: string[] = [];
  for (const chain of Object.values(policy.chains ?? {}))
    for (const r of chain.rules) {
      const accepts = r.action === "accept" || (typeof r.action === "object" && r.action?.type === "accept");
      const saddr = r.match?.saddr;
      if (!accepts || saddr === undefined || isNegated(saddr)) continue;
      for (const item of Array.isArray(saddr) ? saddr : [saddr]) {
        if (!item.startsWith("@")) {
          out.push(item);
          continue;
        }
        const set = policy.sets?.[item.slice(1)];
        if (!set || set.dynamic || (set.type !== "ipv4_addr" && set.type !== "ipv6_addr")) continue;
        for (const e of set.elements) if (typeof e === "string" && parsePrefix(e)) out.push(e);
      }
    }
  return out;
}
