// Address parsing shared by the schema, the linter and the compilers. Pure.
import { isIPv4, isIPv6 } from "./ip-syntax.ts";

export type Family = "ipv4" | "ipv6";

export interface Prefix {
  family: Family;
  /** Address as written (normalised case), without the length. */
  address: string;
  length: number;
}

/**
 * Why an address with an IPv6 zone id (fe80::1%eth0) is refused, or undefined when it has
 * none: also in a prefix (fe80::1%eth0/64) or a range (fe80::1%eth0-fe80::2). node's isIPv6
 * accepts the zone, but a policy address has none: nft refuses it and the iptables render
 * cannot parse it.
 */
export function zoneIdProblem(text: string): string | undefined {
  const at = text.indexOf("%");
  if (at < 0) return undefined;
  return `${text}: an address in a policy has no zone id (${text.slice(at, zoneEnd(text, at))}); write the address without it and match the interface (iif/oif, -i/-o) instead`;
}

/** Where the zone id at `at` ends: a prefix's '/', a range's '-' before its last address, or the end. */
function zoneEnd(text: string, at: number): number {
  for (let i = at + 1; i < text.length; i++) {
    if (text[i] === "/") return i;
    // An interface name may hold '-' too (eth-lan): only a '-' an address follows ends it.
    if (text[i] === "-" && isIPv6(text.slice(i + 1).replace(/[%/].*$/, ""))) return i;
  }
  return text.length;
}

/** Parse "a.b.c.d", "a.b.c.d/n", "x::y" or "x::y/n". Returns null when not an address (also with a zone id). */
export function parsePrefix(text: string): Prefix | null {
  if (text.includes("%")) return null;
  const slash = text.indexOf("/");
  const address = (slash === -1 ? text : text.slice(0, slash)).toLowerCase();
  const lenText = slash === -1 ? undefined : text.slice(slash + 1);
  const family: Family | null = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : null;
  if (!family) return null;
  const max = family === "ipv4" ? 32 : 128;
  if (lenText === undefined) return { family, address, length: max };
  if (!/^\d{1,3}$/.test(lenText)) return null;
  const length = Number(lenText);
  if (length > max) return null;
  return { family, address, length };
}

export function isAddress(text: string): boolean {
  return isIPv4(text) || (isIPv6(text) && !text.includes("%"));
}

/** Whether address a comes no later than b, both of one family (false across families or for a non-address). */
export function addressNotAfter(a: string, b: string): boolean {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  if (!pa || !pb || pa.family !== pb.family) return false;
  return pa.family === "ipv4" ? ipv4ToInt(a) <= ipv4ToInt(b) : ipv6ToBigInt(a) <= ipv6ToBigInt(b);
}

/** "a.b.c.d" (already validated) -> unsigned 32-bit integer. Parsed by char codes: hot on 1M-element sets. */
export function ipv4ToInt(address: string): number {
  let n = 0;
  let octet = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46 /* . */) {
      n = (n << 8) | octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return ((n << 8) | octet) >>> 0;
}

export function intToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The network address of an IPv4 prefix (host bits cleared). */
export function ipv4Network(p: Prefix): string {
  const mask = p.length === 0 ? 0 : (0xffffffff << (32 - p.length)) >>> 0;
  return intToIpv4((ipv4ToInt(p.address) & mask) >>> 0);
}

/** True when the prefix has host bits set (e.g. 10.0.0.1/8): nft refuses those. */
export function hasHostBits(p: Prefix): boolean {
  if (p.family !== "ipv4") return p.length < 128 && ipv6HasHostBits(p);
  if (p.length >= 32) return false; // a whole address has no host bits (the common case: blocklists)
  const mask = p.length === 0 ? 0 : (0xffffffff << (32 - p.length)) >>> 0;
  return (ipv4ToInt(p.address) & ~mask) !== 0;
}

/** The eight 16-bit groups of an IPv6 address (already validated; "::" and a trailing IPv4 part expanded). */
export function expandIpv6(address: string): number[] {
  let text = address;
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const n = ipv4ToInt(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + ((n >>> 16).toString(16) + ":" + (n & 0xffff).toString(16));
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill("0");
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

/** An IPv6 address (already validated) as a 128-bit integer. */
export function ipv6ToBigInt(address: string): bigint {
  let n = 0n;
  for (const g of expandIpv6(address)) n = (n << 16n) | BigInt(g);
  return n;
}

function ipv6HasHostBits(p: Prefix): boolean {
  const groups = expandIpv6(p.address);
  for (let bit = p.length; bit < 128; bit++) {
    if ((groups[bit >> 4]! >> (15 - (bit & 15))) & 1) return true;
  }
  return false;
}

/** Does prefix `outer` contain prefix `inner`? Same family only. */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.family !== inner.family || outer.length > inner.length) return false;
  if (outer.family === "ipv4") {
    const mask = outer.length === 0 ? 0 : (0xffffffff << (32 - outer.length)) >>> 0;
    return (ipv4ToInt(outer.address) & mask) >>> 0 === (ipv4ToInt(inner.address) & mask) >>> 0;
  }
  const a = expandIpv6(outer.address);
  const b = expandIpv6(inner.address);
  for (let bit = 0; bit < outer.length; bit++) {
    const x = (a[bit >> 4]! >> (15 - (bit & 15))) & 1;
    const y = (b[bit >> 4]! >> (15 - (bit & 15))) & 1;
    if (x !== y) return false;
  }
  return true;
}

/** Eight 16-bit groups as IPv6 text in RFC 5952 form: the longest run (2+) of zero groups becomes "::", leftmost on a tie. */
export function compressIpv6(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best === -1) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** The network address of an IPv6 prefix (host bits cleared), in RFC 5952 form. */
export function ipv6Network(p: Prefix): string {
  const groups = expandIpv6(p.address).map((g, i) => {
    const keep = Math.max(0, Math.min(16, p.length - i * 16));
    return keep === 0 ? 0 : g & ((0xffff << (16 - keep)) & 0xffff);
  });
  return compressIpv6(groups);
}

/** The network address of a prefix of either family. */
export function prefixNetwork(p: Prefix): string {
  return p.family === "ipv4" ? ipv4Network(p) : ipv6Network(p);
}

/** The netmask of a prefix length as an address ("255.255.255.0", "ffff:ffff:ffff:ffff::"). */
export function prefixMask(family: Family, length: number): string {
  return family === "ipv4"
    ? intToIpv4(length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0)
    : ipv6Network({ family, address: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", length });
}
