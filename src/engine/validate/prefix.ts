// Address helpers the checks need beyond net/address.ts: the network form of any prefix
// (to suggest the corrected prefix), and single-host detection for reflection checks.
import { hasHostBits, ipv4Network, parsePrefix, type Prefix } from "../net/address.ts";
import { isIPv6 } from "node:net";

/** "10.0.0.1/8" -> "10.0.0.0/8"; IPv6 likewise (compressed with "::" where zero). */
export function networkOf(p: Prefix): string {
  if (p.family === "ipv4") return `${ipv4Network(p)}/${p.length}`;
  const groups = expand6(p.address);
  for (let bit = p.length; bit < 128; bit++) groups[bit >> 4] = groups[bit >> 4]! & ~(1 << (15 - (bit & 15)));
  return `${compress6(groups)}/${p.length}`;
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
  return p.family === "ipv4" ? ipv4Network(p) : compress6(expand6(p.address));
}

export function isUnspecified(address: string): boolean {
  return address === "0.0.0.0" || (isIPv6(address) && expand6(address).every((g) => g === 0));
}

function expand6(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill("0");
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

function compress6(groups: number[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) (best = i), (bestLen = j - i);
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}
