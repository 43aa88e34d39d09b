// Addresses as iptables-save prints them: network address (host bits cleared) and the
// prefix length always written out, IPv6 in compressed lower-case form.
import { parsePrefix, ipv4Network, type Prefix } from "../../net/address.ts";
import type { Fam } from "./context.ts";

function ipv6ToBig(address: string): bigint {
  // The URL parser canonicalises IPv6 (including embedded IPv4) for us.
  const host = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head, tail] = host.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigToIpv6(n: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

export function networkOf(p: Prefix): string {
  if (p.family === "ipv4") return ipv4Network(p);
  const mask = p.length === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - p.length)) - 1n);
  return bigToIpv6(ipv6ToBig(p.address) & mask);
}

/** `10.0.0.0/8`, `10.0.0.1/32`, `2001:db8::/32`. */
export function cidr(p: Prefix): string {
  return `${networkOf(p)}/${p.length}`;
}

/** A single address in canonical form (for --to-destination, --gateway). */
export function canonicalAddress(text: string): string {
  const p = parsePrefix(text);
  if (!p) return text;
  return p.family === "ipv4" ? p.address : bigToIpv6(ipv6ToBig(p.address));
}

export function familyOf(text: string): Fam | undefined {
  return parsePrefix(text)?.family;
}

/** `addr:port` with IPv6 in brackets, as DNAT/SNAT want it. */
export function hostPort(address: string, port: number | string | undefined): string {
  const a = canonicalAddress(address);
  if (port === undefined) return a;
  return familyOf(address) === "ipv6" ? `[${a}]:${port}` : `${a}:${port}`;
}
