// A dump that matches a tuple ipset (hash:net,port looked up src,dst, as ipset-allow-net-port
// has), proved with real packets on three servers: the original (ipset restore +
// iptables-restore), Palisade's nftables rendering of the import (a concatenated set
// `ip saddr . meta l4proto . th dport @set`) and its iptables rendering (ipset hash:net,port).
// The set holds the member's /24 with TCP port A, the member's own address with TCP port A
// again (inside the /24: ipset keeps both, nft refuses the overlap, so the render leaves it out)
// and with UDP port B. A member tuple is let in (member, TCP A); the right address with the
// wrong port (member, TCP B: B is in the set for UDP only) is not, nor the right port from
// another address (other, TCP A).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { importRendered, memberLab, VARIANTS, type MemberLab } from "../support/import-lab.ts";

const PORT_A = 9301;
const PORT_B = 9302;
const DUMP = `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m set --match-set allow-net-port src,dst -j ACCEPT
COMMIT
`;

const lab = createLab();
let l: MemberLab;

before(async () => {
  l = await memberLab(lab, [PORT_A, PORT_B]);
});
after(() => lab.cleanup());

/** The original host's `ipset save`: per server link, the member's /24 and its own address. */
function ipsetSave(): string {
  const lines = ["create allow-net-port hash:net,port family inet hashsize 1024 maxelem 65536"];
  for (const link of Object.values(l.links)) {
    lines.push(`add allow-net-port ${link.member.net4},tcp:${PORT_A}`);
    lines.push(`add allow-net-port ${link.member.a.ip4},tcp:${PORT_A}`);
    lines.push(`add allow-net-port ${link.member.a.ip4},udp:${PORT_B}`);
  }
  return `${lines.join("\n")}\n`;
}

async function probe() {
  const out: Record<string, string> = {};
  for (const k of VARIANTS) {
    const row: string[] = [];
    for (const [who, ns, link] of [
      ["member", l.member, l.links[k].member],
      ["other", l.other, l.links[k].other],
    ] as const) {
      const a = await lab.tcpConnect(ns, link.b.ip4, PORT_A, { timeoutS: 1 });
      const b = await lab.tcpConnect(ns, link.b.ip4, PORT_B, { timeoutS: 1 });
      row.push(`${who}: tcp ${PORT_A} ${a ? "yes" : "no"}, tcp ${PORT_B} ${b ? "yes" : "no"}`);
    }
    out[k] = row.join("; ");
  }
  return out;
}

test("a hash:net,port set looked up src,dst: member tuples in, the member's address on another port and another address on the port out, in iptables+ipset and both renderings", async () => {
  const save = ipsetSave();
  const { r, nft, ipt } = importRendered(DUMP, save);
  assert.equal(r.policy!.sets.allow_net_port?.type, "ipv4_addr,port");
  assert.match(nft, /ip saddr \. meta l4proto \. th dport @allow_net_port accept/);

  await lab.exec(l.servers.original, ["ipset", "restore"], { input: save });
  await lab.exec(l.servers.original, ["iptables-restore"], { input: DUMP });
  await lab.nft(l.servers.nft, ["-f", "-"], nft);
  await lab.exec(l.servers.iptables, ["ipset", "restore", "-exist"], { input: ipt.ipsets });
  await lab.exec(l.servers.iptables, ["iptables-restore", "--noflush"], { input: ipt.text });
  // What each loaded: ipset keeps the nested tuple, nft has one element fewer per link.
  const kept = await lab.exec(l.servers.iptables, ["ipset", "list", "pal_allow_net_port"]);
  assert.match(kept.stdout, /Number of entries: 9/);
  const listed = await lab.nft(l.servers.nft, ["list", "set", "inet", "palisade", "allow_net_port"]);
  assert.equal(listed.stdout.match(/ \. tcp \. /g)?.length, 3, listed.stdout);

  const expected = `member: tcp ${PORT_A} yes, tcp ${PORT_B} no; other: tcp ${PORT_A} no, tcp ${PORT_B} no`;
  assert.deepEqual(await probe(), { original: expected, nft: expected, iptables: expected });
});
