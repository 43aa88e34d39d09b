// What-if packet specs for `palisade trace`: "tcp 203.0.113.5:40000 -> 198.51.100.1:22 flags S iif wan0".
// Pure: the text becomes a PacketSpec the driver's trace runner crafts and injects.
import { isIPv4, isIPv6 } from "../net/ip-syntax.ts";
import { ICMP_TYPE_NUMBERS, ICMPV6_TYPE_NUMBERS } from "../policy/index.ts";

export type TraceProtocol = "tcp" | "udp" | "icmp" | "icmpv6";

export interface PacketSpec {
  protocol: TraceProtocol;
  family: "ipv4" | "ipv6";
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** TCP flags as nft names (syn, fin, ...); defaults to [syn] for tcp. */
  flags?: string[];
  /**
   * Where the packet starts: "wire" arrives on `iif` (prerouting, then input or forward);
   * "local" is sent by the firewall itself (output, then postrouting out of `oif`).
   */
  from: "wire" | "local";
  /** Interface a wire packet arrives on (default "wan0"); absent for a local packet. */
  iif?: string;
  /**
   * Wire: when given, the destination is routed out of this interface (forwarded) instead of being local.
   * Local: the interface the packet leaves by (default "wan0").
   */
  oif?: string;
  /** ICMP/ICMPv6 type and code numbers (default echo-request, code 0). */
  icmpType?: number;
  icmpCode?: number;
  /** The spec as written, for reports. */
  text: string;
}

export class PacketSpecError extends Error {
  readonly code = "invalid_packet";
  constructor(
    message: string,
    readonly token?: string,
  ) {
    super(message);
  }
}

const FLAG_LETTERS: Record<string, string> = {
  S: "syn",
  F: "fin",
  R: "rst",
  P: "psh",
  A: "ack",
  U: "urg",
  E: "ecn",
  C: "cwr",
};
const FLAG_NAMES = new Set(Object.values(FLAG_LETTERS));

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Parse one packet spec; throws PacketSpecError naming the bad token. */
export function parsePacketSpec(text: string): PacketSpec {
  const tokens = text
    .trim()
    .split(/\s+/)
    .filter((t) => t.length > 0);
  const bad = (token: string | undefined, why: string): never => {
    throw new PacketSpecError(
      token === undefined ? `packet "${text}": ${why}` : `packet "${text}": "${token}": ${why}`,
      token,
    );
  };
  const proto = tokens[0];
  if (proto !== "tcp" && proto !== "udp" && proto !== "icmp" && proto !== "icmpv6")
    bad(proto, "the packet starts with its protocol: tcp, udp, icmp or icmpv6");
  const protocol = proto as TraceProtocol;
  const arrow = tokens[2];
  if (arrow !== "->" && arrow !== ">") bad(arrow, 'expected "->" between source and destination');
  const src = endpoint(tokens[1], "source", protocol, bad);
  const dst = endpoint(tokens[3], "destination", protocol, bad);
  if (src.family !== dst.family) bad(tokens[3], `source is ${src.family} but destination is ${dst.family}`);
  const family = src.family;
  if (protocol === "icmp" && family !== "ipv4") bad(proto, "icmp is IPv4; use icmpv6 for IPv6 addresses");
  if (protocol === "icmpv6" && family !== "ipv6") bad(proto, "icmpv6 needs IPv6 addresses");
  const spec: PacketSpec = { protocol, family, src: src.address, dst: dst.address, from: "wire", text: text.trim() };
  let iif: string | undefined;
  if (src.port !== undefined) spec.sport = src.port;
  if (dst.port !== undefined) spec.dport = dst.port;
  for (let i = 4; i < tokens.length; i += 2) {
    const key = tokens[i]!;
    const value = tokens[i + 1];
    if (value === undefined) bad(key, "needs a value after it");
    const v = value!;
    switch (key) {
      case "flags": {
        if (protocol !== "tcp") bad(key, "flags are for tcp packets");
        spec.flags = parseFlags(v, bad);
        break;
      }
      case "iif":
      case "oif":
        if (!IFNAME.test(v)) bad(v, `not an interface name (1-15 of letters, digits, _ . -)`);
        if (key === "iif") iif = v;
        else spec.oif = v;
        break;
      case "from":
        if (v !== "wire" && v !== "local")
          bad(v, "from is wire (arrives on iif, the default) or local (sent by the firewall itself, leaves by oif)");
        spec.from = v as PacketSpec["from"];
        break;
      case "type": {
        if (protocol !== "icmp" && protocol !== "icmpv6") bad(key, "type is for icmp and icmpv6 packets");
        const table = protocol === "icmp" ? ICMP_TYPE_NUMBERS : ICMPV6_TYPE_NUMBERS;
        const n = /^\d{1,3}$/.test(v) ? Number(v) : table[v];
        if (n === undefined || n > 255)
          bad(v, `unknown ${protocol} type; one of ${Object.keys(table).join(", ")} or a number 0-255`);
        spec.icmpType = n;
        break;
      }
      case "code": {
        if (protocol !== "icmp" && protocol !== "icmpv6") bad(key, "code is for icmp and icmpv6 packets");
        if (!/^\d{1,3}$/.test(v) || Number(v) > 255) bad(v, "icmp code must be a number 0-255");
        spec.icmpCode = Number(v);
        break;
      }
      default:
        bad(key, "unknown keyword; expected flags, iif, oif, from, type or code");
    }
  }
  if (protocol === "tcp" && spec.flags === undefined) spec.flags = ["syn"];
  if ((protocol === "icmp" || protocol === "icmpv6") && spec.icmpType === undefined)
    spec.icmpType = protocol === "icmp" ? 8 : 128;
  if (spec.from === "local") {
    // A packet the firewall sends never arrives on an interface: it meets output and postrouting only.
    if (iif !== undefined)
      bad("iif", "a local packet (from local) is sent by the firewall and has no iif; give its oif");
    spec.oif ??= "wan0";
    if (spec.oif === "lo") bad("lo", "a local packet leaves by a real interface; lo traffic is not traced");
    return spec;
  }
  spec.iif = iif ?? "wan0";
  if (spec.oif !== undefined && spec.oif === spec.iif) bad(spec.oif, "oif must differ from iif");
  return spec;
}

function endpoint(
  token: string | undefined,
  what: string,
  protocol: TraceProtocol,
  bad: (t: string | undefined, why: string) => never,
): { address: string; family: "ipv4" | "ipv6"; port?: number } {
  if (token === undefined) return bad(undefined, `missing the ${what} address`);
  let address = token;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(token);
  if (v6) {
    address = v6[1]!;
    portText = v6[2];
  } else if (!isIPv6(token)) {
    const colon = token.lastIndexOf(":");
    if (colon !== -1) {
      address = token.slice(0, colon);
      portText = token.slice(colon + 1);
    }
  }
  const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
  if (!family) return bad(token, `${what} is not an IPv4 or IPv6 address (IPv6 with a port: [2001:db8::1]:22)`);
  const hasPorts = protocol === "tcp" || protocol === "udp";
  if (portText !== undefined && !hasPorts) return bad(token, `${protocol} has no ports`);
  if (portText === undefined) {
    if (hasPorts) return bad(token, `${what} needs a port (${protocol} ADDRESS:PORT)`);
    return { address: address.toLowerCase(), family };
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return bad(token, `${what} port must be 0-65535`);
  return { address: address.toLowerCase(), family, port: Number(portText) };
}

function parseFlags(v: string, bad: (t: string, why: string) => never): string[] {
  const parts = v.includes(",") ? v.split(",") : /^[SFRPAUEC]+$/.test(v) ? [...v] : [v];
  const out: string[] = [];
  for (const p of parts) {
    const name = FLAG_LETTERS[p] ?? (FLAG_NAMES.has(p.toLowerCase()) ? p.toLowerCase() : undefined);
    if (!name) bad(p, "unknown TCP flag; letters S F R P A U E C or names syn,fin,rst,psh,ack,urg,ecn,cwr");
    if (!out.includes(name!)) out.push(name!);
  }
  return out;
}
