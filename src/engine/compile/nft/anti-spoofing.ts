// The antiSpoofing preset on nftables: its checks (bogon sources, IPv4 broadcast/multicast
// destinations, the reverse-path fib lookup) run once per connection direction instead of
// once per packet. Measured (bench/forwarding.ts): run per packet, these three rules cost
// more than conntrack itself on a router's external interface.
//
// How: the preset's chain runs in its own base chain just after conntrack (prerouting,
// priority mangle - 1) rather than from raw; that base chain holds steps 1 and 2 before its
// jump to the checks, so most packets never enter the preset chain:
//   1. packets not arriving on the preset's interface X return at once (one compare);
//   2. a packet conntrack finds ESTABLISHED returns when its direction of the connection
//      carries the "verified on X" conntrack label (bit 126 original, 127 reply);
//   3. otherwise the checks run as before, and a packet that passes them, arrives on X and
//      is NEW or ESTABLISHED sets its direction's label.
// Why this keeps the verdicts: an ESTABLISHED packet matched its direction's tuple, so its
// source and destination are the tuple's, exactly those of the earlier packet that set the
// label on X; the checks depend only on (source, destination, X) and on the routing table
// and the interface addresses. So a packet skips only checks it would pass again, unless
// routes or addresses changed during the connection. RELATED packets (ICMP errors carry
// another source), INVALID and untracked packets never skip and never set a label; a
// spoofed packet that conntrack files under a direction that was never seen on X (e.g. the
// LAN side's tuple sent from outside) is checked in full and dropped.
// Not kept: the checks now run after conntrack, so a packet the preset drops has been seen
// by conntrack (it may refresh or advance an entry it matches; an entry it would create is
// never confirmed). With an interface wildcard (`ppp*`) the label could not say which of the
// matching interfaces verified a direction, so such a preset stays per packet, in raw.
import type { Chain, Policy, Rule } from "../../policy/index.ts";
import { normalizeAction } from "../../policy/index.ts";
import { protectBaseChain, protectChain } from "../../expand/types.ts";
import { ifname, type Chain as NftChain } from "../../nft/index.ts";

/** Conntrack label bits: this direction of the connection passed the checks on the preset's interface. */
export const VERIFIED_LABEL = { original: 126, reply: 127 } as const;
/** After conntrack (-200), before the policy's mangle (-150) and dstnat (-100) chains. */
export const ANTI_SPOOFING_PRIORITY = { base: "mangle", offset: -1 } as const;

const PRE = protectChain("prerouting");
const BASE = protectBaseChain("prerouting");

/** The interface whose checks run per connection direction, or undefined when the preset stays per packet. */
export function verifiedInterface(original: Policy): string | undefined {
  const iif = original.protections.antiSpoofing?.interface;
  return iif !== undefined && !iif.endsWith("*") ? iif : undefined;
}

/**
 * Enter the preset chain from its own base chain after conntrack instead of from a jump in
 * the policy's raw prerouting chain (only the antiSpoofing preset has rules at prerouting).
 */
export function moveAntiSpoofing(expanded: Policy, original: Policy): Policy {
  if (!verifiedInterface(original) || !expanded.chains[PRE]) return expanded;
  const chains: Record<string, Chain> = {};
  let jump: Rule | undefined;
  for (const [name, chain] of Object.entries(expanded.chains)) {
    if (name === BASE) continue;
    const first = chain.rules[0];
    const a = first ? normalizeAction(first.action) : undefined;
    if (Object.hasOwn(original.chains, name) && a?.type === "jump" && a.chain === PRE) {
      jump = first;
      chains[name] = { ...chain, rules: chain.rules.slice(1) };
    } else chains[name] = name === PRE ? { ...chain, table: "mangle" } : chain;
  }
  jump ??= expanded.chains[BASE]!.rules[0]!;
  chains[BASE] = {
    table: "mangle",
    hook: "prerouting",
    policy: "accept",
    comment: "base chain for the protection presets at prerouting (after conntrack)",
    rules: [jump],
  };
  return {
    ...expanded,
    chains: Object.fromEntries(Object.entries(chains).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
}

/** The base chain's priority: just after conntrack. */
export function placeAntiSpoofing(chain: NftChain, original: Policy): NftChain {
  return chain.name === BASE && verifiedInterface(original) ? { ...chain, priority: ANTI_SPOOFING_PRIORITY } : chain;
}

interface Body {
  body: string;
  comment: string;
}

/** Rules before the jump to the checks (in protect_prerouting_base) and after them (in protect_prerouting). */
export function antiSpoofingCache(iif: string): { head: Body[]; tail: Body[] } {
  const x = ifname(iif);
  const c = (what: string) => `preset antiSpoofing: ${what}`.slice(0, 128);
  return {
    head: [
      { body: `iifname != ${x} return`, comment: c(`only packets arriving on ${iif} are checked`) },
      {
        body: `ct state established ct direction original ct label ${VERIFIED_LABEL.original} return`,
        comment: c(`this direction of the connection passed the checks on ${iif} already`),
      },
      {
        body: `ct state established ct direction reply ct label ${VERIFIED_LABEL.reply} return`,
        comment: c(`this direction of the connection passed the checks on ${iif} already`),
      },
    ],
    tail: [
      {
        body: `ct state new,established ct direction original ct label set ${VERIFIED_LABEL.original}`,
        comment: c(`checks passed on ${iif}: later packets of this direction skip them`),
      },
      {
        body: `ct state established ct direction reply ct label set ${VERIFIED_LABEL.reply}`,
        comment: c(`checks passed on ${iif}: later packets of this direction skip them`),
      },
    ],
  };
}

export { PRE as ANTI_SPOOFING_CHAIN, BASE as ANTI_SPOOFING_BASE };
