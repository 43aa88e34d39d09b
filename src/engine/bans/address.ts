// Ban addresses: one IPv4/IPv6 address or CIDR, in one canonical spelling so the API, the
// database and the kernel's sets agree on what "the same ban" is. Pure.
import { hasHostBits, parsePrefix, prefixContains, prefixNetwork, type Family } from "../net/address.ts";

export interface BanAddress {
  family: Family;
  /** Canonical text: "203.0.113.5", "198.51.100.0/24", "2001:db8::1", "2001:db8::/64". */
  text: string;
  length: number;
  /** One address (/32, /128): goes to the list's hash set; a wider prefix to its interval set. */
  single: boolean;
}

export type BanAddressError = { code: "malformed_address" | "host_bits_set" | "whole_internet"; message: string };

export function parseBanAddress(
  input: string,
): { ok: true; value: BanAddress } | { ok: false; error: BanAddressError } {
  const p = parsePrefix(input.trim());
  if (!p)
    return {
      ok: false,
      error: {
        code: "malformed_address",
        message: `"${input}" is not an IPv4 or IPv6 address or CIDR (e.g. 203.0.113.5, 198.51.100.0/24, 2001:db8::/64)`,
      },
    };
  const max = p.family === "ipv4" ? 32 : 128;
  if (p.length === 0)
    return {
      ok: false,
      error: {
        code: "whole_internet",
        message: `"${input}" covers every ${p.family} address; a ban must name a narrower prefix`,
      },
    };
  if (hasHostBits(p)) {
    const net = `${prefixNetwork(p)}/${p.length}`;
    return {
      ok: false,
      error: { code: "host_bits_set", message: `"${input}" has host bits set; did you mean ${net}?` },
    };
  }
  const addr = prefixNetwork({ ...p, length: max });
  const single = p.length === max;
  return {
    ok: true,
    value: { family: p.family, text: single ? addr : `${prefixNetwork(p)}/${p.length}`, length: p.length, single },
  };
}

/** Does ban `b` cover address or prefix `a`? (Different families never overlap.) */
export function banCovers(b: BanAddress, a: string): boolean {
  const inner = parsePrefix(a);
  const outer = parsePrefix(b.text);
  return inner !== null && outer !== null && prefixContains(outer, inner);
}

/** Do two bans share an address? (Prefixes either nest or are disjoint.) */
export function bansOverlap(a: BanAddress, b: BanAddress): boolean {
  return banCovers(a, b.text) || banCovers(b, a.text);
}

/** A ban list's name: it names the list's kernel sets too, so a short plain word. */
export const BAN_LIST_RE = /^[a-z][a-z0-9_]{0,31}$/;
/** BAN_LIST_RE in words, for every message that refuses a name. */
export const BAN_LIST_RULE = "a lowercase letter, then up to 31 of a-z 0-9 _";
