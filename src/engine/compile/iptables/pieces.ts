// A rendered rule is a list of pieces, each with a slot that fixes its place in the line,
// so every rule comes out in one canonical order whatever order the policy lists its
// matches in: the order iptables-save prints (addresses, interfaces, protocol, then
// matches, comment, target). That keeps renders deterministic and imports round-trip.
export interface Piece {
  slot: number;
  text: string;
}
export type Alt = Piece[];

export const SLOT = {
  s: 0,
  d: 1,
  i: 2,
  o: 3,
  p: 4,
  fragment: 5,
  proto: 10,
  multiport: 11,
  icmp: 12,
  setSrc: 20,
  setDst: 21,
  setTuple: 22,
  conntrack: 30,
  ctStatus: 31,
  iprange: 32,
  owner: 33,
  ctOriginal: 34,
  mac: 35,
  physdev: 36,
  length: 40,
  tcpmss: 49,
  mark: 41,
  connmark: 42,
  addrtype: 43,
  rpfilter: 44,
  ipsec: 45,
  pkttype: 46,
  dscp: 46.5,
  socket: 46.7,
  ttl: 47,
  rt: 47.5,
  time: 48,
  // xtables-addons matches sit before the stateful ones, as on nftables (compile/nft/match.ts):
  // a token bucket, list, quota or counter sees only packets that matched everything else.
  // Each xt piece takes the next hundredth, so several never reach limit's slot.
  xt: 49,
  limit: 50,
  meter: 51,
  recent: 52,
  quota: 53,
  statistic: 54,
  // psd is stateful (a per-source score): after statistic and before connlimit, as on nftables.
  psd: 54.5,
  connlimit: 55,
  comment: 90,
  counterTag: 91,
  target: 100,
} as const;

export const piece = (slot: number, text: string): Piece => ({ slot, text });

/** Cartesian product of alternative dimensions (each a list of options). */
export function product(dims: Alt[][]): Alt[] {
  let out: Alt[] = [[]];
  for (const dim of dims) {
    const next: Alt[] = [];
    for (const prefix of out) for (const opt of dim) next.push([...prefix, ...opt]);
    out = next;
  }
  return out;
}

export function joinPieces(pieces: Piece[]): string {
  return [...pieces]
    .sort((a, b) => a.slot - b.slot)
    .map((p) => p.text)
    .join(" ");
}
