// Policy matches -> nft match expressions, for one address family at a time.
//
// A rule is compiled once per family it applies to (see families()); each part below
// returns the expressions for that family. Lists become anonymous sets, `@name`
// becomes a named-set lookup, negation becomes `!=`. A positive address list that
// mixes literals and named sets is an OR nft cannot write in one expression: it is
// returned as alternatives (one rule each), which only terminating verdicts allow.
import type { Path } from "../../diagnostics.ts";
import { parsePrefix, type Prefix } from "../../net/address.ts";
import { ifname } from "../../nft/index.ts";
import { PROTOCOL_NUMBERS, TUPLE_SET_TYPES, isNegated, parseRate, unwrap, type Match } from "../../policy/index.ts";
import { FAMS, type Ctx, type Fam } from "./context.ts";
import { ctStateFlags, setFamily, tupleLookup, tupleSetFamily, valueOrSet } from "./sets.ts";
import {
  connlimitPart,
  hitcountCheck,
  hitcountListMember,
  stampCountChain,
  meterParts,
  recentParts,
  type HitcountCheck,
  type RecentPlan,
} from "./recent.ts";
import { quotaParts } from "./quota.ts";
import { extraFamilies, extraParts, negatedNatStatus, statisticPart } from "./match-extra.ts";
import { xtFamilies, xtNeedsFamily, xtParts } from "./match-xt.ts";
import { conditionPart } from "./condition.ts";
import { geoipParts } from "./geoip.ts";
import { psdCheck, type PsdCheck } from "./psd.ts";
import { declareLscanTracker, isLscanKind } from "./lscan.ts";

const PORT_PROTOCOLS = new Set(["tcp", "udp", "udplite", "sctp", "dccp"]);
const ANY_PORT_PROTOCOL = "meta l4proto { tcp, udp, udplite, sctp, dccp }";
// Constant key lists are module constants: compileMatch runs once per rule and family, and
// a cold worker runs it in the interpreter, where a literal is built on every call.
const ADDRESS_KEYS = ["saddr", "daddr"] as const;
const PORT_KEYS = ["sport", "dport"] as const;
const IF_KEYS = ["iif", "oif"] as const;
const IF_WORD = { iif: "iifname", oif: "oifname" } as const;

export interface MatchResult {
  /** Alternatives: the rule is emitted once per entry (usually exactly one). */
  alternatives: string[][];
  /** True when some expression already restricts the packet to the family (ip saddr, icmp type...). */
  impliesFamily: boolean;
  /**
   * A recent hit count: the rule is preceded by one that jumps to `chain` (where the packet
   * is counted) and `member` is appended to the rule itself (see recent.ts).
   */
  hitcount?: HitcountCheck;
  /** With a hit count and a limit: the alternatives for the counting jump, without the limit. */
  jumpAlternatives?: string[][];
  /** The alternatives end in a packet budget's two steps (quota.ts): tried in order, only a terminating action may follow. */
  quotaSplit?: boolean;
  /** psd: like a hit count, a jump that weighs the packet, then one rule per member (one per protocol). */
  psd?: PsdCheck;
  /**
   * The alternatives exclude each other (geoip countries: an address is in one country;
   * lscan's kinds: each a different state of the connection), so a packet meets at most
   * one of them and any action may run per alternative.
   */
  disjoint?: boolean;
  /**
   * The only OR is a negated ctStatus of NAT bits: each alternative is its head (no conntrack
   * entry, or the status test) followed by the same rest, so the rest can sit in one chain
   * both heads jump to (rules.ts, for a limit or nth counter kept once).
   */
  natSplit?: boolean;
}

const neg = (negated: boolean) => (negated ? "!= " : "");
const asList = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** Families an address list can match: each item's own family, or its set's. */
function addressFamilies(list: string[], ctx: Ctx, path: Path): Set<Fam> {
  const out = new Set<Fam>();
  for (const item of list) {
    if (item.startsWith("@")) {
      const def = ctx.policy.sets[item.slice(1)];
      const f = setFamily(def);
      if (!def) ctx.error(path, "nft_unknown_set", `set "${item.slice(1)}" is not declared under sets`);
      else if (!f) ctx.error(path, "nft_set_type", `set "${item.slice(1)}" holds ${def.type}, not addresses`);
      else out.add(f);
    } else {
      const p = parsePrefix(item);
      if (p) out.add(p.family);
    }
  }
  return out;
}

/**
 * The families a match restricts a rule to (undefined = no restriction). Parts that
 * exist in one family only (ICMP types, addresses) narrow it; an empty set means the
 * rule asks for IPv4-only and IPv6-only things at once.
 */
export function matchFamilies(m: Match | undefined, ctx: Ctx, path: Path): Set<Fam> | undefined {
  if (!m) return undefined;
  let allowed: Set<Fam> | undefined;
  const narrow = (fams: Iterable<Fam>) => {
    const s = new Set(fams);
    allowed = allowed ? new Set([...allowed].filter((f) => s.has(f))) : s;
  };
  if (m.family) narrow([m.family]);
  for (const key of ADDRESS_KEYS) {
    const v = m[key];
    if (v !== undefined) narrow(addressFamilies(asList(unwrap(v).value), ctx, [...path, key]));
  }
  // ICMP of the other family under an explicit family is that protocol number in the family
  // (ip6tables -p icmp: next header 1), so only a rule without a family is narrowed by it.
  if (m.protocol !== undefined && !isNegated(m.protocol) && !m.family) {
    if (m.protocol === "icmp") narrow(["ipv4"]);
    if (m.protocol === "icmpv6") narrow(["ipv6"]);
  }
  if (m.icmpType !== undefined) narrow(["ipv4"]);
  if (m.icmpv6Type !== undefined) narrow(["ipv6"]);
  if (m.tupleSet !== undefined) {
    const name = unwrap(m.tupleSet).value.set;
    const f = tupleSetFamily(ctx.policy.sets[name]);
    if (!f)
      ctx.error(
        [...path, "tupleSet"],
        "nft_set_type",
        `set "${name}" is not a tuple set (${TUPLE_SET_TYPES.join(", ")})`,
      );
    else narrow([f]);
  }
  const extra = extraFamilies(m);
  if (extra) narrow(extra);
  const xt = xtFamilies(m.xt);
  if (xt) narrow(xt);
  return allowed;
}

/** True when the match needs per-family expressions even without addresses (meters, recent lists). */
export function matchNeedsFamily(m: Match | undefined): boolean {
  return (
    !!m &&
    (m.meter !== undefined ||
      m.recent !== undefined ||
      m.saddr !== undefined ||
      m.daddr !== undefined ||
      m.saddrRange !== undefined ||
      m.tupleSet !== undefined ||
      m.daddrRange !== undefined ||
      m.fragment !== undefined ||
      m.routingHeader !== undefined ||
      m.ttl !== undefined ||
      m.dscp !== undefined ||
      m.connlimit !== undefined ||
      xtNeedsFamily(m.xt))
  );
}

/** An address list item: a named set (`@name`) or a literal already parsed (parsed once per rule and family). */
type AddressItem = { ref: string } | { prefix: Prefix };

function addressParts(
  items: AddressItem[],
  negated: boolean,
  side: "saddr" | "daddr",
  fam: Fam,
): { parts: string[]; alternatives?: string[] } {
  const expr = `${fam === "ipv4" ? "ip" : "ip6"} ${side}`;
  const full = fam === "ipv4" ? 32 : 128;
  const literals: string[] = [];
  const refs: string[] = [];
  for (const i of items) {
    if ("ref" in i) refs.push(i.ref);
    else literals.push(i.prefix.length === full ? i.prefix.address : `${i.prefix.address}/${i.prefix.length}`);
  }
  const pieces = [...(literals.length ? [valueOrSet(literals)] : []), ...refs];
  if (negated) return { parts: pieces.map((p) => `${expr} != ${p}`) };
  if (pieces.length === 1) return { parts: [`${expr} ${pieces[0]}`] };
  return { parts: [], alternatives: pieces.map((p) => `${expr} ${p}`) };
}

function portText(p: number | string): string {
  return String(p);
}

function markText(v: number | { value: number; mask: number }, what: string, negated: boolean): string {
  const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;
  if (typeof v === "number") return `${what} ${neg(negated)}${hex(v)}`;
  return `${what} & ${hex(v.mask)} ${negated ? "!=" : "=="} ${hex(v.value)}`;
}

/**
 * Expressions of a match for family `fam` (undefined: a family-agnostic rule), or null
 * when the match cannot apply to that family (e.g. only IPv4 addresses listed).
 */
export function compileMatch(
  m: Match | undefined,
  fam: Fam | undefined,
  ctx: Ctx,
  path: Path,
  timeouts: RecentPlan,
): MatchResult | null {
  const parts: string[] = [];
  let impliesFamily = false;
  const alternativeLists: string[][] = [];
  if (!m) return { alternatives: [parts], impliesFamily };

  for (const side of ADDRESS_KEYS) {
    const v = m[side];
    if (v === undefined || fam === undefined) continue;
    const { value, negated } = unwrap(v);
    const items: AddressItem[] = [];
    for (const i of asList(value)) {
      if (i.startsWith("@")) {
        if (setFamily(ctx.policy.sets[i.slice(1)]) === fam) items.push({ ref: i });
      } else {
        const prefix = parsePrefix(i);
        if (prefix?.family === fam) items.push({ prefix });
      }
    }
    if (items.length === 0) return null;
    const r = addressParts(items, negated, side, fam);
    parts.push(...r.parts);
    if (r.alternatives) alternativeLists.push(r.alternatives);
    impliesFamily = true;
  }

  if (m.tupleSet !== undefined && fam !== undefined) {
    const { value, negated } = unwrap(m.tupleSet);
    if (tupleSetFamily(ctx.policy.sets[value.set]) !== fam) return null;
    parts.push(tupleLookup(value, negated, fam));
    impliesFamily = true;
  }

  const proto = m.protocol === undefined ? undefined : unwrap(m.protocol);
  const portProto = proto && !proto.negated && PORT_PROTOCOLS.has(proto.value) ? proto.value : undefined;
  const hasPorts = m.sport !== undefined || m.dport !== undefined;
  // `tcp dport` already implies `meta l4proto tcp`; so do tcp flags.
  const protoImplied = portProto !== undefined && (hasPorts || (portProto === "tcp" && m.tcpFlags !== undefined));
  if (proto && !protoImplied)
    parts.push(`meta l4proto ${neg(proto.negated)}${PROTOCOL_NUMBERS[proto.value] ?? proto.value}`);
  if (hasPorts && !portProto) parts.push(ANY_PORT_PROTOCOL);
  for (const key of PORT_KEYS) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    parts.push(`${portProto ?? "th"} ${key} ${neg(negated)}${valueOrSet(asList(value).map(portText))}`);
  }

  for (const key of IF_KEYS) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    const names = asList(value).map((n) => (n.endsWith("*") ? ifname(n.slice(0, -1), { wildcard: true }) : ifname(n)));
    parts.push(`${IF_WORD[key]} ${neg(negated)}${valueOrSet(names)}`);
  }

  if (m.ctState !== undefined) {
    const { value, negated } = unwrap(m.ctState);
    parts.push(`ct state ${negated ? `!= ${valueOrSet([...value])}` : ctStateFlags([...value])}`);
  }
  if (m.tcpFlags !== undefined) {
    const { value, negated } = unwrap(m.tcpFlags);
    const compare = value.compare.length ? value.compare.join("|") : "0x0";
    parts.push(`tcp flags & (${value.mask.join("|")}) ${negated ? "!=" : "=="} ${compare}`);
  }
  if (m.icmpType !== undefined) {
    const { value, negated } = unwrap(m.icmpType);
    parts.push(`icmp type ${neg(negated)}${valueOrSet(asList(value).map(String))}`);
    impliesFamily = true;
  }
  if (m.icmpv6Type !== undefined) {
    const { value, negated } = unwrap(m.icmpv6Type);
    parts.push(`icmpv6 type ${neg(negated)}${valueOrSet(asList(value).map(String))}`);
    impliesFamily = true;
  }
  if (m.icmpCode !== undefined) parts.push(`${m.icmpType !== undefined ? "icmp" : "icmpv6"} code ${m.icmpCode}`);
  // Negated: the option missing, or its size outside (two rules; a packet matches one of them).
  let mssDisjoint = false;
  if (m.tcpMss !== undefined) {
    const { value, negated } = unwrap(m.tcpMss);
    if (!negated) parts.push(`tcp option maxseg size ${value}`);
    else {
      alternativeLists.push(["tcp option maxseg missing", `tcp option maxseg size != ${value}`]);
      mssDisjoint = true;
    }
  }
  // ! --ctstate DNAT: no conntrack entry, or one without the bit (match-extra.ts); disjoint too.
  const natStatus = m.ctStatus === undefined ? undefined : negatedNatStatus(m.ctStatus);
  if (natStatus) alternativeLists.push(["ct state invalid,untracked", natStatus]);
  if (m.length !== undefined) {
    const { value, negated } = unwrap(m.length);
    parts.push(`meta length ${neg(negated)}${value}`);
  }
  if (m.mark !== undefined) {
    const { value, negated } = unwrap(m.mark);
    parts.push(markText(value, "meta mark", negated));
  }
  if (m.ctmark !== undefined) {
    const { value, negated } = unwrap(m.ctmark);
    parts.push(markText(value, "ct mark", negated));
  }
  if (m.daddrType !== undefined) {
    const { value, negated } = unwrap(m.daddrType);
    parts.push(`fib daddr type ${neg(negated)}${valueOrSet([...value])}`);
  }
  if (m.rpfilter !== undefined) parts.push(`fib saddr . iif oif ${m.rpfilter === "fail" ? "missing" : "exists"}`);
  const extra = extraParts(m, fam);
  if (!extra) return null;
  parts.push(...extra.parts);
  if (extra.impliesFamily) impliesFamily = true;
  // m.xt: the xtables-addons matches nftables can express; checkTargetSupport
  // (compile/support.ts) refuses the others before this runs.
  const xt = xtParts(m, fam);
  if (!xt) return null;
  parts.push(...xt.parts);
  if (xt.alternatives) alternativeLists.push(xt.alternatives);
  // A product of OR-lists is exclusive when each list is: count the lists that are not.
  const inclusiveLists =
    alternativeLists.length - (xt.alternatives && xt.disjoint ? 1 : 0) - (mssDisjoint ? 1 : 0) - (natStatus ? 1 : 0);
  if (xt.impliesFamily) impliesFamily = true;
  if (m.xt?.lscan?.some(isLscanKind)) declareLscanTracker(ctx, [...path, "xt", "lscan"]);
  if (m.xt?.condition !== undefined) parts.push(conditionPart(m.xt.condition, ctx, [...path, "xt", "condition"]));
  // geoip's own OR-lists are disjoint; mixed with an inclusive OR-list the product is not.
  if (m.xt?.geoip !== undefined && fam !== undefined) {
    const g = geoipParts(m.xt.geoip, fam, ctx, [...path, "xt", "geoip"]);
    parts.push(...g.parts);
    alternativeLists.push(...g.alternatives);
    impliesFamily = true;
  }
  const disjoint = inclusiveLists === 0 && alternativeLists.length > 0;
  // Stateful parts last: a meter, recent list or quota must only see packets that
  // matched everything else (as in iptables, where matches are evaluated in order).
  let limitPart: string | undefined;
  if (m.limit !== undefined) {
    const { count, per } = parseRate(m.limit.rate);
    limitPart = `limit rate ${m.limit.over ? "over " : ""}${count}/${per}${m.limit.burst !== undefined ? ` burst ${m.limit.burst} packets` : ""}`;
    parts.push(limitPart);
  }
  if (m.meter !== undefined && fam !== undefined) {
    parts.push(...meterParts(m.meter, fam, ctx, [...path, "meter"]));
    impliesFamily = true;
  }
  let hitcount: HitcountCheck | undefined;
  if (m.recent !== undefined && fam !== undefined) {
    const r = m.recent;
    if (r.hitcount !== undefined && r.hitcount > 1 && (r.mode === "update" || r.mode === "rcheck")) {
      // Check-then-stamp (the set rule follows): this packet and H earlier ones, counted
      // from the list's first packet, which is not listed yet (compile/hitcount.ts).
      const stampAfter = path[0] === "chains" && ctx.stampAfter.has(`${String(path[1])}/${String(path[3])}`);
      const size = timeouts.sizeOf(r.name);
      const check = hitcountCheck(
        stampAfter ? { ...r, hitcount: r.hitcount + 1 } : r,
        fam,
        ctx,
        [...path, "recent"],
        size,
      );
      if (!check) return null;
      if (!stampAfter) parts.push(hitcountListMember(r, fam, ctx, [...path, "recent"], timeouts));
      // Counted where the list is stamped, or by an earlier rule with the same counter and
      // matches (compile/hitcount.ts countedBeforeRules): this rule only tests the outcome.
      const countedBefore = path[0] === "chains" && ctx.countedBefore.has(`${String(path[1])}/${String(path[3])}`);
      if ((ctx.stampCounted.has(r.name) && path[0] === "chains") || countedBefore) parts.push(check.member!);
      else hitcount = check;
    } else {
      parts.push(...recentParts(r, fam, ctx, [...path, "recent"], timeouts));
      // A stamp of a list counted where it is stamped: count it (a jump before the rule's action).
      const counters = r.mode === "set" && path[0] === "chains" ? ctx.stampCounted.get(r.name) : undefined;
      const mine = counters?.filter((c) => c.side === r.side);
      if (mine && mine.length > 0) {
        hitcount = stampCountChain(r.name, mine, fam, ctx, [...path, "recent"], timeouts.sizeOf(r.name));
        if (!hitcount) return null;
      }
    }
    impliesFamily = true;
  }
  let quotaSplit: string[] | undefined;
  if (m.quota !== undefined) {
    const q = quotaParts(m.quota, ctx, [...path, "quota"]);
    parts.push(...q.parts);
    quotaSplit = q.split;
  }
  if (m.statistic !== undefined) parts.push(statisticPart(m.statistic));
  let psd: PsdCheck | undefined;
  if (m.xt?.psd !== undefined && fam !== undefined) {
    psd = psdCheck(m, fam, ctx, [...path, "xt", "psd"]);
    if (!psd) return null;
    impliesFamily = true;
  }
  if (m.connlimit !== undefined && fam !== undefined) {
    // A prefix longer than this family's address: the rule is for the other family only.
    const part = connlimitPart(m.connlimit, fam, ctx, [...path, "connlimit"]);
    if (part === undefined) return null;
    parts.push(part);
    impliesFamily = true;
  }

  // Cartesian product of the OR-lists (at most saddr x daddr); most rules have none.
  let alternatives: string[][] = [[]];
  for (const list of alternativeLists) alternatives = alternatives.flatMap((a) => list.map((x) => [...a, x]));
  let rules = alternativeLists.length === 0 ? [parts] : alternatives.map((a) => [...a, ...parts]);
  // The jump that counts a hit leaves the limit out: the rule with the action evaluates it,
  // once, where the policy puts it (compile/hitcount.ts).
  const jumpRules =
    hitcount && limitPart !== undefined
      ? alternatives.map((a) => [...a, ...parts.filter((p) => p !== limitPart)])
      : undefined;
  // A packet budget's split is the rule's last expression: the others decide first.
  if (quotaSplit) rules = rules.flatMap((a) => quotaSplit.map((x) => [...a, x]));
  // Optional keys set one by one: spreading empty objects costs per rule in a cold worker.
  const out: MatchResult = { alternatives: rules, impliesFamily };
  if (quotaSplit) out.quotaSplit = true;
  if (hitcount) out.hitcount = hitcount;
  if (jumpRules) out.jumpAlternatives = jumpRules;
  if (psd) out.psd = psd;
  if (disjoint && !quotaSplit) out.disjoint = disjoint;
  if (natStatus && alternativeLists.length === 1 && !quotaSplit && !hitcount && !psd) out.natSplit = true;
  return out;
}

export { FAMS };
