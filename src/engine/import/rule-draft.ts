// The rule under construction while one iptables command is parsed, and the small helpers
// match and target builders share (set a match key once, wrap a negation, add a note).
import { isNegated, type Match, type Rule } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import type { PolicyDraft } from "./draft.ts";
import type { Family } from "./values.ts";
import { PORT_PROTOCOLS } from "./vocab.ts";
import type { Table } from "./chains.ts";

export interface RuleDraft {
  /** ip6tables lines restrict their rules to IPv6 (and iptables lines to IPv4 when the script mixes both). */
  family?: Family;
  table: Table;
  /** The policy key of the chain the rule goes to (for generated names). */
  chainKey: string;
  match: Match;
  comment?: string;
  /** `-m comment --comment "palisade-counter:NAME"`: the rule counts into named counter NAME. */
  counterTag?: string;
  /** Options accepted without effect on verdicts, or renamed values: shown in the report. */
  notes: string[];
  /** `-m pknock` in TCP mode: the rule is lifted into protections.portKnock instead. */
  pknock?: Map<string, OptionValue>;
  policy: PolicyDraft;
  /** The source line (for what the report says about objects the rule declares). */
  line: number;
  /** Read by iptables, not ip6tables (IptablesContext.ipv4Program). */
  ipv4Program?: boolean;
  /** `recent --rttl` as written: kept only where it is always true (iptables.ts settleRttl). */
  rttl?: OptionValue;
  /** `multiport --ports`: source OR destination port; the line becomes two rules (splitEither). */
  portsEither?: { ports: Array<number | string>; neg: boolean; opt: string };
  /** `--ctstate STATES,DNAT`: a state in STATES or the NAT bit; the line becomes two rules (splitEither). */
  ctEither?: { states: CtStateName[]; nat: Array<"dnat" | "snat">; opt: string };
}

type CtStateName = Extract<NonNullable<Match["ctState"]>, readonly unknown[]>[number];

export interface OptionValue {
  value?: string;
  neg: boolean;
  /** The option as written, for error tokens. */
  opt: string;
}
export type Options = Map<string, OptionValue>;

type MatchKey = keyof Match;

export function setMatch<K extends MatchKey>(d: RuleDraft, key: K, value: Match[K], opt: string): void {
  if (d.match[key] !== undefined)
    fail("import_conflict", `${opt} conflicts with an earlier option that already sets ${String(key)}`, opt);
  d.match[key] = value;
}

export function negate<T>(neg: boolean, value: T): T | { not: T } {
  return neg ? { not: value } : value;
}

export function noNegation(o: OptionValue): void {
  if (o.neg) fail("import_unsupported", `'!' cannot be used with ${o.opt} in a policy rule`, o.opt);
}

/** The final rule from a draft and its action. */
export function finishRule(d: RuleDraft, action: Rule["action"]): Rule {
  const match = { ...d.match };
  if (d.family && !familyImplied(match, d.family)) match.family = d.family;
  // iptables -p ipv6-icmp is IPv4 protocol 58 (the mirror of ip6tables -p icmp): without the
  // family the renders would read protocol icmpv6 as IPv6's ICMP and drop the IPv4 rule.
  if (!match.family && match.protocol === "icmpv6" && (d.family === "ipv4" || d.ipv4Program)) match.family = "ipv4";
  const rule: Rule = { action };
  if (d.comment !== undefined) rule.comment = d.comment;
  if (Object.keys(match).length > 0) rule.match = match;
  return rule;
}

/** An address or ICMP match already pins the family; repeating it would only add noise. */
function familyImplied(m: Match, family: Family): boolean {
  const v4 = (s: string) => !s.includes(":") && !s.startsWith("@");
  const addrs = [m.saddr, m.daddr].flatMap((a) => {
    if (a === undefined) return [];
    const inner = typeof a === "object" && !Array.isArray(a) ? a.not : a;
    return Array.isArray(inner) ? inner : [inner];
  });
  if (addrs.some((a) => !a.startsWith("@"))) return addrs.every((a) => v4(a) === (family === "ipv4"));
  const proto = typeof m.protocol === "string" ? m.protocol : undefined;
  if (proto === "icmp" || m.icmpType !== undefined) return family === "ipv4";
  if (proto === "icmpv6" || m.icmpv6Type !== undefined) return family === "ipv6";
  return false;
}

/**
 * The matches of the rules a draft becomes. `multiport --ports P` (source or destination port
 * in P) is two rules: sport P, then dport P with sport not in P, so a packet with both ports in
 * P meets one rule, not two (exact for non-terminating actions too). `! --ports P` is one rule
 * (neither port in P). A per-rule token bucket (limit, meter) would become two buckets: refused.
 */
export function splitEither(d: RuleDraft): Match[] {
  const c = d.ctEither;
  if (c) {
    if (d.portsEither)
      fail("import_unsupported", `${c.opt} with states and DNAT/SNAT beside --ports: write the rules apart`, c.opt);
    if (d.match.ctState !== undefined || d.match.ctStatus !== undefined)
      fail(
        "import_conflict",
        `${c.opt} with states and DNAT/SNAT conflicts with another conntrack state or status`,
        c.opt,
      );
    perRuleState(
      d,
      c.opt,
      "--ctstate with states and DNAT/SNAT becomes two rules (a state, or the NAT bit without it)",
    );
    // The state, or the NAT bit without the state: a packet meets one rule (exact for any action).
    return [
      { ...d.match, ctState: c.states },
      { ...d.match, ctState: { not: c.states }, ctStatus: c.nat },
    ];
  }
  const e = d.portsEither;
  if (!e) return [d.match];
  if (d.match.sport !== undefined || d.match.dport !== undefined)
    fail("import_conflict", `${e.opt} conflicts with an earlier --sport/--dport option`, e.opt);
  const p = d.match.protocol;
  if (typeof p !== "string" || !PORT_PROTOCOLS.has(p))
    fail("import_unsupported", `port matches need -p tcp, udp, sctp, udplite or dccp (${e.opt})`, e.opt);
  const ports = e.ports.length === 1 ? e.ports[0]! : e.ports;
  if (e.neg) return [{ ...d.match, sport: { not: ports }, dport: { not: ports } }];
  perRuleState(d, e.opt, "--ports becomes two rules (source port, destination port)");
  return [
    { ...d.match, sport: ports },
    { ...d.match, sport: { not: ports }, dport: ports },
  ];
}

/** State kept per rule (a token bucket, a connection count, an nth counter, a scan tracker) cannot be split in two. */
function perRuleState(d: RuleDraft, opt: string, why: string): void {
  if (d.match.limit !== undefined || d.match.meter !== undefined)
    fail("import_unsupported", `${opt} with a rate limit: ${why}, each with its own token bucket`, opt);
  // Other state kept per rendered rule would be split in two the same way: two connection
  // counts, two every-nth counters, two port-scan trackers.
  const perRule = [
    d.match.connlimit !== undefined && "connlimit (each rule would count connections on its own)",
    d.match.statistic !== undefined &&
      (isNegated(d.match.statistic) ? d.match.statistic.not : d.match.statistic).mode === "nth" &&
      "statistic --mode nth (each rule would count its own packets)",
    d.match.xt?.psd !== undefined && "psd (each rule would track scans on its own)",
  ].filter((x): x is string => typeof x === "string");
  if (perRule.length > 0)
    fail(
      "import_unsupported",
      `${opt} with ${perRule[0]}: ${why}; write the two rules yourself so the state is shared`,
      opt,
    );
}
