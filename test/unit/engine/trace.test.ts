// Packet specs for `palisade trace` and the parsing of `nft monitor trace` lines (pure halves).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePacketSpec, PacketSpecError, parseTraceLine, summarizeTrace } from "../../../src/engine/index.ts";

test("a tcp spec with flags and interfaces", () => {
  const p = parsePacketSpec("tcp 203.0.113.5:40000 -> 198.51.100.1:22 flags S,F iif wan0");
  assert.deepEqual(
    { ...p, text: undefined },
    {
      protocol: "tcp",
      family: "ipv4",
      src: "203.0.113.5",
      dst: "198.51.100.1",
      sport: 40000,
      dport: 22,
      flags: ["syn", "fin"],
      from: "wire",
      iif: "wan0",
      text: undefined,
    },
  );
  assert.deepEqual(parsePacketSpec("tcp 1.2.3.4:1 -> 5.6.7.8:2 flags SA").flags, ["syn", "ack"]);
  assert.deepEqual(parsePacketSpec("tcp 1.2.3.4:1 -> 5.6.7.8:2").flags, ["syn"]);
  assert.equal(parsePacketSpec("udp 1.2.3.4:1 -> 5.6.7.8:2 oif lan0").oif, "lan0");
});

test("IPv6 with and without ports, icmp types by name and number", () => {
  const p = parsePacketSpec("tcp [2001:db8::5]:40000 -> [2001:db8::1]:22 iif eth0");
  assert.equal(p.family, "ipv6");
  assert.equal(p.src, "2001:db8::5");
  assert.equal(p.dport, 22);
  assert.equal(parsePacketSpec("icmpv6 2001:db8::5 -> 2001:db8::1").icmpType, 128);
  assert.equal(parsePacketSpec("icmp 1.2.3.4 -> 5.6.7.8 type timestamp-request").icmpType, 13);
  assert.equal(parsePacketSpec("icmp 1.2.3.4 -> 5.6.7.8 type 17 code 0").icmpType, 17);
});

test("bad specs name the bad token", () => {
  const bad = (text: string, token: string, re: RegExp) => {
    assert.throws(
      () => parsePacketSpec(text),
      (e: unknown) => e instanceof PacketSpecError && e.token === token && re.test(e.message),
    );
  };
  bad("sctp 1.2.3.4:1 -> 5.6.7.8:2", "sctp", /protocol/);
  bad("tcp 1.2.3.4:1 => 5.6.7.8:2", "=>", /->/);
  bad("tcp 1.2.3.999:1 -> 5.6.7.8:2", "1.2.3.999:1", /not an IPv4 or IPv6/);
  bad("tcp 1.2.3.4 -> 5.6.7.8:2", "1.2.3.4", /needs a port/);
  bad("tcp 1.2.3.4:70000 -> 5.6.7.8:2", "1.2.3.4:70000", /0-65535/);
  bad("tcp 1.2.3.4:1 -> 2001:db8::1", "2001:db8::1", /ipv4 but destination is ipv6|needs a port/);
  bad("tcp 1.2.3.4:1 -> 5.6.7.8:2 flags SX", "SX", /unknown TCP flag/);
  bad("icmp 1.2.3.4 -> 5.6.7.8 type nope", "nope", /unknown icmp type/);
  bad("udp 1.2.3.4:1 -> 5.6.7.8:2 flags S", "flags", /for tcp/);
  bad("udp 1.2.3.4:1 -> 5.6.7.8:2 iif", "iif", /needs a value/);
  bad("udp 1.2.3.4:1 -> 5.6.7.8:2 via x", "via", /unknown keyword/);
  bad("icmp 2001:db8::1 -> 2001:db8::2", "icmp", /icmpv6/);
});

const lines = [
  'trace id aa inet palisade_trace pre packet: iif "eth0" ip saddr 203.0.113.5 ip daddr 198.51.100.1 tcp dport 80',
  "trace id aa inet palisade_trace pre unknown rule handle 5 (verdict continue)",
  "trace id aa inet palisade_trace pre policy accept ",
  "trace id aa inet palisade fwd_dnat rule ip daddr 198.51.100.1 tcp dport 80 dnat ip to 192.168.16.27 (verdict accept)",
  'trace id aa inet palisade forward packet: iif "eth0" oif "eth0" ip saddr 203.0.113.5 ip daddr 192.168.16.27 tcp dport 80',
  "trace id aa inet palisade protect verdict continue",
  "trace id aa inet palisade forward policy drop ",
].map((l) => parseTraceLine(l)!);

test("trace lines fold into steps, the tracer's own table hidden, the destination after DNAT kept", () => {
  assert.equal(lines[1]!.kind, "rule");
  assert.equal(lines[1]!.verdict, "continue");
  const t = summarizeTrace("p", lines, "palisade_trace");
  assert.equal(t.verdict, "drop");
  assert.equal(t.finalDestination, "192.168.16.27:80");
  assert.deepEqual(
    t.steps.map((s) => [s.chain, s.rule, s.verdict]),
    [
      ["fwd_dnat", "ip daddr 198.51.100.1 tcp dport 80 dnat ip to 192.168.16.27", "accept"],
      ["forward", "policy", "drop"],
    ],
  );
});

test("a dropping rule that rejects is reported as reject; no drop at all is accept", () => {
  const rej = parseTraceLine("trace id bb inet palisade input rule tcp dport 22 reject with tcp reset (verdict drop)")!;
  assert.equal(summarizeTrace("p", [rej], "x").verdict, "reject");
  assert.equal(summarizeTrace("p", lines.slice(0, 4), "palisade_trace").verdict, "accept");
  assert.equal(parseTraceLine("add table inet x"), undefined);
});

test("an IPv6 destination with a port is written [address]:port", () => {
  const l = parseTraceLine(
    'trace id cc inet palisade input packet: iif "eth0" ip6 saddr 2001:db8::5 ip6 daddr 2001:db8::1 tcp dport 443',
  )!;
  assert.equal(summarizeTrace("p", [l], "x").finalDestination, "[2001:db8::1]:443");
});

test("from local: the firewall's own packet has no iif and leaves by oif (default wan0)", () => {
  const p = parsePacketSpec("tcp 198.51.100.1:40000 -> 203.0.113.9:25 from local");
  assert.equal(p.from, "local");
  assert.equal(p.iif, undefined);
  assert.equal(p.oif, "wan0");
  assert.equal(parsePacketSpec("udp 198.51.100.1:5 -> 203.0.113.9:53 from local oif eth1").oif, "eth1");
  const wire = parsePacketSpec("tcp 203.0.113.5:1 -> 198.51.100.1:22");
  assert.equal(wire.from, "wire");
  assert.equal(wire.iif, "wan0");
});

test("from local refuses an iif, lo, and unknown origins, naming the token", () => {
  const bad = (text: string, token: string, re: RegExp) =>
    assert.throws(
      () => parsePacketSpec(text),
      (e: unknown) => e instanceof PacketSpecError && e.token === token && re.test(e.message),
    );
  bad("tcp 198.51.100.1:1 -> 203.0.113.9:25 from local iif eth0", "iif", /has no iif/);
  bad("tcp 198.51.100.1:1 -> 203.0.113.9:25 iif eth0 from local", "iif", /has no iif/);
  bad("tcp 198.51.100.1:1 -> 203.0.113.9:25 from local oif lo", "lo", /lo traffic/);
  bad("tcp 198.51.100.1:1 -> 203.0.113.9:25 from host", "host", /wire .* or local/);
});
