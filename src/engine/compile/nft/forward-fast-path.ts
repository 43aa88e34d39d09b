// The forward presets' fast path: an ESTABLISHED packet that the preset chain would return
// (the established skip after the port-scan ban check, engine/expand/established-skip.ts)
// and that the rule right after the jump then accepts is accepted before the jump, in one
// rule that holds the skip's test and the ban check negated:
//
//   forward:          meta l4proto != tcp ct state established ip saddr != @ban_v4 accept
//                     ... (one per skip rule and ban family)
//                     jump protect_forward
//                     ct state established,related accept
//
// Measured (bench/forwarding.ts): the jump, the two ban rules and the skip cost a
// conntrack-only forward path a few points per packet; this is one rule instead.
// Exact: the ban rules and the skip rules have no side effects (a set lookup, a return), so
// a packet the fast path accepts is one the chain would have returned untouched and the next
// rule would have accepted; a banned source fails `!= @ban` and goes through the jump to the
// ban's drop, so a source banned mid-connection is still cut off at its next packet. Made
// only when the compiled rules have exactly these shapes (checked below): the rule after the
// jump accepts every ESTABLISHED packet and nothing else in it acts (no counter, no log), or
// the chain ends there with policy accept. Otherwise the chain stays as it was.
import type { Chain as NftChain, Rule as NftRule } from "../../nft/index.ts";
import { protectChain } from "../../expand/types.ts";

const PRESET_CHAIN = protectChain("forward");
const BAN = /^(ip6?) saddr @([A-Za-z0-9_]+) drop$/;
const SKIP = /^((?:meta l4proto != [a-z]+ |tcp dport != (?:\d+|\{ \d+(?:, \d+)* \}) )?ct state established) return$/;
const ACCEPT_STATES = /^ct state (?:\{ ([a-z, ]+) \}|([a-z,]+)) accept$/;
const COMMENT =
  "preset protections: ESTABLISHED, no forward preset rule can match, source not banned: accepted here as by the next rule";

function acceptsEstablished(body: string): boolean {
  const m = ACCEPT_STATES.exec(body);
  return m !== null && (m[1] ?? m[2]!).split(/,\s*/).includes("established");
}

/** `rules` with the fast path put before the forward presets' jump, when it is exact (see above). */
export function forwardFastPath(rules: NftRule[], chains: NftChain[]): NftRule[] {
  const j = rules.findIndex((r) => r.body === `jump ${PRESET_CHAIN}`);
  if (j < 0) return rules;
  const entry = rules[j]!;
  const base = chains.find((c) => c.name === entry.chain);
  if (base?.hook !== "forward") return rules;
  const next = rules[j + 1]?.chain === entry.chain ? rules[j + 1] : undefined;
  if (next ? !acceptsEstablished(next.body) : base.policy !== "accept") return rules;

  const preset = rules.filter((r) => r.chain === PRESET_CHAIN);
  const bans: string[] = [];
  let i = 0;
  for (let m = BAN.exec(preset[i]?.body ?? ""); m; m = BAN.exec(preset[++i]?.body ?? ""))
    bans.push(`${m[1]} saddr != @${m[2]}`);
  const skips: string[] = [];
  for (let m = SKIP.exec(preset[i]?.body ?? ""); m; m = SKIP.exec(preset[++i]?.body ?? "")) skips.push(m[1]!);
  if (skips.length === 0) return rules;

  const fast = skips.flatMap((s) => (bans.length ? bans.map((b) => `${s} ${b} accept`) : [`${s} accept`]));
  const made = fast.map((body): NftRule => ({ ...entry, body, comment: COMMENT }));
  return [...rules.slice(0, j), ...made, ...rules.slice(j)];
}
