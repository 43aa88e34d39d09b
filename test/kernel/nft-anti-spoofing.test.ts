// The antiSpoofing preset runs its checks once per connection direction on nftables
// (src/engine/compile/nft/anti-spoofing.ts): a packet of an ESTABLISHED connection skips
// them only when its own direction passed them on the external interface. The edge this
// proves: a spoofed packet carrying an established connection's 5-tuple, in the direction
// that never arrived on the external interface, is still dropped by the reverse-path check.
//
//   client (wan0 203.0.113.2) -- (ext0) router (lan0) -- (eth0 198.51.100.2) server
// Public-looking addresses on both sides, so the bogon-source rule does not decide: only the
// reverse-path check can tell the spoofed packet from a real one.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { applyPolicy, ruleCounter } from "../support/nft-lab.ts";

const lab = createLab();
let client = "";
let router = "";
let server = "";
let routerMac = "";
const CLIENT = "203.0.113.2";
const SERVER = "198.51.100.2";

before(async () => {
  client = await lab.addNamespace();
  router = await lab.addNamespace();
  server = await lab.addNamespace();
  await lab.link(client, router, { a: "wan0", b: "ext0" });
  await lab.link(router, server, { a: "lan0", b: "eth0" });
  await lab.exec(client, ["ip", "addr", "add", `${CLIENT}/24`, "dev", "wan0"]);
  await lab.exec(router, ["ip", "addr", "add", "203.0.113.1/24", "dev", "ext0"]);
  await lab.exec(router, ["ip", "addr", "add", "198.51.100.1/24", "dev", "lan0"]);
  await lab.exec(server, ["ip", "addr", "add", `${SERVER}/24`, "dev", "eth0"]);
  await lab.exec(client, ["ip", "route", "replace", "default", "via", "203.0.113.1", "src", CLIENT]);
  await lab.exec(server, ["ip", "route", "replace", "default", "via", "198.51.100.1", "src", SERVER]);
  await lab.enableForwarding(router);
  const link = JSON.parse((await lab.exec(router, ["ip", "-j", "link", "show", "ext0"])).stdout) as Array<{
    address: string;
  }>;
  routerMac = link[0]!.address;
});
after(() => lab.cleanup());

// Sends `n` UDP datagrams src:sport -> dst:dport: routed by the kernel ("l3"), or as frames
// straight to the router's MAC out of wan0 ("l2"), so a packet addressed to the client itself
// still leaves the client and reaches the router's external interface.
const SCAPY_UDP = `
import sys
from scapy.all import Ether, IP, UDP, conf, send, sendp
conf.verb = 0
mode, src, dst, sport, dport, n = sys.argv[1:7]
p = IP(src=src, dst=dst) / UDP(sport=int(sport), dport=int(dport)) / b"palisade"
if mode == "l3":
    send(p, count=int(n), inter=0.01)
else:
    sendp(Ether(dst=sys.argv[7]) / p, iface="wan0", count=int(n), inter=0.01)
`;
const udp = (ns: string, mode: "l3" | "l2", src: string, dst: string, sport: number, dport: number, n: number) =>
  lab.exec(
    ns,
    ["/usr/bin/python3", "-c", SCAPY_UDP, mode, src, dst, String(sport), String(dport), String(n), routerMac],
    { timeoutMs: 30_000 },
  );

const forwardRules = [
  // Loads conntrack in the router for the control too.
  { comment: "conntrack INVALID", match: { ctState: ["invalid"] }, action: "drop", counter: true },
  {
    comment: "server's source arriving on ext0",
    match: { iif: "ext0", saddr: SERVER },
    action: "accept",
    counter: true,
  },
  { comment: "client to server", match: { iif: "ext0", saddr: CLIENT }, action: "accept", counter: true },
  { comment: "server to client", match: { iif: "lan0", saddr: SERVER }, action: "accept", counter: true },
];
const policy = (protect: boolean) =>
  ({
    ...(protect ? { protections: { antiSpoofing: { interface: "ext0" } } } : {}),
    chains: { forward: { hook: "forward", policy: "accept", rules: forwardRules } },
  }) as never;
const count = async (comment: string) => (await ruleCounter(lab, router, "forward", comment)).packets;

/** Client opens a UDP flow to the server (original direction in on ext0), the server answers (reply direction in on lan0). */
async function establish(sport: number): Promise<void> {
  await udp(client, "l3", CLIENT, SERVER, sport, 4000, 2);
  await udp(server, "l3", SERVER, CLIENT, 4000, sport, 2);
  const ct = (
    await lab.exec(router, ["conntrack", "-L", "-p", "udp", "--orig-port-src", String(sport)], { allowFailure: true })
  ).stdout;
  assert.match(
    ct,
    /\bsrc=203\.0\.113\.2 .*sport=\d+ dport=4000 .*src=198\.51\.100\.2/,
    `no conntrack entry for the flow: ${ct}`,
  );
  assert.doesNotMatch(ct, /UNREPLIED/, ct);
}

test("control, without the preset: a packet with the server's source and the flow's reply tuple, sent in on ext0, is forwarded", async () => {
  await applyPolicy(lab, router, policy(false));
  await establish(5001);
  await udp(client, "l2", SERVER, CLIENT, 4000, 5001, 3);
  assert.equal(await count("server's source arriving on ext0"), 3);
});

test("antiSpoofing: the established flow keeps working both ways; the spoofed reply-direction packet on ext0 is dropped", async () => {
  await lab.exec(router, ["conntrack", "-F"], { allowFailure: true });
  await applyPolicy(lab, router, policy(true));
  await establish(5002);
  // Later packets of both directions pass (the original direction now skips the checks).
  const before = { out: await count("client to server"), back: await count("server to client") };
  assert.ok(before.out >= 2 && before.back >= 2, JSON.stringify(before));
  await udp(client, "l3", CLIENT, SERVER, 5002, 4000, 5);
  await udp(server, "l3", SERVER, CLIENT, 4000, 5002, 5);
  assert.ok((await count("client to server")) >= before.out + 5);
  assert.ok((await count("server to client")) >= before.back + 5);
  // Same 5-tuple as the flow's replies, so conntrack files it as ESTABLISHED, but it arrives
  // on ext0 where that direction never passed the checks: the reverse-path check drops it.
  await udp(client, "l2", SERVER, CLIENT, 4000, 5002, 3);
  assert.equal(await count("server's source arriving on ext0"), 0);
  // The kernel set the label: an observer table (counters only, later in forward) sees the
  // flow's original-direction packets (in on ext0, where the checks run) carry bit 126, and
  // its replies (in on lan0, which has no checks to pass) never carry bit 127.
  await lab.nft(
    router,
    ["-f", "-"],
    [
      "table inet observe {",
      "  chain f {",
      "    type filter hook forward priority 10; policy accept;",
      '    ct direction original ct label 126 counter comment "original verified"',
      '    ct direction reply ct label 127 counter comment "reply verified"',
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  try {
    await udp(client, "l3", CLIENT, SERVER, 5002, 4000, 4);
    await udp(server, "l3", SERVER, CLIENT, 4000, 5002, 4);
    const observed = (await lab.nft(router, ["-j", "list", "chain", "inet", "observe", "f"])).stdout;
    const packets = (comment: string) => {
      const rule = (
        JSON.parse(observed) as {
          nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }>;
        }
      ).nftables.find((x) => x.rule?.comment === comment)?.rule;
      return rule?.expr.find((e) => e.counter)?.counter?.packets ?? -1;
    };
    assert.ok(packets("original verified") >= 4, `original direction labelled: ${observed}`);
    assert.equal(packets("reply verified"), 0, `reply direction not labelled: ${observed}`);
  } finally {
    await lab.nft(router, ["delete", "table", "inet", "observe"]);
  }
});
