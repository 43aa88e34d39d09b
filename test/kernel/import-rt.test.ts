// ip6tables -m rt (the IPv6 routing header), proved with packets: the same ip6tables-save
// text is loaded with ip6tables-restore in one namespace and imported + rendered by renderNft
// in another; the client sends the same crafted packets to both, and the per-rule packet
// counts (ip6tables-save -c; the import's named counters for target-less rules) must agree,
// and must be the counts the rules call for. A packet without a routing header matches no rt
// test, negated ones included, in ip6t_rt and in nft's exthdr lookup alike.
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
let viaIpt: Pair;
let viaNft: Pair;
before(async () => {
  for (const which of ["ipt", "nft"] as const) {
    const { client, server, link } = await lab.pair();
    const p = { client, server, target: link.b.ip6 };
    if (which === "ipt") viaIpt = p;
    else viaNft = p;
  }
});
after(() => lab.cleanup());

async function scapy(p: Pair, packet: string, count: number): Promise<void> {
  const code = `from scapy.all import *\nT=${JSON.stringify(p.target)}\nsend(${packet}, count=${count}, verbose=0)`;
  await lab.exec(p.client, ["/usr/bin/python3", "-c", code], { timeoutMs: 20_000 });
}

test("rt: --rt-type, ! --rt-type with --rt-segsleft, ! --rt-segsleft; packets without a routing header match none", async () => {
  const text = [
    "*filter",
    ":INPUT ACCEPT [0:0]",
    "-A INPUT -m rt --rt-type 0",
    "-A INPUT -m rt ! --rt-type 0 --rt-segsleft 1:5",
    "-A INPUT -m rt ! --rt-segsleft 0",
    "-A INPUT -p udp -m udp --dport 9",
    "COMMIT",
    "",
  ].join("\n");
  const imported = importPolicy("iptables-save", text, { family: "ipv6" });
  assert.deepEqual(imported.errors, []);
  assert.ok(imported.policy);
  assert.deepEqual(validatePolicy(imported.policy).errors, []);
  const nft = renderNft(imported.policy);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  await lab.exec(viaIpt.server, ["ip6tables-restore"], { input: text });
  await lab.nft(viaNft.server, ["-f", "-"], nft.text);
  const rh = (type: number, segleft: number) =>
    `IPv6(dst=T)/IPv6ExtHdrRouting(type=${type}, segleft=${segleft}, addresses=[${Array(segleft).fill('"2001:db8:ffff::1"').join(",")}])/UDP(dport=9)`;
  for (const p of [viaIpt, viaNft]) {
    await scapy(p, rh(0, 0), 2);
    await scapy(p, rh(2, 1), 3);
    await scapy(p, rh(3, 7), 1);
    await scapy(p, "IPv6(dst=T)/UDP(dport=9)", 2);
  }
  // type 0: the 2 of type 0; !0 with 1-5 left: the 3 of type 2 (not type 3 with 7);
  // ! segleft 0: type 2 and type 3 (not type 0 with 0, not the 2 without a header); udp: all 8.
  const want = [2, 3, 4, 8];
  const r = await lab.exec(viaIpt.server, ["ip6tables-save", "-c", "-t", "filter"]);
  const ipt = r.stdout
    .split("\n")
    .filter((l) => l.includes("] -A INPUT ") && !/ -j /.test(l))
    .map((l) => Number(/^\[(\d+):/.exec(l)![1]));
  assert.deepEqual(ipt, want, "ip6tables counts the crafted packets as the rules say");
  const j = await lab.nft(viaNft.server, ["-j", "list", "counters"]);
  const objs = (JSON.parse(j.stdout) as { nftables: Array<{ counter?: { name: string; packets: number } }> }).nftables;
  const by = new Map(objs.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets] as const] : [])));
  const n = imported.policy.chains.input!.rules.length;
  assert.deepEqual(
    Array.from({ length: n }, (_, i) => by.get(`input_count_${i + 1}`) ?? -1),
    want,
    "the nftables rendering counts them the same",
  );
});
