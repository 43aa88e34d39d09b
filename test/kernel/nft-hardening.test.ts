// The hardening seed (iptables-hardening-tricks) on a real kernel, written as plain policy
// rules the way the seed writes them: spoofed/bogon sources and reverse-path failures
// dropped, SYN+FIN / SYN+RST / INVALID dropped, ICMP rate-limited with timestamp and
// address-mask requests dropped, RST rate limit, per-source SYN flood limit, and the
// port-scan sand trap whose ban expires. The policy runs in `server`; `client` sends.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { applyPolicy, ruleCounter, sleep } from "../support/nft-lab.ts";

const lab = createLab();
let client = "";
let server = "";
let link: Link;
const CLOSED = 7777; // nothing listens: the kernel answers a SYN with RST, which hping3 counts
before(async () => {
  ({ client, server, link } = await lab.pair());
});
after(() => lab.cleanup());

const inputPolicy = (rules: unknown[]) => ({ chains: { input: { hook: "input" as const, rules } } }) as never;

test("bogon and spoofed sources are dropped on the external interface; reverse-path failures too", async () => {
  await applyPolicy(
    lab,
    server,
    inputPolicy([
      {
        comment: "bogons",
        match: {
          iif: link.b.ifname,
          saddr: [
            "192.168.0.0/16",
            "172.16.0.0/12",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "0.0.0.0/8",
          ],
        },
        action: "drop",
        counter: true,
      },
      {
        comment: "bogon destinations",
        match: { iif: link.b.ifname, daddrType: ["broadcast", "multicast"] },
        action: "drop",
        counter: true,
      },
      { comment: "rpfilter", match: { iif: link.b.ifname, rpfilter: "fail" }, action: "drop", counter: true },
    ]),
  );
  const spoofed = await lab.tcpFlags(client, link.b.ip4, CLOSED, "S", { count: 5, source: "192.168.5.5" });
  assert.equal(spoofed.sent, 5);
  assert.equal((await ruleCounter(lab, server, "input", "bogons")).packets, 5);
  // 10.99.0.5 is no bogon, but the server has no route back to it: the reverse-path check drops it.
  await lab.tcpFlags(client, link.b.ip4, CLOSED, "S", { count: 4, source: "10.99.0.5" });
  assert.equal((await ruleCounter(lab, server, "input", "rpfilter")).packets, 4);
  // The real client is unaffected.
  const real = await lab.tcpFlags(client, link.b.ip4, CLOSED, "S", { count: 3 });
  assert.equal(real.received, 3);
  assert.equal((await ruleCounter(lab, server, "input", "bogons")).packets, 5);
});

test("SYN+FIN, SYN+RST and conntrack INVALID are dropped", async () => {
  await lab.nft(server, ["delete", "table", "inet", "palisade"], undefined, { allowFailure: true });
  // Control: without the policy the kernel answers a lone FIN to a closed port with RST.
  const before = await lab.tcpFlags(client, link.b.ip4, CLOSED, "F", { count: 2 });
  assert.equal(before.received, 2);
  await applyPolicy(
    lab,
    server,
    inputPolicy([
      {
        comment: "syn+fin",
        match: { protocol: "tcp", tcpFlags: { mask: ["syn", "fin"], compare: ["syn", "fin"] } },
        action: "drop",
        counter: true,
      },
      {
        comment: "syn+rst",
        match: { protocol: "tcp", tcpFlags: { mask: ["syn", "rst"], compare: ["syn", "rst"] } },
        action: "drop",
        counter: true,
      },
      { comment: "invalid", match: { ctState: ["invalid"] }, action: "drop", counter: true },
    ]),
  );
  const sf = await lab.tcpFlags(client, link.b.ip4, CLOSED, "SF", { count: 5 });
  assert.deepEqual(sf, { sent: 5, received: 0 });
  assert.equal((await ruleCounter(lab, server, "input", "syn+fin")).packets, 5);
  const sr = await lab.tcpFlags(client, link.b.ip4, CLOSED, "SR", { count: 5 });
  assert.deepEqual(sr, { sent: 5, received: 0 });
  assert.equal((await ruleCounter(lab, server, "input", "syn+rst")).packets, 5);
  // A FIN without a connection is INVALID for conntrack.
  const fin = await lab.tcpFlags(client, link.b.ip4, CLOSED, "F", { count: 4 });
  assert.deepEqual(fin, { sent: 4, received: 0 });
  assert.equal((await ruleCounter(lab, server, "input", "invalid")).packets, 4);
  // A plain SYN still gets its answer (RST from the closed port).
  assert.equal((await lab.tcpFlags(client, link.b.ip4, CLOSED, "S", { count: 3 })).received, 3);
});

const SCAPY_ICMP = `
import sys
from scapy.all import IP, ICMP, sr, conf
conf.verb = 0
dst, typ, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ans, unans = sr([IP(dst=dst)/ICMP(type=typ, id=7, seq=i) for i in range(n)], timeout=1, retry=0)
print(len(ans))
`;

async function icmpAnswers(type: number, n: number): Promise<number> {
  const r = await lab.exec(client, ["/usr/bin/python3", "-c", SCAPY_ICMP, link.b.ip4, String(type), String(n)], {
    timeoutMs: 30_000,
  });
  return Number(r.stdout.trim().split("\n").pop());
}

test("ICMP: timestamp and address-mask requests dropped, echo limited to burst + rate", async () => {
  await lab.nft(server, ["delete", "table", "inet", "palisade"], undefined, { allowFailure: true });
  // Control: Linux answers timestamp requests (type 13) when nothing filters them.
  assert.equal(await icmpAnswers(13, 2), 2);
  await applyPolicy(
    lab,
    server,
    inputPolicy([
      {
        comment: "smurf probes",
        match: { icmpType: ["address-mask-request", "timestamp-request"] },
        action: "drop",
        counter: true,
      },
      {
        comment: "echo within rate",
        match: { icmpType: "echo-request", limit: { rate: "1/second", burst: 5 } },
        action: "accept",
        counter: true,
      },
      { comment: "echo over rate", match: { icmpType: "echo-request" }, action: "drop", counter: true },
    ]),
  );
  assert.equal(await icmpAnswers(13, 3), 0);
  assert.equal(await icmpAnswers(17, 2), 0);
  assert.equal((await ruleCounter(lab, server, "input", "smurf probes")).packets, 5);
  const t0 = Date.now();
  const ping = await lab.ping(client, link.b.ip4, { count: 20, waitS: 0.05, intervalS: 0.01 });
  const elapsed = (Date.now() - t0) / 1000;
  // Token bucket: the burst at once, then `rate` per second.
  assert.ok(ping.received >= 5, `received ${ping.received}`);
  assert.ok(ping.received <= 5 + Math.ceil(elapsed * 1) + 1, `received ${ping.received} in ${elapsed}s`);
  assert.equal((await ruleCounter(lab, server, "input", "echo within rate")).packets, ping.received);
  assert.equal((await ruleCounter(lab, server, "input", "echo over rate")).packets, 20 - ping.received);
});

test("RST flood: at most 2/second burst 2 accepted, the rest dropped", async () => {
  await applyPolicy(
    lab,
    server,
    inputPolicy([
      {
        comment: "rst within rate",
        match: {
          protocol: "tcp",
          tcpFlags: { mask: ["rst"], compare: ["rst"] },
          limit: { rate: "2/second", burst: 2 },
        },
        action: "accept",
        counter: true,
      },
      {
        comment: "rst over rate",
        match: { protocol: "tcp", tcpFlags: { mask: ["rst"], compare: ["rst"] } },
        action: "drop",
        counter: true,
      },
    ]),
  );
  const t0 = Date.now();
  const r = await lab.tcpFlags(client, link.b.ip4, CLOSED, "R", { count: 20, intervalUs: 10_000 });
  const elapsed = (Date.now() - t0) / 1000;
  const ok = (await ruleCounter(lab, server, "input", "rst within rate")).packets;
  const over = (await ruleCounter(lab, server, "input", "rst over rate")).packets;
  assert.equal(ok + over, r.sent);
  assert.ok(ok >= 2 && ok <= 2 + Math.ceil(elapsed * 2) + 1, `accepted ${ok} in ${elapsed}s`);
});

test("SYN flood: new connections over the rate are dropped per source; another source is unaffected", async () => {
  await applyPolicy(
    lab,
    server,
    inputPolicy([
      {
        comment: "syn flood",
        match: {
          ctState: ["new"],
          protocol: "tcp",
          tcpFlags: { mask: ["syn", "ack", "rst", "fin"], compare: ["syn"] },
          meter: { name: "synflood", rate: "10/second", burst: 10 },
        },
        action: "drop",
        counter: true,
      },
    ]),
  );
  const t0 = Date.now();
  const flood = await lab.tcpFlags(client, link.b.ip4, CLOSED, "S", { count: 60, intervalUs: 2000 });
  const elapsed = (Date.now() - t0) / 1000;
  assert.ok(
    flood.received >= 10 && flood.received <= 10 + Math.ceil(elapsed * 10) + 2,
    `answered ${flood.received} of 60 in ${elapsed}s`,
  );
  assert.equal((await ruleCounter(lab, server, "input", "syn flood")).packets, 60 - flood.received);
  // A second source address has its own meter.
  await lab.exec(client, ["ip", "addr", "add", "10.200.1.3/24", "dev", link.a.ifname]);
  const other = await lab.tcpFlags(client, link.b.ip4, CLOSED, "S", { count: 5, source: "10.200.1.3" });
  assert.equal(other.received, 5);
});

test("port-scan trap: a probe of 139 bans the source, and the ban expires", async () => {
  await applyPolicy(
    lab,
    server,
    inputPolicy([
      {
        comment: "banned",
        match: { recent: { name: "portscan", mode: "rcheck", seconds: 3 } },
        action: "drop",
        counter: true,
      },
      {
        comment: "Portscan:",
        match: { protocol: "tcp", dport: 139, recent: { name: "portscan", mode: "set" } },
        action: { type: "log", prefix: "Portscan:" },
      },
      { comment: "probe", match: { protocol: "tcp", dport: 139 }, action: "drop" },
    ]),
  );
  const listener = lab.background(server, ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "EXEC:/bin/true"], {
    maxLifetimeMs: 30_000,
  });
  try {
    let up = false;
    for (let i = 0; i < 20 && !up; i++) {
      up = await lab.tcpConnect(client, link.b.ip4, 8080);
      if (!up) await sleep(100);
    }
    assert.ok(up, "the open port answers before the probe");
    assert.equal(await lab.tcpConnect(client, link.b.ip4, 139), false);
    const set = (await lab.nft(server, ["list", "set", "inet", "palisade", "recent_portscan_v4"])).stdout;
    assert.ok(set.includes(link.a.ip4), set);
    assert.equal(await lab.tcpConnect(client, link.b.ip4, 8080, { timeoutS: 1 }), false, "banned after probing 139");
    assert.ok((await ruleCounter(lab, server, "input", "banned")).packets >= 1);
    // The ban is the set element's timeout (3 s after the last probe): wait for the kernel
    // to expire the element (bounded), then the source gets through again.
    assert.match(set, /expires/, "the banned address carries a timeout");
    const inSet = async () =>
      (await lab.nft(server, ["list", "set", "inet", "palisade", "recent_portscan_v4"])).stdout.includes(link.a.ip4);
    for (let i = 0; i < 100 && (await inSet()); i++) await sleep(100);
    assert.equal(await inSet(), false, "the ban's element expired within 10 s");
    assert.equal(await lab.tcpConnect(client, link.b.ip4, 8080), true, "the ban expired");
  } finally {
    await listener.stop();
  }
});

test("recent --hitcount (the seed's SYN-flood rules): the 10th new connection within 1 s is dropped", async () => {
  const syn = { ctState: ["new"], protocol: "tcp", tcpFlags: { mask: ["syn", "ack", "rst", "fin"], compare: ["syn"] } };
  await applyPolicy(
    lab,
    server,
    inputPolicy([
      {
        comment: "list",
        match: { ...syn, recent: { name: "synflood", mode: "set" } },
        action: { type: "log", group: 3 },
      },
      {
        comment: "hitcount",
        match: { ...syn, recent: { name: "synflood", mode: "update", seconds: 1, hitcount: 10 } },
        action: "drop",
        counter: true,
      },
    ]),
  );
  const t0 = Date.now();
  const flood = await lab.tcpFlags(client, link.b.ip4, CLOSED, "S", { count: 40, intervalUs: 2000 });
  const elapsed = (Date.now() - t0) / 1000;
  // Counted exactly (not a token bucket): 9 answered whatever the pace within the second.
  assert.equal(flood.received, 9, `answered ${flood.received} of 40 in ${elapsed}s`);
  assert.equal((await ruleCounter(lab, server, "input", "hitcount")).packets, 40 - 9);
});
