// Address helpers the checks need beyond net/address.ts: the network form of any prefix
// (to suggest the corrected prefix), and single-host detection for reflection checks.
import { hasHostBits, ipv4Network, ipv6Network, parsePrefix, type Prefix } from "../net/address.ts";
import { isIPv6 } from "../net/ip-syntax.ts";

/** "10.0.0.1/8" -> "10.0.0.0/8"; IPv6 likewise (compressed with "::" where zero). */
export function networkOf(p: Prefix): string {
  if (p.family === "ipv4") return `${ipv4Network(p)}/${p.length}`;
  return `${ipv6Network(p)}/${p.length}`;
}

export function hostBitsProblem(text: string): string | null {
  if (text.indexOf("/") === -1) return null; // a whole address (or not an address): no host bits
  const p = parsePrefix(text);
  return p ? prefixHostBitsProblem(text, p) : null;
}

/** hostBitsProblem for an already parsed `p = parsePrefix(text)`. */
export function prefixHostBitsProblem(text: string, p: Prefix): string | null {
  if (!hasHostBits(p)) return null;
  return `${text} has host bits set beyond /${p.length}; write ${networkOf(p)} (or the address alone for one host)`;
}

/** The single host an address item names, or null for prefixes, sets and invalid text. */
export function singleHost(text: string): string | null {
  const p = parsePrefix(text);
  if (!p || p.length !== (p.family === "ipv4" ? 32 : 128)) return null;
  return p.family === "ipv4" ? ipv4Network(p) : ipv6Network(p);
}

export function isUnspecified(address: string): boolean {
  return address === "0.0.0.0" || (isIPv6(address) && ipv6Network({ family: "ipv6", address, length: 128 }) === "::");
}
