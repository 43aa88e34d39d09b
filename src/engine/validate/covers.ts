// Conservative packet-set containment between two matches: covers(a, b) is true only when
// every packet b matches is certainly matched by a. Unknown cases answer false, so the
// lints built on it (shadowed rules, missing notrack) never claim more than they can prove.
import { canonicalJson } from "../checksum.ts";
import { parsePrefix, prefixContains } from "../net/address.ts";
import type { z } from "zod";
import { unwrap, type Match, type PortList as PortListSchema } from "../policy/index.ts";
import { COVER_KEY_SET, withIcmpFamily } from "./match-facts.ts";
import { asList } from "./model.ts";

type PortList = z.infer<typeof PortListSchema>;

/**
 * A match whose every key covers() decides on (COVER_KEYS): each gives the same answer for the
 * same packet (no rate, list or budget state).
 */
export function isStateless(m: Match): boolean {
  return (Object.keys(m) as Array<keyof Match>).every((k) => m[k] === undefined || COVER_KEY_SET.has(k));
}

export function covers(match: Match, other: Match): boolean {
  const a = withIcmpFamily(match);
  const b = withIcmpFamily(other);
  if (!isStateless(a)) return false;
  for (const key of Object.keys(a) as Array<keyof Match>) {
    const av = a[key];
    if (av === undefined) continue;
    const bv = b[key];
    if (bv === undefined || !keyCovers(key, av, bv)) return false;
  }
  return true;
}

function keyCovers(key: keyof Match, av: unknown, bv: unknown): boolean {
  const A = unwrap(av as never) as { value: unknown; negated: boolean };
  const B = unwrap(bv as never) as { value: unknown; negated: boolean };
  if (A.negated || B.negated) return A.negated === B.negated && same(A.value, B.value);
  switch (key) {
    case "saddr":
    case "daddr":
      return asList(B.value as string | string[]).every((b) =>
        asList(A.value as string | string[]).some((a) => addressCovers(a, b)),
      );
    case "sport":
    case "dport":
      return portItems(B.value as PortList).every(([lo, hi]) =>
        portItems(A.value as PortList).some(([l, h]) => l <= lo && hi <= h),
      );
    case "iif":
    case "oif":
      return asList(B.value as string | string[]).every((b) =>
        asList(A.value as string | string[]).some((a) => a === b || (a.endsWith("*") && b.startsWith(a.slice(0, -1)))),
      );
    case "ctState":
    case "icmpType":
    case "icmpv6Type":
    case "daddrType":
      return asList(B.value as string | string[]).every((b) => asList(A.value as string | string[]).includes(b));
    default:
      return same(A.value, B.value);
  }
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function addressCovers(a: string, b: string): boolean {
  if (a === b) return true;
  if (a.startsWith("@") || b.startsWith("@")) return false;
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  return !!pa && !!pb && prefixContains(pa, pb);
}

function portItems(list: PortList): Array<[number, number]> {
  return asList(list).map((p) => {
    if (typeof p === "number") return [p, p];
    const [lo, hi] = p.split("-").map(Number) as [number, number];
    return [lo, hi];
  });
}
