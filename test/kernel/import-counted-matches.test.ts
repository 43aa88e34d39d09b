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
interface Pair { client: string; server: string; target: string }
let viaIpt: Pair;
let viaNft: Pair;
before(async () => {
  for (const which of ["ipt", "nft"] as const) {
    const { client, server, link } = await lab.pair();
    const p = { client, server, target: link.b.ip4 };
    if (which === "ipt") viaIpt = p;
    else viaNft = p;
  }
});
after(() => lab.cleanup());

/** Packet counts of the target-less rules of INPUT, in order (iptables-save -c). */
async function iptCounts(ns: string): Promise<number[]> {
  const r = await lab.exec(ns, ["iptables-save", "-c", "-t", "filter"]);
  return r.stdout.split("\n").filter((l) => /^\[\d+:\d+\] -A INPUT /.test(l) && !/ -j /.test(l)).map((l) => Number(/^\[(\d+):/.exec(l)![1]));
}

/** Packet counts of the import's named counters input_count_1.. (nft). */
async function nftCounts(ns: string, n: number): Promise<number[]> {
  const r = await lab.nft(ns, ["-j", "list", "counters"]);
  const objs = (JSON.parse(r.stdout) as { nftables: Array<{ counter?: { name: string; packets: number } }> }).nftables;
  const by = new Map(objs.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets] as const] : [])));
  return Array.from({ length: n }, (_, i) => by.get(`input_count_${i + 1}`) ?? -1);
}

async function load(text: string): Promise<number> {
  const imported = importPolicy("iptables-save", text);
  assert.deepEqual(imported.errors, []);
  assert.ok(imported.policy);
  assert.deepEqual(validatePolicy(imported.policy).errors, []);
  const nft = renderNft(imported.policy);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  await lab.exec(viaIpt.server, ["iptables-restore"], { input: text });
  await lab.nft(viaNft.server, ["-f", "-"], nft.text);
  return imported.policy.chains.input!.rules.length;
}

async function hping(p: Pair, args: string[], count: number): Promise<void> {
  await lab.exec(p.client, ["hping3", "-q", "-c", String(count), "-i", "u20000", ...args, p.target], { allowFailure: true, timeoutMs: 10_000 });
}

/** Send `count` copies of a scapy packet expression (T is the target address). */
async function scapy(p: Pair, packet: string, count: number): Promise<void> {
  const code = `from scapy.all import *\nT=${JSON.stringify(p.target)}\nsend(${packet}, count=${count}, verbose=0)`;
  await lab.exec(p.client, ["/usr/bin/python3", "-c", code], { timeoutMs: 20_000 });
}

test("ICMP type/code pairs and numeric types: 3/4, a named code, an unnamed type number", async () => {
  const n = await load([
    "*filter",
    ":INPUT ACCEPT [0:0]",
    "-A INPUT -p icmp -m icmp --icmp-type 3/4",
    "-A INPUT -p icmp -m icmp --icmp-type port-unreachable",
    "-A INPUT -p icmp -m icmp --icmp-type 30",
    "COMMIT",
    "",
  ].join("\n"));
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
