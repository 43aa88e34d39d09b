// The extra match keys (policy/match-extra.ts) as nft expressions for one family.
import { parsePrefix } from "../../net/address.ts";
import {
  OWNER_NAME,
  PROTOCOL_NUMBERS,
  ipsecTunnelFamily,
  unwrap,
  type Match,
  type WEEKDAYS,
} from "../../policy/index.ts";
import type { Fam } from "./context.ts";

const neg = (negated: boolean) => (negated ? "!= " : "");

/** The family an address range belongs to. */
export function rangeFamily(range: string): Fam | undefined {
  return parsePrefix(range.split("-")[0]!)?.family;
}

/** Families the extra keys restrict a rule to (ranges: their addresses' family; fragments: IPv4). */
export function extraFamilies(m: Match): Fam[] | undefined {
  const fams = new Set<Fam>(["ipv4", "ipv6"]);
  for (const key of ["saddrRange", "daddrRange"] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const f = rangeFamily(unwrap(v).value);
    for (const x of [...fams]) if (x !== f) fams.delete(x);
  }
  if (m.fragment !== undefined) fams.delete("ipv6");
  if (m.routingHeader !== undefined) fams.delete("ipv4");
  for (const key of ["saddr", "daddr"] as const) {
    const v = m.ctOriginal?.[key];
    if (v === undefined) continue;
    const f = parsePrefix(unwrap(v).value)?.family;
    for (const x of [...fams]) if (x !== f) fams.delete(x);
  }
  // Tunnel endpoints are of the rule's family, as in iptables (an IPv4 rule sees IPv4 packets only).
  const tunnel = m.ipsec ? ipsecTunnelFamily(m.ipsec) : undefined;
  if (tunnel !== undefined) for (const x of [...fams]) if (x !== tunnel) fams.delete(x);
  return fams.size === 2 ? undefined : [...fams];
}

/**
 * `ctStatus: { not: [dnat/snat only] }` is iptables' `! --ctstate DNAT`, which a packet without
 * a conntrack entry (invalid, untracked) matches: it has no NAT bit. nft's `ct status` stops the
 * rule there (measured, kernel 6.18: `ct status & dnat == 0` counted no untracked packet), so
 * match.ts renders it as two disjoint rules, `ct state invalid,untracked` or the status test.
 */
export function negatedNatStatus(v: NonNullable<Match["ctStatus"]>): string | undefined {
  const { value, negated } = unwrap(v);
  return negated && value.every((b) => b === "dnat" || b === "snat")
    ? `ct status & (${value.join("|")}) == 0`
    : undefined;
}

/** Expressions for the extra keys; null when the rule cannot apply to `fam`. */
export function extraParts(m: Match, fam: Fam | undefined): { parts: string[]; impliesFamily: boolean } | null {
  const parts: string[] = [];
  let impliesFamily = false;
  for (const [key, what] of [
    ["skuid", "meta skuid"],
    ["skgid", "meta skgid"],
  ] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    // A name (the schema's OWNER_NAME) is quoted: nft resolves it with getpwnam/getgrnam when
    // it loads the rule, as iptables does, and refuses one the host lacks ("User does not exist").
    const text = typeof value === "string" && OWNER_NAME.test(value) ? `"${value}"` : value;
    parts.push(`${what} ${neg(negated)}${text}`);
  }
  if (m.ctStatus !== undefined && !negatedNatStatus(m.ctStatus)) {
    const { value, negated } = unwrap(m.ctStatus);
    // Any of the bits: a bitmask test (ct status is a bitmask in nft).
    parts.push(`ct status & (${value.join("|")}) ${negated ? "==" : "!="} 0`);
  }
  for (const [key, side] of [
    ["saddrRange", "saddr"],
    ["daddrRange", "daddr"],
  ] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    const f = rangeFamily(value);
    if (fam !== undefined && f !== fam) return null;
    parts.push(`${f === "ipv6" ? "ip6" : "ip"} ${side} ${neg(negated)}${value}`);
    impliesFamily = true;
  }
  if (m.fragment !== undefined) {
    if (fam === "ipv6") return null;
    // Non-first fragments: a fragment offset (iptables -f).
    parts.push(`ip frag-off & 0x1fff ${m.fragment ? "!=" : "=="} 0`);
    impliesFamily = true;
  }
  if (m.routingHeader !== undefined) {
    if (fam === "ipv4") return null;
    // nft's exthdr lookup fails without a routing header and the rule stops, negated tests
    // included, as ip6t_rt returns false; nft adds the meta nfproto ipv6 it needs itself.
    const { type, segmentsLeft } = m.routingHeader;
    const before = parts.length;
    if (type !== undefined) {
      const { value, negated } = unwrap(type);
      parts.push(`rt type ${neg(negated)}${value}`);
    }
    if (segmentsLeft !== undefined) {
      const { value, negated } = unwrap(segmentsLeft);
      parts.push(`rt seg-left ${neg(negated)}${value}`);
    }
    if (parts.length === before) parts.push("exthdr rt exists");
    impliesFamily = true;
  }
  if (m.pktType !== undefined) {
    const { value, negated } = unwrap(m.pktType);
    parts.push(`meta pkttype ${neg(negated)}${value}`);
  }
  if (m.macSource !== undefined) {
    // nft adds `meta iiftype ether` itself, as xt_mac refuses packets of other link types.
    const { value, negated } = unwrap(m.macSource);
    parts.push(`ether saddr ${neg(negated)}${value}`);
  }
  if (m.time !== undefined) parts.push(...timeParts(m.time));
  if (m.socket !== undefined) {
    // nft_socket looks the socket up as xt_socket does and reads IP_TRANSPARENT for every kind
    // of socket: `socket transparent 1` is --transparent --nowildcard, `0-1` "a socket
    // exists" (--nowildcard). Without wildcard, or with restoreMark, support.ts refuses the
    // rule for nftables (socket wildcard / socket mark stop the rule for half-open and
    // time-wait sockets, which xt_socket matches); the forms below are never rendered then.
    const s = m.socket;
    parts.push(s.transparent ? "socket transparent 1" : "socket transparent 0-1");
    if (!s.wildcard) parts.push("socket wildcard 0");
    if (s.restoreMark) parts.push("meta mark set socket mark");
  }
  if (m.dscp !== undefined) {
    // ip dscp / ip6 dscp each stop the other family's packets, negated too: one rule per family.
    if (fam === undefined) return null;
    const { value, negated } = unwrap(m.dscp);
    parts.push(`${fam === "ipv4" ? "ip" : "ip6"} dscp ${neg(negated)}${value}`);
    impliesFamily = true;
  }
  if (m.ttl !== undefined) {
    // Both families: the rule is compiled per family (matchNeedsFamily).
    if (fam === undefined) return null;
    const op = { eq: "", ne: "!= ", lt: "< ", gt: "> " }[m.ttl.op];
    parts.push(`${fam === "ipv4" ? "ip ttl" : "ip6 hoplimit"} ${op}${m.ttl.value}`);
    impliesFamily = true;
  }
  if (m.ctOriginal !== undefined) {
    const c = m.ctOriginal;
    if (c.protocol !== undefined) {
      const { value, negated } = unwrap(c.protocol);
      parts.push(`ct original protocol ${neg(negated)}${PROTOCOL_NUMBERS[value] ?? value}`);
    }
    for (const side of ["saddr", "daddr"] as const) {
      const v = c[side];
      if (v === undefined) continue;
      const { value, negated } = unwrap(v);
      const f = parsePrefix(value)?.family;
      if (fam !== undefined && f !== fam) return null;
      parts.push(`ct original ${f === "ipv6" ? "ip6" : "ip"} ${side} ${neg(negated)}${value}`);
      impliesFamily = true;
    }
    if (c.sport !== undefined || c.dport !== undefined) {
      // nft (1.0.6) types `ct original proto-src/-dst` only after `meta l4proto P`. The packet's
      // protocol is the connection's except for an ICMP error related to it, which
      // compile/support.ts refuses to let reach such a rule (match.ctOriginalPortRelated).
      parts.push(`meta l4proto ${c.protocol}`);
      for (const [key, what] of [
        ["sport", "proto-src"],
        ["dport", "proto-dst"],
      ] as const) {
        const v = c[key];
        if (v === undefined) continue;
        const { value, negated } = unwrap(v);
        parts.push(`ct original ${what} ${neg(negated)}${value}`);
      }
    }
  }
  if (m.ipsec !== undefined) {
    // in: the packet's secpath (it was decapsulated); out: its route goes through an xfrm
    // policy. nft cannot test an SA's protocol: protocol esp is rendered without it (a
    // validation warning says so), ah/ipcomp are refused (compile/support.ts).
    const { direction, policy } = m.ipsec;
    const tunnel = ipsecTunnelFamily(m.ipsec);
    if (tunnel === undefined) {
      parts.push(`${direction === "in" ? "meta" : "rt"} ipsec ${policy === "ipsec" ? "exists" : "missing"}`);
    } else {
      if (fam !== undefined && fam !== tunnel) return null;
      // nft_xfrm reads the first SA's outer addresses and does not match a packet without an
      // SA or with a transport-mode one, so `exists` would be redundant. The SA's family is not
      // the packet's (IPv6 in an IPv4 tunnel): `meta nfproto` is added, as iptables' table has it.
      for (const [key, side] of [
        ["tunnelSrc", "saddr"],
        ["tunnelDst", "daddr"],
      ] as const) {
        const v = m.ipsec[key];
        if (v === undefined) continue;
        const { value, negated } = unwrap(v);
        parts.push(`ipsec ${direction} ${tunnel === "ipv6" ? "ip6" : "ip"} ${side} ${neg(negated)}${value}`);
      }
    }
  }
  return { parts, impliesFamily };
}

/**
 * `numgen` for a statistic match. random: xt_statistic matches when 31 random bits are below
 * round(p * 2^31); `numgen random mod 2^31` draws the same range uniformly. nth: xt starts
 * its counter so that packet number packet+1 matches first, then every `every`-th; `numgen
 * inc` gives the k-th packet (k-1) mod every, so that packet has the value `packet`.
 */
export function statisticPart(v: NonNullable<Match["statistic"]>): string {
  const { value, negated } = unwrap(v);
  if (value.mode === "random") {
    // Below K, written as <= K-1 or > K-1 since K may be 2^31 (out of numgen's range); K = 0
    // (never) is > 2^31-1.
    const k = Math.round(value.probability * 0x80000000);
    const never = "> 2147483647";
    const always = "<= 2147483647";
    if (k === 0) return `numgen random mod 2147483648 ${negated ? always : never}`;
    return `numgen random mod 2147483648 ${negated ? ">" : "<="} ${k - 1}`;
  }
  return `numgen inc mod ${value.every} ${negated ? "!=" : "=="} ${value.packet}`;
}

/** nft numbers weekdays from 0 = Sunday. */
const NFT_DAY: Record<(typeof WEEKDAYS)[number], number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };
const secondsOfDay = (t: string) => {
  const [h, m, s] = t.split(":").map(Number) as [number, number, number];
  return h * 3600 + m * 60 + s;
};
const epochSeconds = (date: string) => Date.parse(`${date}Z`) / 1000;

/**
 * `-m time` (UTC). Numbers, never "hh:mm" strings: nft converts a quoted time of day or date
 * from the local time zone of the process that loads it, a number it takes as UTC seconds
 * (checked: `meta hour 3600` loaded under TZ=Europe/Berlin lists as "01:00" in UTC).
 * The kernel compares `meta hour` with the UTC time of day, so the range is exact; xt_time
 * takes both ends inclusive and a wrapped range (start after stop) as "at or after start, or
 * at or before stop", which is the complement of stop+1 .. start-1 (nft's own rewrite of a
 * wrapped range excludes both ends). `meta time` is nanoseconds: xt_time compares whole
 * seconds, so the last second of dateStop is `< dateStop+1`.
 */
export function timeParts(t: NonNullable<Match["time"]>): string[] {
  const out: string[] = [];
  const start = secondsOfDay(t.start ?? "00:00:00");
  const stop = secondsOfDay(t.stop ?? "23:59:59");
  if (start < stop) {
    if (start !== 0 || stop !== 86399) out.push(`meta hour ${start}-${stop}`);
  } else if (start > stop + 1) {
    // start == stop and start == stop+1 are the whole day.
    out.push(stop + 1 === start - 1 ? `meta hour != ${stop + 1}` : `meta hour != ${stop + 1}-${start - 1}`);
  }
  if (t.days !== undefined && new Set(t.days).size < 7) {
    const days = [...new Set(t.days.map((d) => NFT_DAY[d]))].sort((a, b) => a - b);
    out.push(days.length === 1 ? `meta day ${days[0]}` : `meta day { ${days.join(", ")} }`);
  }
  if (t.dateStart !== undefined) out.push(`meta time >= ${epochSeconds(t.dateStart)}`);
  if (t.dateStop !== undefined) out.push(`meta time < ${epochSeconds(t.dateStop) + 1}`);
  return out;
}
