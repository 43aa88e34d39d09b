// Matches the corpus needed, proved with packets: the same iptables-save text is loaded
// with iptables-restore in one namespace and imported + rendered by renderNft in another;
// the client sends the same crafted packets to both, and the per-rule packet counts
// (iptables-save -c for the original, the named counters the import gives target-less
// rules for the rendering) must agree, and must be the counts the rules call for.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";

const lab: NetnsLab = createLab();
interface Pair {
  client: string;
  server: string;
  target: string;
}
const clientIp = { ipt: "", nft: "" };
const clientIf = { ipt: "", nft: "" };
let viaIpt: Pair;
let viaNft: Pair;
before(async () => {
  for (const which of ["ipt", "nft"] as const) {
    const { client, server, link } = await lab.pair();
    const p = { client, server, target: link.b.ip4 };
    clientIp[which] = link.a.ip4;
    clientIf[which] = link.a.ifname;
    if (which === "ipt") viaIpt = p;
    else viaNft = p;
  }
});
after(() => lab.cleanup());

/** Packet counts of the target-less rules of a filter chain, in order (iptables-save -c). */
async function iptCounts(ns: string, chain = "INPUT"): Promise<number[]> {
  const r = await lab.exec(ns, ["iptables-save", "-c", "-t", "filter"]);
  return r.stdout
    .split("\n")
    .filter((l) => l.includes(`] -A ${chain} `) && !/ -j /.test(l))
    .map((l) => Number(/^\[(\d+):/.exec(l)![1]));
}

/** Packet counts of the import's named counters <chain>_count_1.. (nft). */
async function nftCounts(ns: string, n: number, chain = "input"): Promise<number[]> {
  const r = await lab.nft(ns, ["-j", "list", "counters"]);
  const objs = (JSON.parse(r.stdout) as { nftables: Array<{ counter?: { name: string; packets: number } }> }).nftables;
  const by = new Map(objs.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets] as const] : [])));
  return Array.from({ length: n }, (_, i) => by.get(`${chain}_count_${i + 1}`) ?? -1);
}

/** Both servers back to no rules (each test loads its own). */
async function reset(): Promise<void> {
  for (const t of ["filter", "nat"]) await lab.exec(viaIpt.server, ["iptables", "-t", t, "-F"], { allowFailure: true });
  await lab.nft(viaNft.server, ["flush", "ruleset"]);
}

async function load(text: string, chain = "input"): Promise<number> {
  await reset();
  const forNft = text.replaceAll("TARGET", viaNft.target);
  text = text.replaceAll("TARGET", viaIpt.target);
  const imported = importPolicy("iptables-save", forNft);
  assert.deepEqual(imported.errors, []);
  assert.ok(imported.policy);
  assert.deepEqual(validatePolicy(imported.policy).errors, []);
  const nft = renderNft(imported.policy);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  await lab.exec(viaIpt.server, ["iptables-restore"], { input: text });
  await lab.nft(viaNft.server, ["-f", "-"], nft.text);
  // The dump is IPv4's: the chain starts with the rule that lets IPv6 pass (no counter of its own).
  const rules = imported.policy.chains[chain]!.rules;
  assert.deepEqual(rules[0]?.match, { family: "ipv6" });
  return rules.length - 1;
}

async function hping(p: Pair, args: string[], count: number): Promise<void> {
  await lab.exec(p.client, ["hping3", "-q", "-c", String(count), "-i", "u20000", ...args, p.target], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
}

/** Send `count` copies of a scapy packet expression (T is the target address). */
async function scapy(p: Pair, packet: string, count: number): Promise<void> {
  const code = `from scapy.all import *\nT=${JSON.stringify(p.target)}\nsend(${packet}, count=${count}, verbose=0)`;
  await lab.exec(p.client, ["/usr/bin/python3", "-c", code], { timeoutMs: 20_000 });
}

test("ICMP type/code pairs and numeric types: 3/4, a named code, an unnamed type number", async () => {
  const n = await load(
    [
      "*filter",
      ":INPUT ACCEPT [0:0]",
      "-A INPUT -p icmp -m icmp --icmp-type 3/4",
      "-A INPUT -p icmp -m icmp --icmp-type port-unreachable",
      "-A INPUT -p icmp -m icmp --icmp-type 30",
      "COMMIT",
      "",
    ].join("\n"),
  );
  for (const p of [viaIpt, viaNft]) {
    await hping(p, ["-1", "-C", "3", "-K", "4"], 2);
    await hping(p, ["-1", "-C", "3", "-K", "3"], 3);
    await hping(p, ["-1", "-C", "3", "-K", "1"], 1);
    await scapy(p, "IP(dst=T)/ICMP(type=30)", 2); // hping3 sends only the types it knows
  }
  const want = [2, 3, 2];
  assert.deepEqual(await iptCounts(viaIpt.server), want, "iptables counts the crafted packets as the rules say");
  assert.deepEqual(await nftCounts(viaNft.server, n), want, "the nftables rendering counts them the same");
});

test("iprange: source ranges, and a negated destination range", async () => {
  const n = await load(
    [
      "*filter",
      "-A INPUT -p tcp --dport 80 -m iprange --src-range 10.9.0.10-10.9.0.20",
      "-A INPUT -p tcp --dport 80 -m iprange ! --src-range 10.9.0.10-10.9.0.20",
      "COMMIT",
      "",
    ].join("\n"),
  );
  for (const p of [viaIpt, viaNft]) {
    for (const [src, count] of [
      ["10.9.0.10", 2],
      ["10.9.0.20", 1],
      ["10.9.0.21", 3],
      ["10.9.0.9", 1],
    ] as const) {
      await hping(p, ["-S", "-p", "80", "-a", src], count);
    }
  }
  const want = [3, 4];
  assert.deepEqual(await iptCounts(viaIpt.server), want);
  assert.deepEqual(await nftCounts(viaNft.server, n), want);
});

test("conntrack --ctstate DNAT: only connections the nat table redirected", async () => {
  const n = await load(
    [
      "*nat",
      "-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination :8080",
      "COMMIT",
      "*filter",
      "-A INPUT -p tcp -m conntrack --ctstate DNAT",
      "-A INPUT -p tcp -m conntrack ! --ctstate DNAT",
      "COMMIT",
      "",
    ]
      .join("\n")
      .replace(":8080", "TARGET:8080"),
  );
  void n;
  for (const p of [viaIpt, viaNft]) {
    await hping(p, ["-S", "-p", "80"], 3);
    await hping(p, ["-S", "-p", "81"], 2);
  }
  // SYNs to 80 were DNATed to 8080; each SYN (a new hping3 source port) is one connection.
  assert.deepEqual(await iptCounts(viaIpt.server), [3, 2]);
  assert.deepEqual(await nftCounts(viaNft.server, 2), [3, 2]);
});

test("owner: --uid-owner in OUTPUT counts the packets of that user's sockets only", async () => {
  const n = await load(
    [
      "*filter",
      "-A OUTPUT -p udp --dport 9999 -m owner --uid-owner 0",
      "-A OUTPUT -p udp --dport 9999 -m owner --uid-owner 65534",
      "-A OUTPUT -p udp --dport 9999 -m owner ! --uid-owner 0",
      "COMMIT",
      "",
    ].join("\n"),
    "output",
  );
  const send = (p: Pair, client: string, count: number, asNobody: boolean) => {
    const py = `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(${count}): s.sendto(b"x", (${JSON.stringify(client)}, 9999))`;
    const argv = ["/usr/bin/python3", "-c", py];
    return lab.exec(
      p.server,
      asNobody ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...argv] : argv,
    );
  };
  for (const p of [viaIpt, viaNft]) {
    const client = p === viaIpt ? clientIp.ipt : clientIp.nft;
    await send(p, client, 2, false);
    await send(p, client, 3, true);
  }
  const want = [2, 3, 3];
  assert.deepEqual(await iptCounts(viaIpt.server, "OUTPUT"), want);
  assert.deepEqual(await nftCounts(viaNft.server, n, "output"), want);
});

test("ttl: --ttl-eq, ! --ttl-eq, --ttl-lt, --ttl-gt count the packets of those TTLs; pkttype unicast counts them all", async () => {
  const n = await load(
    [
      "*filter",
      "-A INPUT -p tcp --dport 81 -m ttl --ttl-eq 5",
      "-A INPUT -p tcp --dport 81 -m ttl ! --ttl-eq 5",
      "-A INPUT -p tcp --dport 81 -m ttl --ttl-lt 10",
      "-A INPUT -p tcp --dport 81 -m ttl --ttl-gt 100",
      "-A INPUT -p tcp --dport 81 -m pkttype --pkt-type unicast",
      "-A INPUT -p tcp --dport 81 -m pkttype --pkt-type broadcast",
      "COMMIT",
      "",
    ].join("\n"),
  );
  for (const p of [viaIpt, viaNft]) {
    for (const [ttl, count] of [
      [5, 2],
      [9, 1],
      [64, 3],
      [200, 1],
    ] as const)
      await hping(p, ["-S", "-p", "81", "-t", String(ttl)], count);
  }
  const want = [2, 5, 3, 1, 7, 0];
  assert.deepEqual(await iptCounts(viaIpt.server), want, "xt_ttl / xt_pkttype");
  assert.deepEqual(await nftCounts(viaNft.server, n), want, "ip ttl / meta pkttype");
});

test("statistic: --mode nth (which packets) and --mode random with probability 0 and 1 count alike", async () => {
  const n = await load(
    [
      "*filter",
      "-A INPUT -p udp --dport 9 -m statistic --mode nth --every 3 --packet 0",
      "-A INPUT -p udp --dport 9 -m statistic --mode nth --every 4 --packet 1",
      "-A INPUT -p udp --dport 9 -m statistic --mode nth ! --every 4 --packet 3",
      "-A INPUT -p udp --dport 9 -m statistic --mode random --probability 1.00000000000",
      "-A INPUT -p udp --dport 9 -m statistic --mode random --probability 0.00000000000",
      "-A INPUT -p udp --dport 9 -m statistic --mode random ! --probability 0.00000000000",
      "COMMIT",
      "",
    ].join("\n"),
  );
  for (const p of [viaIpt, viaNft]) await scapy(p, "IP(dst=T)/UDP(dport=9)", 10);
  const ipt = await iptCounts(viaIpt.server);
  // iptables' own answer decides; 10 packets: every 3 from the first (1,4,7,10), every 4 from
  // the second (2,6,10), all but every 4th from the fourth (not 4,8).
  assert.deepEqual(ipt, [4, 3, 8, 10, 0, 10]);
  assert.deepEqual(await nftCounts(viaNft.server, n), ipt);
});

test("recent: one list checked with two windows (1 s and 60 s), stamped again by --update, cleared by --remove", async () => {
  const n = await load(
    [
      "*filter",
      "-A INPUT -p tcp --dport 80 -m recent --set --name w --rsource",
      "-A INPUT -p tcp --dport 81 -m recent --rcheck --seconds 1 --name w --rsource",
      "-A INPUT -p tcp --dport 81 -m recent --rcheck --seconds 60 --name w --rsource",
      "-A INPUT -p tcp --dport 82 -m recent --update --seconds 60 --name w --rsource",
      "-A INPUT -p tcp --dport 83 -m recent --remove --name w --rsource",
      "COMMIT",
      "",
    ].join("\n"),
  );
  for (const p of [viaIpt, viaNft]) {
    await hping(p, ["-S", "-p", "80"], 1); // stamp
    await hping(p, ["-S", "-p", "81"], 2); // within both windows
  }
  // Let the 1 s window pass (the 60 s one does not): no timing is asserted, only that more
  // than a second went by.
  await new Promise((r) => setTimeout(r, 2500));
  for (const p of [viaIpt, viaNft]) {
    await hping(p, ["-S", "-p", "81"], 3); // only the 60 s window
    await hping(p, ["-S", "-p", "82"], 1); // listed within 60 s: stamps again
    await hping(p, ["-S", "-p", "81"], 1); // within both windows again
    await hping(p, ["-S", "-p", "83"], 1); // removed
    await hping(p, ["-S", "-p", "81"], 2); // in neither
  }
  const want = [1, 3, 6, 1, 1];
  assert.deepEqual(await iptCounts(viaIpt.server), want, "xt_recent counts the probes as the windows say");
  assert.deepEqual(await nftCounts(viaNft.server, n), want, "the nftables rendering counts them the same");
});

test("time: hours (plain and past midnight, both ends), weekdays, dates; mac: --mac-source and its negation", async () => {
  // Windows around the current UTC time: xt_time and `meta hour`/`meta day` work in UTC
  // (the weekday assumes the kernel's sys_tz is UTC, as on this host). An hour either side
  // leaves room for the few seconds the test runs.
  const now = new Date();
  const sod = now.getUTCHours() * 3600 + now.getUTCMinutes() * 60 + now.getUTCSeconds();
  const hms = (s: number) => {
    const x = ((s % 86400) + 86400) % 86400;
    return [Math.floor(x / 3600), Math.floor((x % 3600) / 60), x % 60].map((v) => String(v).padStart(2, "0")).join(":");
  };
  const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][now.getUTCDay()]!;
  const others = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].filter((d) => d !== day).join(",");
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 19);
  const mac = "02:00:00:00:10:0a";
  for (const which of ["ipt", "nft"] as const) {
    const ns = (which === "ipt" ? viaIpt : viaNft).client;
    await lab.exec(ns, ["ip", "link", "set", "dev", clientIf[which], "address", mac]);
  }
  const n = await load(
    [
      "*filter",
      `-A INPUT -p tcp --dport 80 -m time --timestart ${hms(sod - 3600)} --timestop ${hms(sod + 3600)}`,
      `-A INPUT -p tcp --dport 80 -m time --timestart ${hms(sod + 3600)} --timestop ${hms(sod + 7200)}`,
      `-A INPUT -p tcp --dport 80 -m time --timestart ${hms(sod + 7200)} --timestop ${hms(sod + 3600)}`,
      `-A INPUT -p tcp --dport 80 -m time --timestart ${hms(sod + 3600)} --timestop ${hms(sod - 3600)}`,
      `-A INPUT -p tcp --dport 80 -m time --timestart ${hms(sod + 3600)} --timestop ${hms(sod + 3600)}`,
      `-A INPUT -p tcp --dport 80 -m time --weekdays ${day}`,
      `-A INPUT -p tcp --dport 80 -m time --weekdays ${others}`,
      `-A INPUT -p tcp --dport 80 -m time ! --weekdays ${others}`,
      `-A INPUT -p tcp --dport 80 -m time --datestart ${iso(now.getTime() - 86400e3)} --datestop ${iso(now.getTime() + 86400e3)}`,
      `-A INPUT -p tcp --dport 80 -m time --datestop ${iso(now.getTime() - 86400e3)}`,
      `-A INPUT -p tcp --dport 80 -m mac --mac-source ${mac.toUpperCase()}`,
      `-A INPUT -p tcp --dport 80 -m mac ! --mac-source ${mac}`,
      "COMMIT",
      "",
    ].join("\n"),
  );
  for (const p of [viaIpt, viaNft]) await hping(p, ["-S", "-p", "80"], 2);
  const want = [2, 0, 2, 0, 2, 2, 0, 2, 2, 0, 2, 0];
  assert.deepEqual(await iptCounts(viaIpt.server), want, "xt_time and xt_mac count the probes as the rules say");
  assert.deepEqual(await nftCounts(viaNft.server, n), want, "the nftables rendering counts them the same");
});

test("tcpmss: an exact MSS, a range, and a negated range (which also takes SYNs without the option)", async () => {
  const n = await load(
    [
      "*filter",
      "-A INPUT -p tcp --dport 80 -m tcpmss --mss 1460",
      "-A INPUT -p tcp --dport 80 -m tcpmss ! --mss 536:65535",
      "-A INPUT -p tcp --dport 80 -m tcpmss --mss 500:1000",
      "COMMIT",
      "",
    ].join("\n"),
  );
  const syn = (mss?: number) =>
    `IP(dst=T)/TCP(dport=80, flags="S"${mss === undefined ? "" : `, options=[("MSS", ${mss})]`})`;
  for (const p of [viaIpt, viaNft]) {
    await scapy(p, syn(1460), 2);
    await scapy(p, syn(400), 3);
    await scapy(p, syn(), 1);
    await scapy(p, syn(600), 2);
    await scapy(p, "IP(dst=T)/UDP(dport=80)", 1);
  }
  // 1460: 2; ! 536-65535: the 3 with MSS 400 and the one without the option; 500-1000: the 2 with 600.
  const want = [2, 4, 2];
  assert.deepEqual(await iptCounts(viaIpt.server), want);
  assert.deepEqual(await nftCounts(viaNft.server, n), want);
});

test("CONNMARK --save/--restore-mark into some bits of the destination (Tailscale's masks): copied, cleared and flipped bits", async () => {
  const n = await load(
    [
      "*mangle",
      "-A PREROUTING -p udp -m udp --dport 9:11 -j CONNMARK --set-xmark 0x12345678/0xffffffff",
      "-A PREROUTING -p udp -m udp --dport 9:11 -j MARK --set-xmark 0xabcdef01/0xffffffff",
      "-A PREROUTING -p udp -m udp --dport 9 -j CONNMARK --restore-mark --nfmask 0xff0000 --ctmask 0xff0000",
      "-A PREROUTING -p udp -m udp --dport 10 -j CONNMARK --restore-mark --nfmask 0xff00ff --ctmask 0xffff",
      "-A PREROUTING -p udp -m udp --dport 11 -j CONNMARK --save-mark --nfmask 0xff0000 --ctmask 0xff0000",
      "COMMIT",
      "*filter",
      "-A INPUT -m mark --mark 0xab34ef01",
      "-A INPUT -m mark --mark 0xab00b978",
      "-A INPUT -m connmark --mark 0x12cd5678",
      "-A INPUT -m mark --mark 0xabcdef01",
      "COMMIT",
      "",
    ].join("\n"),
  );
  for (const p of [viaIpt, viaNft]) {
    await scapy(p, "IP(dst=T)/UDP(dport=9)", 2);
    await scapy(p, "IP(dst=T)/UDP(dport=10)", 3);
    await scapy(p, "IP(dst=T)/UDP(dport=11)", 1);
  }
  // mark = (mark & ~nfmask) ^ (ctmark & ctmask): 0xab34ef01 (bits 16-23 copied), 0xab00b978
  // (0xff0000 cleared, 0xff copied, 0xff00 flipped by 0x56); save: ctmark 0x12cd5678, mark kept.
  const want = [2, 3, 1, 1];
  try {
    assert.deepEqual(await iptCounts(viaIpt.server), want, "xt_CONNMARK gives the marks the masks call for");
    assert.deepEqual(await nftCounts(viaNft.server, n), want, "the per-bit nftables rules give the same marks");
  } finally {
    await lab.exec(viaIpt.server, ["iptables", "-t", "mangle", "-F"], { allowFailure: true });
  }
});
