// xtables-addons matches and targets that nftables renders natively, on a real kernel with
// real packets: ipv4options (`ip option rr|ra|lsrr|ssrr exists|missing`), length2 --layer4
// (the IPv4 header length taken out of the total, so options do not shift the range; IPv6
// payload length), dhcpmac (the BOOTP client address in the UDP payload) and DHCPMAC (its
// rewrite, with the UDP checksum set to 0 so the datagram stays valid). Packets with IPv4
// options come from a UDP socket with IP_OPTIONS set; the DHCP-shaped datagrams from a raw
// socket with a correct checksum (the kernel would otherwise leave it to offload).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { applyPolicy, ruleCounter } from "../support/nft-lab.ts";

// argv: host port count size optionsHex -- UDP datagrams carrying those IPv4 options.
const OPTION_SENDER = `
import socket, sys
host, port, count, size, opts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
if opts: s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes.fromhex(opts))
for _ in range(count): s.sendto(b"a" * size, (host, port))
`;

// argv: src dst chaddrHex -- one BOOTP request (240 bytes) to port 6767 over a raw socket,
// with a correct UDP checksum.
const DHCP_SENDER = `
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return (~t) & 0xffff
src, dst, mac = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
p = bytearray(240); p[0:3] = b"\\x01\\x01\\x06"; p[28:34] = mac
n = 8 + len(p)
udp = struct.pack("!HHHH", 40000, 6767, n, 0) + bytes(p)
ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, n)
udp = udp[:6] + struct.pack("!H", csum(ph + udp) or 0xffff) + udp[8:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + n, 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(ip + udp, (dst, 0))
`;

// Prints, for the first UDP datagram to port 6767 a raw socket sees: chaddr, and whether the
// UDP checksum is absent (0), valid or bad, computed over the bytes as they arrived.
const DHCP_READER = `
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return (~t) & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP); s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
while True:
    d = s.recv(4096); ihl = (d[0] & 15) * 4; u = d[ihl:]
    if struct.unpack("!H", u[2:4])[0] != 6767: continue
    c = struct.unpack("!H", u[6:8])[0]
    ph = d[12:20] + struct.pack("!BBH", 0, 17, len(u))
    state = "none" if c == 0 else ("ok" if csum(ph + u) == 0 else "bad")
    print(u[8 + 28:8 + 34].hex(), state, flush=True); break
`;

const RA = "94040000"; // router alert: 4 bytes, IPv4 header length 6 words
const RR = "07070400000000" + "01"; // record route with one slot, NOP padding: length 7 words

const lab = createLab();
let client = "";
let server = "";
let link: Link;
before(async () => {
  ({ client, server, link } = await lab.pair());
});
after(() => lab.cleanup());

async function send(host: string, port: number, count: number, size: number, opts = "") {
  await lab.exec(
    client,
    ["/usr/bin/python3", "-c", OPTION_SENDER, host, String(port), String(count), String(size), opts],
    { timeoutMs: 10_000 },
  );
}

test("ipv4options: record-route without lsrr matches, router-alert or ssrr (any) matches, plain packets do not", async () => {
  await applyPolicy(lab, server, {
    chains: {
      input: {
        hook: "input",
        rules: [
          {
            comment: "rr",
            match: {
              protocol: "udp",
              dport: 9500,
              xt: { ipv4options: { flags: [{ option: "record-route" }, { option: "lsrr", not: true }] } },
            },
            action: "accept",
            counter: true,
          },
          {
            comment: "ra or ssrr",
            match: {
              protocol: "udp",
              dport: 9500,
              xt: { ipv4options: { flags: [{ option: "router-alert" }, { option: "ssrr" }], any: true } },
            },
            action: "accept",
            counter: true,
          },
          { comment: "rest", match: { protocol: "udp", dport: 9500 }, action: "accept", counter: true },
        ],
      },
    },
  });
  await send(link.b.ip4, 9500, 3, 10, RR);
  await send(link.b.ip4, 9500, 4, 10, RA);
  await send(link.b.ip4, 9500, 5, 10);
  assert.equal((await ruleCounter(lab, server, "input", "rr")).packets, 3);
  assert.equal((await ruleCounter(lab, server, "input", "ra or ssrr")).packets, 4);
  assert.equal((await ruleCounter(lab, server, "input", "rest")).packets, 5);
});

test("length2 --layer4: the transport length, whatever the IPv4 header length; IPv6 payload length", async () => {
  // 50 payload bytes + 8 UDP header = 58: total 78 without options, 82 with router alert.
  await applyPolicy(lab, server, {
    chains: {
      input: {
        hook: "input",
        rules: [
          {
            comment: "l4 58",
            match: { protocol: "udp", dport: 9501, xt: { length2: { layer: "layer4", length: 58 } } },
            action: "accept",
            counter: true,
          },
          {
            comment: "l4 not 58",
            match: { protocol: "udp", dport: 9501, xt: { length2: { layer: "layer4", length: { not: 58 } } } },
            action: "accept",
            counter: true,
          },
        ],
      },
    },
  });
  await send(link.b.ip4, 9501, 2, 50);
  await send(link.b.ip4, 9501, 3, 50, RA);
  await send(link.b.ip4, 9501, 4, 51, RA);
  await send(link.b.ip6, 9501, 5, 50);
  await send(link.b.ip6, 9501, 1, 49);
  assert.equal((await ruleCounter(lab, server, "input", "l4 58")).packets, 2 + 3 + 5);
  assert.equal((await ruleCounter(lab, server, "input", "l4 not 58")).packets, 4 + 1);
});

test("dhcpmac and DHCPMAC: the vendor prefix is matched and rewritten, and the datagram stays valid", async () => {
  const { client: c, router, server: s, left, right } = await lab.routed();
  await applyPolicy(lab, router, {
    chains: {
      mangle_fwd: {
        table: "mangle",
        hook: "forward",
        rules: [
          {
            comment: "other vendor",
            match: { protocol: "udp", dport: 6767, xt: { dhcpmac: { not: "00:50:56:00:00:00/24" } } },
            action: "accept",
            counter: true,
          },
          {
            comment: "rewrite",
            match: { protocol: "udp", dport: 6767, xt: { dhcpmac: "00:50:56:00:00:00/24" } },
            action: { type: "dhcpmac", setMac: "ab:cd:ef:00:00:00/24" },
            counter: true,
          },
        ],
      },
    },
  });
  const receive = async (mac: string) => {
    const reader = lab.background(s, ["/usr/bin/python3", "-c", DHCP_READER, "5"], { maxLifetimeMs: 10_000 });
    try {
      for (let i = 0; i < 50 && !reader.output().includes("ready"); i++) await new Promise((r) => setTimeout(r, 100));
      await lab.exec(c, ["/usr/bin/python3", "-c", DHCP_SENDER, left.a.ip4, right.b.ip4, mac]);
      for (let i = 0; i < 50 && reader.output().split("\n").length < 3; i++)
        await new Promise((r) => setTimeout(r, 100));
      return reader.output().split("\n")[1]?.trim() ?? "";
    } finally {
      await reader.stop();
    }
  };
  assert.equal(await receive("005056123456"), "abcdef123456 none");
  assert.equal(await receive("001122334455"), "001122334455 ok");
  assert.equal((await ruleCounter(lab, router, "mangle_fwd", "rewrite")).packets, 1);
  assert.equal((await ruleCounter(lab, router, "mangle_fwd", "other vendor")).packets, 1);
});
