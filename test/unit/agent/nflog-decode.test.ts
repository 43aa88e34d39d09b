// decodeIp and ctTuple on hand-built packets: where the transport header starts (IPv4
// options, IPv6 extension headers) and which packets are fragments. The knock check
// (spa.ts) refuses fragments by this flag; the log reader reads ports from this offset.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ctTuple, decodeIp } from "../../../src/agent/telemetry/nflog.ts";

const UDP = (sport: number, dport: number, data = Buffer.alloc(4)) => {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + data.length, 4);
  return Buffer.concat([h, data]);
};

/** An IPv4 header of `ihlWords` 32-bit words (options zero-filled) from 192.0.2.7 to 198.51.100.1. */
function ipv4(proto: number, l4: Buffer, o: { ihlWords?: number; flagsFrag?: number } = {}): Buffer {
  const ihl = o.ihlWords ?? 5;
  const h = Buffer.alloc(Math.max(ihl, 5) * 4);
  h[0] = 0x40 | ihl;
  h.writeUInt16BE(h.length + l4.length, 2);
  h.writeUInt16BE(o.flagsFrag ?? 0, 6);
  h[8] = 64;
  h[9] = proto;
  Buffer.from([192, 0, 2, 7]).copy(h, 12);
  Buffer.from([198, 51, 100, 1]).copy(h, 16);
  return Buffer.concat([h, l4]);
}

/** An IPv6 packet 2001:db8::1 -> 2001:db8::2 whose header chain is `ext` (each [type, bytes]). */
function ipv6(ext: Array<[number, Buffer]>, proto: number, l4: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  const chain: Buffer[] = [];
  let next = proto;
  for (let i = ext.length - 1; i >= 0; i--) {
    const [type, body] = ext[i]!;
    body[0] = next;
    chain.unshift(body);
    next = type;
  }
  h[6] = next;
  h[7] = 64;
  Buffer.from("20010db8000000000000000000000001", "hex").copy(h, 8);
  Buffer.from("20010db8000000000000000000000002", "hex").copy(h, 24);
  const rest = Buffer.concat([...chain, l4]);
  h.writeUInt16BE(rest.length, 4);
  return Buffer.concat([h, rest]);
}
const hopByHop = () => Buffer.from([0, 0, 5, 2, 0, 0, 1, 0]); // router alert, 8 bytes
const destOpts16 = () => {
  const b = Buffer.alloc(16);
  b[1] = 1; // 8 + 1*8 bytes
  b[2] = 1; // PadN covering the rest
  b[3] = 12;
  return b;
};
const fragHdr = (offset8: number, more: boolean) => {
  const b = Buffer.alloc(8);
  b.writeUInt16BE((offset8 << 3) | (more ? 1 : 0), 2);
  b.writeUInt32BE(0x1234, 4);
  return b;
};

test("IPv4 without options: transport at 20, ports read, not a fragment; DF alone is no fragment", () => {
  for (const flagsFrag of [0, 0x4000]) {
    const d = decodeIp(ipv4(17, UDP(40000, 4000), { flagsFrag }));
    assert.deepEqual(
      { ...d },
      {
        saddr: "192.0.2.7",
        daddr: "198.51.100.1",
        protocol: "udp",
        sport: 40000,
        dport: 4000,
        length: 32,
        family: 4,
        proto: 17,
        l4Offset: 20,
        fragment: false,
      },
    );
  }
});

test("IPv4 with options (IHL 6 and 15): the transport header is found after them", () => {
  for (const words of [6, 15]) {
    const d = decodeIp(ipv4(6, UDP(1234, 22), { ihlWords: words }));
    assert.equal(d.l4Offset, words * 4);
    assert.equal(d.protocol, "tcp");
    assert.deepEqual([d.sport, d.dport], [1234, 22]);
  }
});

test("IPv4 with an IHL below 5 or past the packet: no transport offset, no ports", () => {
  const bad = ipv4(17, UDP(1, 2));
  bad[0] = 0x44;
  assert.equal(decodeIp(bad).l4Offset, undefined);
  assert.equal(decodeIp(bad).sport, 0);
  const short = ipv4(17, Buffer.alloc(0), { ihlWords: 15 }).subarray(0, 40);
  assert.equal(decodeIp(short).l4Offset, undefined);
});

test("IPv4 fragments: the first (MF) has its ports and the flag; a later one has neither ports nor offset", () => {
  const first = decodeIp(ipv4(17, UDP(40000, 4000), { flagsFrag: 0x2000 }));
  assert.equal(first.fragment, true);
  assert.equal(first.l4Offset, 20);
  assert.equal(first.dport, 4000);
  const later = decodeIp(ipv4(17, UDP(40000, 4000), { flagsFrag: 185 })); // offset 1480, no MF: the last piece
  assert.equal(later.fragment, true);
  assert.equal(later.l4Offset, undefined);
  assert.deepEqual([later.protocol, later.sport, later.dport], ["udp", 0, 0]);
  assert.equal(ctTuple(ipv4(17, UDP(40000, 4000), { flagsFrag: 185 })), undefined);
});

test("IPv6: plain, behind hop-by-hop and destination options, and fragment headers", () => {
  const plain = decodeIp(ipv6([], 17, UDP(5353, 53)));
  assert.deepEqual(
    [plain.family, plain.saddr, plain.daddr, plain.protocol, plain.l4Offset, plain.fragment, plain.dport],
    [6, "2001:db8::1", "2001:db8::2", "udp", 40, false, 53],
  );
  assert.equal(plain.length, 40 + 12);

  const ext = decodeIp(
    ipv6(
      [
        [0, hopByHop()],
        [60, destOpts16()],
      ],
      6,
      UDP(1234, 443),
    ),
  );
  assert.deepEqual(
    [ext.proto, ext.protocol, ext.l4Offset, ext.fragment, ext.sport, ext.dport],
    [6, "tcp", 64, false, 1234, 443],
  );

  const first = decodeIp(ipv6([[44, fragHdr(0, true)]], 17, UDP(40000, 4000)));
  assert.deepEqual([first.proto, first.l4Offset, first.fragment, first.dport], [17, 48, true, 4000]);

  const later = decodeIp(ipv6([[44, fragHdr(185, false)]], 17, Buffer.alloc(16)));
  assert.deepEqual([later.protocol, later.l4Offset, later.fragment, later.sport], ["udp", undefined, true, 0]);

  // A chain cut short names no transport protocol rather than guessing one.
  const cut = ipv6(
    [
      [0, hopByHop()],
      [60, destOpts16()],
    ],
    6,
    UDP(1, 2),
  ).subarray(0, 52);
  assert.deepEqual([decodeIp(cut).proto, decodeIp(cut).l4Offset], [-1, undefined]);
});

test("ctTuple uses the walked offset: an ICMPv6 echo behind hop-by-hop, UDP behind IPv4 options", () => {
  const echo = Buffer.from([128, 0, 0, 0, 0x12, 0x34, 0, 1]);
  assert.deepEqual(ctTuple(ipv6([[0, hopByHop()]], 58, echo)), {
    family: 6,
    saddr: "2001:db8::1",
    daddr: "2001:db8::2",
    protocol: "icmpv6",
    icmp: { type: 128, code: 0, id: 0x1234 },
  });
  assert.deepEqual(ctTuple(ipv4(17, UDP(40000, 4000), { ihlWords: 6 })), {
    family: 4,
    saddr: "192.0.2.7",
    daddr: "198.51.100.1",
    protocol: "udp",
    sport: 40000,
    dport: 4000,
  });
  assert.equal(ctTuple(Buffer.from([0x50, 0, 0])), undefined);
});

test("IPv6 source and destination are written in RFC 5952 form (one shared formatter)", () => {
  const at = (hex: string) => {
    const p = ipv6([], 17, UDP(1, 2));
    Buffer.from(hex, "hex").copy(p, 8);
    return decodeIp(p).saddr;
  };
  assert.equal(at("20010db8000100000000000000000001"), "2001:db8:1::1"); // the longest zero run
  assert.equal(at("20010db8000000000001000000000001"), "2001:db8::1:0:0:1"); // a tie: the leftmost
  assert.equal(at("20010db8000100010001000100010001"), "2001:db8:1:1:1:1:1:1"); // no run
  assert.equal(at("20010db8000000010001000100010001"), "2001:db8:0:1:1:1:1:1"); // a single zero group stays
  assert.equal(at("00000000000000000000000000000001"), "::1");
});
