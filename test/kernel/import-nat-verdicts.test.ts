// NAT paths and the connection's original tuple, with real packets: a router ruleset that
// port-forwards (DNAT) to a server behind it, masquerades (SNAT) towards it, and lets new
// forwarded connections through only by their original, pre-NAT destination port
// (`conntrack --ctproto 6 --ctorigdstport`) or by a connection mark set and restored under a
// mask (CONNMARK --set-xmark / --restore-mark --ctmask), or by `multiport --ports`. It is loaded with iptables-restore
// on the router of one client--router--server lab, imported and rendered with renderNft on
// the router of a second, identical lab, and the same probes must get the same answers.
// The server has no route to the client: a forwarded connection only completes when the
// router masqueraded it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";

interface Lab {
  client: string;
  router: string;
  server: string;
  routerIn: string;
  serverIp: string;
  rightIf: string;
}
const lab: NetnsLab = createLab();
let viaIpt: Lab;
let viaNft: Lab;

async function routed(): Promise<Lab> {
  const r = await lab.routed();
  await lab.exec(r.server, ["ip", "route", "del", "default"]);
  for (const port of ["80", "22", "25", "2222"])
    lab.background(r.server, ["nc", "-lk", port], { maxLifetimeMs: 300_000 });
  return {
    client: r.client,
    router: r.router,
    server: r.server,
    routerIn: r.left.b.ip4,
    serverIp: r.right.b.ip4,
    rightIf: r.right.a.ifname,
  };
}

before(async () => {
  viaIpt = await routed();
  viaNft = await routed();
});
after(() => lab.cleanup());

/** The ruleset as iptables-save prints it, with one lab's addresses. */
function ruleset(l: Lab): string {
  return `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d ${l.routerIn}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${l.serverIp}:80
-A PREROUTING -d ${l.routerIn}/32 -p tcp -m tcp --dport 8022 -j DNAT --to-destination ${l.serverIp}:22
-A PREROUTING -d ${l.routerIn}/32 -p tcp -m tcp --dport 8025 -j DNAT --to-destination ${l.serverIp}:25
-A POSTROUTING -o ${l.rightIf} -j MASQUERADE
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 8022 -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x200/0xff00
-A PREROUTING -p tcp -m tcp --dport 8025 -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x2201/0xffff
-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xff00
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW --ctproto 6 --ctorigdstport 8080 -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -m mark --mark 0x200 -j ACCEPT
-A FORWARD -p tcp -m multiport --ports 2222,2223 -j ACCEPT
COMMIT
`;
}

const PROBES: Record<string, (l: Lab) => Promise<boolean>> = {
  "port-forward 8080 -> server:80 (DNAT, original port accepted, masqueraded)": (l) =>
    lab.tcpConnect(l.client, l.routerIn, 8080),
  "server:80 directly (original port 80: dropped)": (l) => lab.tcpConnect(l.client, l.serverIp, 80),
  "port-forward 8022 -> server:22 (connmark 0x200 under 0xff00, restored)": (l) =>
    lab.tcpConnect(l.client, l.routerIn, 8022),
  "port-forward 8025 -> server:25 (connmark 0x2201: restored as 0x2200, not 0x200)": (l) =>
    lab.tcpConnect(l.client, l.routerIn, 8025),
  "server:22 directly (no mark: dropped)": (l) => lab.tcpConnect(l.client, l.serverIp, 22),
  "server:2222 directly (multiport --ports, split in two rules)": (l) => lab.tcpConnect(l.client, l.serverIp, 2222),
};

async function probeAll(l: Lab): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const [name, probe] of Object.entries(PROBES)) out[name] = await probe(l);
  return out;
}

test("DNAT/SNAT paths, ct original port and masked connmark: iptables-restore and Palisade's nftables agree", async () => {
  // Each lab has its own addresses: iptables loads its lab's text, Palisade imports its own.
  const text = ruleset(viaIpt);
  const imported = importPolicy("iptables-save", ruleset(viaNft));
  assert.deepEqual(imported.errors, []);
  const nft = renderNft(imported.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  await lab.exec(viaIpt.router, ["iptables-restore"], { input: text });
  await lab.nft(viaNft.router, ["-f", "-"], nft.text);
  const a = await probeAll(viaIpt);
  const b = await probeAll(viaNft);
  console.log(JSON.stringify(a));
  // The ruleset itself must separate the paths, or agreement proves nothing.
  assert.deepEqual(Object.values(a), [true, false, true, false, false, true], "iptables' own answers");
  assert.deepEqual(b, a, "same answers from the nftables rendering as from iptables");
});
