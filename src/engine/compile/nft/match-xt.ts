// xtables-addons matches that nftables expresses natively; compile/support.ts says which
// (and refuses the rest before this runs).
//   ipv4options -> `ip option lsrr|ssrr|rr|ra exists|missing`: the kernel's IPv4 option
//     walker (nft_exthdr, NFT_EXTHDR_OP_IPV4) finds exactly these four options, wherever
//     they sit among the options. Every flag must hold (xt_ipv4options without --any); --any
//     is an OR: one nft rule per flag (alternatives), which only a verdict allows.
//   length2 --layer4 -> IPv4: `ip hdrlength . ip length` in an interval set, one element per
//     header length (5-15 words), so the transport length total - 4*ihl is compared exactly.
//     IPv6: `ip6 length` (the payload length) on packets whose next header is not an
//     extension header; a packet with extension headers never matches (nft cannot follow a
//     chain of them to the transport header's offset).
//   lscan --stealth -> `ct state invalid,untracked` and TCP flags other than SYN,
//     RST, RST-ACK (xt_lscan's lscan_mt_stealth, for a packet without a conntrack entry).
//   lscan --synscan/--cnscan/--grscan -> the connection's stages in conntrack labels (lscan.ts).
//   dhcpmac -> the BOOTP chaddr field, 28 bytes into the UDP payload (`@th,288,BITS`), the
//     prefix of BITS bits compared as one number.
import { unwrap, type Match } from "../../policy/index.ts";
import type { Fam } from "./context.ts";
import { isLscanKind, lscanTest } from "./lscan.ts";

type Xt = NonNullable<Match["xt"]>;

/** The four options nft_exthdr's IPv4 walker knows, by the policy's name. */
export const NFT_IPV4_OPTIONS: Readonly<Record<string, string>> = {
  lsrr: "lsrr",
  ssrr: "ssrr",
  "record-route": "rr",
  "router-alert": "ra",
};

/** IPv6 extension headers (RFC 8200 and the IANA list) that precede the transport header. */
const IPV6_EXT_HEADERS = [0, 43, 44, 51, 60, 135, 139, 140];

/** Families the xt matches restrict a rule to. */
export function xtFamilies(xt: Xt | undefined): Fam[] | undefined {
  if (!xt) return undefined;
  // DHCPv6 has no chaddr: the dhcpmac match and target are BOOTP, i.e. IPv4.
  if (xt.ipv4options || xt.dhcpmac !== undefined) return ["ipv4"];
  return undefined;
}

export function xtNeedsFamily(xt: Xt | undefined): boolean {
  return (
    !!xt &&
    (xt.ipv4options !== undefined ||
      xt.geoip !== undefined ||
      xt.dhcpmac !== undefined ||
      xt.psd !== undefined ||
      (xt.length2 !== undefined && xt.length2.layer !== "layer3"))
  );
}

function lengthBounds(v: number | string): [number, number] {
  if (typeof v === "number") return [v, v];
  const [a, b] = v.split("-").map(Number) as [number, number];
  return [a, b];
}

/** IPv4 transport length in [lo, hi]: one (ihl . total length range) element per header length. */
function ipv4Layer4(lo: number, hi: number, negated: boolean): string {
  const elems: string[] = [];
  for (let ihl = 5; ihl <= 15; ihl++) {
    const a = lo + 4 * ihl;
    const b = Math.min(hi + 4 * ihl, 65535);
    if (a > 65535) continue;
    elems.push(`${ihl} . ${a === b ? a : `${a}-${b}`}`);
  }
  // A length no IPv4 packet can have: an element that never matches keeps the set non-empty.
  if (elems.length === 0) elems.push("0 . 0");
  return `ip hdrlength . ip length ${negated ? "!= " : ""}{ ${elems.join(", ")} }`;
}

/** Expressions for the natively rendered xt matches; null when the rule cannot apply to `fam`. */
export function xtParts(
  m: Match,
  fam: Fam | undefined,
): { parts: string[]; alternatives?: string[]; disjoint?: boolean; impliesFamily: boolean } | null {
  const parts: string[] = [];
  let alternatives: string[] | undefined;
  let disjoint = false;
  let impliesFamily = false;
  const xt = m.xt;
  if (!xt) return { parts, impliesFamily };
  if (xt.ipv4options) {
    if (fam === "ipv6") return null;
    const tests = xt.ipv4options.flags.flatMap((f) => {
      const name = NFT_IPV4_OPTIONS[f.option];
      return name ? [`ip option ${name} ${f.not ? "missing" : "exists"}`] : [];
    });
    if (xt.ipv4options.any && tests.length > 1) alternatives = tests;
    else parts.push(...tests);
    impliesFamily = true;
  }
  if (xt.length2) {
    const { value, negated } = unwrap(xt.length2.length);
    if (xt.length2.layer === "layer3") parts.push(`meta length ${negated ? "!= " : ""}${value}`);
    else if (xt.length2.layer === "layer4") {
      const [lo, hi] = lengthBounds(value);
      if (fam === "ipv4") parts.push(ipv4Layer4(lo, hi, negated));
      else if (fam === "ipv6")
        parts.push(`ip6 nexthdr != { ${IPV6_EXT_HEADERS.join(", ")} }`, `ip6 length ${negated ? "!= " : ""}${value}`);
      impliesFamily = fam !== undefined;
    }
  }
  if (xt.lscan) {
    const tests: string[] = [];
    // xt_lscan --stealth: no conntrack entry (invalid or untracked) and not a SYN, a RST
    // (those are what a closed port's replies and new connections look like).
    if (xt.lscan.includes("stealth"))
      tests.push(
        "ct state invalid,untracked tcp flags & (fin | syn | rst | ack) != { syn, rst | ack } tcp flags & (fin | syn | rst) != rst",
      );
    // The connection kinds read the stages lscan.ts records (the caller declares the tracker).
    for (const k of xt.lscan) if (isLscanKind(k)) tests.push(lscanTest(k));
    if (m.protocol !== "tcp") parts.push("meta l4proto tcp");
    if (tests.length === 1) parts.push(tests[0]!);
    else if (tests.length > 1) {
      // Several kinds are an OR. A packet passes at most one test (stealth needs no
      // conntrack entry, the others read its labels, each a different masked value), so
      // one rule per kind runs the action at most once: any action may use them.
      disjoint = alternatives === undefined;
      alternatives = alternatives ? alternatives.flatMap((a) => tests.map((t) => `${a} ${t}`)) : tests;
    }
  }
  if (xt.dhcpmac) {
    if (fam === "ipv6") return null;
    const { value, negated } = unwrap(xt.dhcpmac);
    const [mac, bitsText] = value.split("/") as [string, string | undefined];
    const bits = bitsText === undefined ? 48 : Number(bitsText);
    const prefix = BigInt(`0x${mac.replaceAll(":", "")}`) >> BigInt(48 - bits);
    if (m.protocol !== "udp") parts.push("meta l4proto udp");
    parts.push(`@th,288,${bits} ${negated ? "!= " : ""}0x${prefix.toString(16)}`);
  }
  return { parts, impliesFamily, ...(alternatives ? { alternatives, disjoint } : {}) };
}
