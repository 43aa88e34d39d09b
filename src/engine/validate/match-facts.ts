// The stateless part of a match, parsed once into plain numbers and sets so that
// containment (factsCover) costs no string parsing. factsCover(facts(a), facts(b)) answers
// exactly what covers(a, b) in covers.ts answers when `a` is stateless; the shadow lint
// compares thousands of rules with it.
import { canonicalJson } from "../checksum.ts";
import { ipv4ToInt, ipv6ToBigInt, parsePrefix } from "../net/address.ts";
import { unwrap, type Match } from "../policy/index.ts";
import { asList } from "./model.ts";

/**
 * The keys covers() decides on, in a fixed order: bit i = COVER_KEYS[i]. Each tests the packet
 * alone (PACKET_KEYS); a match with any other key covers nothing.
 */
export const COVER_KEYS = [
  "family",
  "saddr",
  "daddr",
  "protocol",
  "sport",
  "dport",
  "iif",
  "oif",
  "ctState",
  "tcpFlags",
  "tcpMss",
  "icmpType",
  "icmpv6Type",
  "length",
  "mark",
  "ctmark",
  "daddrType",
  "rpfilter",
] as const satisfies ReadonlyArray<keyof Match>;
export type FactKey = (typeof COVER_KEYS)[number];
export const KEY_BIT: Readonly<Record<FactKey, number>> = Object.fromEntries(
  COVER_KEYS.map((k, i) => [k, 1 << i]),
) as Record<FactKey, number>;
export const COVER_KEY_SET: ReadonlySet<string> = new Set<string>(COVER_KEYS);

/**
 * The keys of a match that test the packet alone: no state kept, nothing counted, the same
 * answer for the same packet (the rest, limit, meter, recent, quota, xt and the extra keys,
 * are taken as keeping state). The same as COVER_KEYS but for icmpCode, which covers() has
 * never decided on: a rule with a code covers no other (the shadow lint misses what such a
 * rule shadows, never claims too much); adding it would change what the lint reports.
 */
export const PACKET_KEYS: ReadonlySet<string> = new Set<keyof Match>([...COVER_KEYS, "icmpCode"]);

/** One address item: "@set" references (and anything unparsable) only equal themselves. */
export interface AddrItem {
  raw: string;
  /** 4 or 6; 0 for a set reference or text that is not an address. */
  fam: 0 | 4 | 6;
  len: number;
  /** The network (host bits cleared): a number for IPv4, a bigint for IPv6. */
  net: number | bigint;
}

export type KeyFact =
  | { kind: "addr"; negated: boolean; canon: string; items: AddrItem[] }
  | { kind: "port"; negated: boolean; canon: string; ranges: Array<[number, number]> }
  | { kind: "iface"; negated: boolean; canon: string; items: string[] }
  | { kind: "list"; negated: boolean; canon: string; items: string[] }
  | { kind: "eq"; negated: boolean; canon: string };

export interface MatchFacts {
  /** Bits of the stateless keys present (defined). */
  mask: number;
  /** True when every present key is one of COVER_KEYS (covers.ts isStateless). */
  stateless: boolean;
  /** Facts per COVER_KEYS index; undefined where the key is absent. */
  keys: Array<KeyFact | undefined>;
}

/**
 * The match as the renders read it: without a family, protocol icmp is IPv4's ICMP and icmpv6
 * IPv6's (the renders narrow the rule to that family), so a family-less icmp rule does not
 * cover `family: ipv6, protocol: icmp` (next header 1 in IPv6).
 */
export function withIcmpFamily(m: Match): Match {
  if (m.family !== undefined) return m;
  if (m.protocol === "icmp") return { ...m, family: "ipv4" };
  if (m.protocol === "icmpv6") return { ...m, family: "ipv6" };
  return m;
}

export function matchFacts(match: Match): MatchFacts {
  const m = withIcmpFamily(match);
  let mask = 0;
  let stateless = true;
  const keys: Array<KeyFact | undefined> = new Array(COVER_KEYS.length);
  for (const key of Object.keys(m)) {
    const v = (m as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (!COVER_KEY_SET.has(key)) {
      stateless = false;
      continue;
    }
    const i = COVER_KEYS.indexOf(key as FactKey);
    mask |= 1 << i;
    keys[i] = keyFact(key as FactKey, v);
  }
  return { mask, stateless, keys };
}

function keyFact(key: FactKey, v: unknown): KeyFact {
  const { value, negated } = unwrap(v as never) as { value: unknown; negated: boolean };
  const canon = canonicalJson(value);
  switch (key) {
    case "saddr":
    case "daddr":
      return { kind: "addr", negated, canon, items: asList(value as string | string[]).map(addrItem) };
    case "sport":
    case "dport":
      return {
        kind: "port",
        negated,
        canon,
        ranges: asList(value as number | string | Array<number | string>).map(portRange),
      };
    case "iif":
    case "oif":
      return { kind: "iface", negated, canon, items: asList(value as string | string[]) };
    case "ctState":
    case "icmpType":
    case "icmpv6Type":
    case "daddrType":
      return { kind: "list", negated, canon, items: asList(value as string | string[]) };
    default:
      return { kind: "eq", negated, canon };
  }
}

export function addrItem(raw: string): AddrItem {
  if (raw.startsWith("@")) return { raw, fam: 0, len: 0, net: 0 };
  const p = parsePrefix(raw);
  if (!p) return { raw, fam: 0, len: 0, net: 0 };
  if (p.family === "ipv4") return { raw, fam: 4, len: p.length, net: maskV4(ipv4ToInt(p.address), p.length) };
  return { raw, fam: 6, len: p.length, net: maskV6(ipv6ToBigInt(p.address), p.length) };
}

export function maskV4(n: number, len: number): number {
  return len === 0 ? 0 : (n & ((0xffffffff << (32 - len)) >>> 0)) >>> 0;
}

const ALL128 = (1n << 128n) - 1n;
export function maskV6(n: bigint, len: number): bigint {
  return n & (ALL128 ^ ((1n << BigInt(128 - len)) - 1n));
}

/** `b` is inside `a` (covers.ts addressCovers). */
export function addrCovers(a: AddrItem, b: AddrItem): boolean {
  if (a.raw === b.raw) return true;
  if (a.fam === 0 || a.fam !== b.fam || a.len > b.len) return false;
  return (a.fam === 4 ? maskV4(b.net as number, a.len) : maskV6(b.net as bigint, a.len)) === a.net;
}

function portRange(p: number | string): [number, number] {
  if (typeof p === "number") return [p, p];
  const [lo, hi] = p.split("-").map(Number) as [number, number];
  return [lo, hi];
}

function keyFactCovers(A: KeyFact, B: KeyFact): boolean {
  if (A.negated || B.negated) return A.negated === B.negated && A.canon === B.canon;
  switch (A.kind) {
    case "addr": {
      const bs = (B as typeof A).items;
      for (const b of bs) if (!A.items.some((a) => addrCovers(a, b))) return false;
      return true;
    }
    case "port": {
      for (const [lo, hi] of (B as typeof A).ranges) if (!A.ranges.some(([l, h]) => l <= lo && hi <= h)) return false;
      return true;
    }
    case "iface": {
      for (const b of (B as typeof A).items)
        if (!A.items.some((a) => a === b || (a.endsWith("*") && b.startsWith(a.slice(0, -1))))) return false;
      return true;
    }
    case "list": {
      for (const b of (B as typeof A).items) if (!A.items.includes(b)) return false;
      return true;
    }
    case "eq":
      return A.canon === B.canon;
  }
}

/** covers(a, b) on parsed facts. */
export function factsCover(a: MatchFacts, b: MatchFacts): boolean {
  if (!a.stateless || (a.mask & ~b.mask) !== 0) return false;
  for (let i = 0; i < COVER_KEYS.length; i++) {
    const A = a.keys[i];
    if (A === undefined) continue;
    if (!keyFactCovers(A, b.keys[i]!)) return false;
  }
  return true;
}
