// Decoding NFLOG packets as tcpdump writes them (`-w -`, pcap link type 239,
// LINKTYPE_NFLOG): a 4-byte header (family, version, resource id = the log group), then
// TLVs whose length and type are in HOST byte order and whose values are in NETWORK
// byte order, each padded to 4 bytes. Pure functions; logs.ts feeds them.

import { compressIpv6 } from "../../engine/index.ts";
import type { LogEvent } from "../../protocol/agent.ts";

export const LINKTYPE_NFLOG = 239;

const NFULA_MARK = 2;
const NFULA_TIMESTAMP = 3;
const NFULA_IFINDEX_INDEV = 4;
const NFULA_IFINDEX_OUTDEV = 5;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
/** Nested conntrack attributes; only with CONFIG_NETFILTER_NETLINK_GLUE_CT and a listener
 * that set NFULNL_CFG_F_CONNTRACK (tcpdump does not), kept for such readers. */
const NFULA_CT = 18;
const CTA_MARK = 8;

export interface NflogPacket {
  group: number;
  family: number;
  mark: number;
  indev?: number;
  outdev?: number;
  prefix: string;
  /** From NFULA_TIMESTAMP when present, else the pcap record time. */
  unixMs: number;
  payload?: Buffer;
  /** CTA_MARK of NFULA_CT when the message carries conntrack data; else undefined. */
  ctmark?: number;
}

export function decodeNflog(data: Buffer, pcapMs: number, littleEndian: boolean): NflogPacket | undefined {
  if (data.length < 4) return undefined;
  const pkt: NflogPacket = { family: data[0]!, group: data.readUInt16BE(2), mark: 0, prefix: "", unixMs: pcapMs };
  let off = 4;
  while (off + 4 <= data.length) {
    const len = littleEndian ? data.readUInt16LE(off) : data.readUInt16BE(off);
    const type = (littleEndian ? data.readUInt16LE(off + 2) : data.readUInt16BE(off + 2)) & 0x7fff;
    if (len < 4 || off + len > data.length) break;
    const v = data.subarray(off + 4, off + len);
    switch (type) {
      case NFULA_MARK:
        if (v.length >= 4) pkt.mark = v.readUInt32BE(0);
        break;
      case NFULA_IFINDEX_INDEV:
        if (v.length >= 4) pkt.indev = v.readUInt32BE(0);
        break;
      case NFULA_IFINDEX_OUTDEV:
        if (v.length >= 4) pkt.outdev = v.readUInt32BE(0);
        break;
      case NFULA_PREFIX: {
        const nul = v.indexOf(0);
        pkt.prefix = v.subarray(0, nul < 0 ? v.length : nul).toString("utf8");
        break;
      }
      case NFULA_TIMESTAMP:
        if (v.length >= 16)
          pkt.unixMs = Number(v.readBigUInt64BE(0)) * 1000 + Math.floor(Number(v.readBigUInt64BE(8)) / 1000);
        break;
      case NFULA_PAYLOAD:
        pkt.payload = Buffer.from(v);
        break;
      case NFULA_CT: {
        const m = nestedU32(v, CTA_MARK, littleEndian);
        if (m !== undefined) pkt.ctmark = m;
        break;
      }
    }
    off += (len + 3) & ~3;
  }
  return pkt;
}

/** A big-endian u32 attribute of a nested attribute block (headers in host order). */
function nestedU32(buf: Buffer, want: number, littleEndian: boolean): number | undefined {
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = littleEndian ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
    const type = (littleEndian ? buf.readUInt16LE(off + 2) : buf.readUInt16BE(off + 2)) & 0x7fff;
    if (len < 4 || off + len > buf.length) return undefined;
    if (type === want && len >= 8) return buf.readUInt32BE(off + 4);
    off += (len + 3) & ~3;
  }
  return undefined;
}

/** What `conntrack -G` needs to find a packet's connection. */
export interface CtTuple {
  family: 4 | 6;
  protocol: "tcp" | "udp" | "sctp" | "udplite" | "icmp" | "icmpv6";
  saddr: string;
  daddr: string;
  sport?: number;
  dport?: number;
  /** ICMP/ICMPv6 echo-style messages: conntrack tracks them by type, code and id. */
  icmp?: { type: number; code: number; id: number };
}

// ICMP types conntrack tracks as their own connection (request -> reply), IPv4 and IPv6.
const ICMP4_TRACKED = new Set([0, 8, 13, 14, 15, 16, 17, 18]);
const ICMP6_TRACKED = new Set([128, 129, 130, 131]);

/** The conntrack tuple of an IPv4/IPv6 packet, or undefined when conntrack -G cannot look it up. */
export function ctTuple(p: Buffer | undefined): CtTuple | undefined {
  const d = decodeIp(p);
  // A later fragment has no transport header; conntrack keys the datagram by the first one.
  if (d.family === 0 || d.l4Offset === undefined || !p) return undefined;
  const { family, proto, l4Offset: l4 } = d;
  const base = { family, saddr: d.saddr, daddr: d.daddr } as const;
  const ports: Record<number, CtTuple["protocol"]> = { 6: "tcp", 17: "udp", 132: "sctp", 136: "udplite" };
  if (ports[proto] !== undefined) {
    if (d.sport === 0 && d.dport === 0) return undefined;
    return { ...base, protocol: ports[proto]!, sport: d.sport, dport: d.dport };
  }
  const icmp = (family === 4 && proto === 1) || (family === 6 && proto === 58);
  if (icmp && p.length >= l4 + 8) {
    const type = p[l4]!;
    if (!(family === 4 ? ICMP4_TRACKED : ICMP6_TRACKED).has(type)) return undefined;
    return {
      ...base,
      protocol: family === 4 ? "icmp" : "icmpv6",
      icmp: { type, code: p[l4 + 1]!, id: p.readUInt16BE(l4 + 4) },
    };
  }
  return undefined;
}

const ICMP4_REQUEST: Record<number, number> = { 0: 8, 14: 13, 16: 15, 18: 17 };
const ICMP6_REQUEST: Record<number, number> = { 129: 128, 131: 130 };

/**
 * The tuple a reply-direction packet's connection was created with (without NAT):
 * addresses and ports swapped, an ICMP reply type turned into its request type.
 * `conntrack -G` finds entries by their original tuple only (measured, 1.4.7 / 6.18:
 * the packet's own tuple of a reply misses; a reply-tuple query is refused).
 */
export function swappedTuple(t: CtTuple): CtTuple | undefined {
  const base = { family: t.family, protocol: t.protocol, saddr: t.daddr, daddr: t.saddr };
  if (t.icmp) {
    const req = (t.family === 4 ? ICMP4_REQUEST : ICMP6_REQUEST)[t.icmp.type];
    return req === undefined ? undefined : { ...base, icmp: { ...t.icmp, type: req } };
  }
  if (t.sport === undefined || t.dport === undefined) return undefined;
  return { ...base, sport: t.dport, dport: t.sport };
}

const PROTO: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite" };

function ipv6Text(b: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  return compressIpv6(groups);
}

/** What decodeIp reads from an IPv4/IPv6 packet: a log event's fields, and where its transport header is. */
export interface IpHeader extends Pick<LogEvent, "saddr" | "daddr" | "protocol" | "sport" | "dport" | "length"> {
  /** 0 when the packet is neither IPv4 nor IPv6 (or shorter than its fixed header). */
  family: 0 | 4 | 6;
  /** The transport protocol's number (for IPv6 the one after the extension headers); -1 when unknown. */
  proto: number;
  /**
   * Where the transport header starts; undefined when the packet carries none that can be read:
   * a fragment other than the first, an IPv4 header length below 20 or past the packet, an
   * IPv6 extension header chain that is cut short or encrypted (ESP).
   */
  l4Offset?: number;
  /** One piece of a fragmented datagram (IPv4 MF or a fragment offset, an IPv6 Fragment header):
   * its transport payload is not all here. */
  fragment: boolean;
}

const PORT_PROTOS = new Set([6, 17, 132, 136]);
// IPv6 extension headers with the generic layout (next header, length in 8-octet units
// beyond the first 8): hop-by-hop, routing, destination options, mobility, HIP, shim6.
const IPV6_GENERIC_EXT = new Set([0, 43, 60, 135, 139, 140]);
const IPV6_FRAGMENT = 44;
const IPV6_AH = 51;

export function decodeIp(p: Buffer | undefined): IpHeader {
  const out: IpHeader = {
    saddr: "",
    daddr: "",
    protocol: "",
    sport: 0,
    dport: 0,
    length: 0,
    family: 0,
    proto: -1,
    fragment: false,
  };
  if (!p || p.length < 1) return out;
  const v = p[0]! >> 4;
  if (v === 4 && p.length >= 20) {
    out.family = 4;
    out.length = p.readUInt16BE(2);
    out.proto = p[9]!;
    out.saddr = [...p.subarray(12, 16)].join(".");
    out.daddr = [...p.subarray(16, 20)].join(".");
    const frag = p.readUInt16BE(6);
    out.fragment = (frag & 0x3fff) !== 0; // MF or an offset; DF alone is a whole datagram
    const ihl = (p[0]! & 15) * 4;
    if ((frag & 0x1fff) === 0 && ihl >= 20 && ihl <= p.length) out.l4Offset = ihl;
  } else if (v === 6 && p.length >= 40) {
    out.family = 6;
    out.length = p.readUInt16BE(4) + 40;
    out.saddr = ipv6Text(p.subarray(8, 24));
    out.daddr = ipv6Text(p.subarray(24, 40));
    walkIpv6(p, out);
  }
  if (out.proto >= 0) out.protocol = PROTO[out.proto] ?? String(out.proto);
  const l4 = out.l4Offset;
  if (l4 !== undefined && PORT_PROTOS.has(out.proto) && p.length >= l4 + 4) {
    out.sport = p.readUInt16BE(l4);
    out.dport = p.readUInt16BE(l4 + 2);
  }
  return out;
}

/** Follows the IPv6 extension headers to the transport header; every step moves at least 8 bytes on. */
function walkIpv6(p: Buffer, out: IpHeader): void {
  let next = p[6]!;
  let off = 40;
  for (;;) {
    if (IPV6_GENERIC_EXT.has(next) || next === IPV6_FRAGMENT || next === IPV6_AH) {
      if (p.length < off + 8) break; // cut short: the transport protocol is not known
      const len = next === IPV6_FRAGMENT ? 8 : next === IPV6_AH ? (p[off + 1]! + 2) * 4 : (p[off + 1]! + 1) * 8;
      if (next === IPV6_FRAGMENT) {
        out.fragment = true;
        if (p.readUInt16BE(off + 2) >> 3 !== 0) {
          out.proto = p[off]!; // a later piece: the protocol is named, its header is in the first piece
          return;
        }
      }
      next = p[off]!;
      off += len;
      continue;
    }
    out.proto = next;
    // ESP (50) encrypts what follows; 59 is "no next header".
    if (next !== 50 && next !== 59 && off <= p.length) out.l4Offset = off;
    return;
  }
}

/** Incremental pcap stream reader: feed chunks, get records. */
export class PcapStream {
  private buf: Buffer = Buffer.alloc(0);
  private le: boolean | undefined;
  private nanos = false;
  linktype: number | undefined;

  push(chunk: Buffer, onRecord: (data: Buffer, unixMs: number, littleEndian: boolean) => void): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.le === undefined) {
      if (this.buf.length < 24) return;
      const magic = this.buf.readUInt32LE(0);
      if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.le = true;
      else if (this.buf.readUInt32BE(0) === 0xa1b2c3d4 || this.buf.readUInt32BE(0) === 0xa1b23c4d) this.le = false;
      else throw new Error("not a pcap stream");
      this.nanos = (this.le ? magic : this.buf.readUInt32BE(0)) === 0xa1b23c4d;
      this.linktype = this.le ? this.buf.readUInt32LE(20) : this.buf.readUInt32BE(20);
      this.buf = this.buf.subarray(24);
    }
    const le = this.le;
    const u32 = (o: number) => (le ? this.buf.readUInt32LE(o) : this.buf.readUInt32BE(o));
    while (this.buf.length >= 16) {
      const incl = u32(8);
      if (this.buf.length < 16 + incl) break;
      const ms = u32(0) * 1000 + Math.floor(u32(4) / (this.nanos ? 1_000_000 : 1000));
      // NFLOG TLV headers are in the capturing host's order, which is the pcap file's order.
      onRecord(this.buf.subarray(16, 16 + incl), ms, le);
      this.buf = this.buf.subarray(16 + incl);
    }
  }
}
