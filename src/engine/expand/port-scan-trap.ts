// Port-scan sand trap (seed: iptables hardening tricks, "Port scanning"): a probe of a
// listed port logs and bans the source; the ban is the recent list's timeout, so it
// expires by itself (the seed's `--remove` rule is not needed).
import type { Protections, Rule } from "../policy/index.ts";
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
}

export function trapShareOf(policy: { protections: Protections }): TrapShare | undefined {
  const t = policy.protections.portScanTrap;
  if (!t?.share) return undefined;
  return { list: t.share.list, ttlSeconds: t.share.ttlSeconds, logPrefix: t.logPrefix, ports: [...t.ports] };
}
