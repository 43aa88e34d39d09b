// The TTL and HL targets proved with packets: a router-mangle dump (tethering's `--ttl-set 65`,
// `--ttl-inc 1`, and inc/dec that saturate) is loaded with iptables-restore / ip6tables-restore
// (the reference), imported and rendered for nftables, and rendered back for iptables-restore,
// each on a router of its own (client -- router -- receiver). The client sends UDP datagrams
// with chosen TTLs / hop limits; the router forwards them (minus 1) and rewrites them in mangle
// POSTROUTING; the receiver reads each datagram's TTL (IP_RECVTTL / IPV6_RECVHOPLIMIT). The
// values must be xt_HL's and the same under all three loaders.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Background, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";

const lab: NetnsLab = createLab();
const KINDS = ["orig", "nft", "ipt"] as const;
type Side = { client: string; router: string; server: string; ip4: string; ip6: string; rx?: Background };
const side = {} as Record<(typeof KINDS)[number], Side>;
before(async () => {
  for (const k of KINDS) {
    const r = await lab.routed();
    side[k] = { client: r.client, router: r.router, server: r.server, ip4: r.right.b.ip4, ip6: r.right.b.ip6 };
  }
});
after(() => lab.cleanup());

const PORTS = [7201, 7202, 7203, 7204];
/** The TTL (hop limit) the client sends; the router's forwarding takes 1 before POSTROUTING. */
const SENT = [2, 3, 64, 200, 255];

const rules = (p: "ttl" | "hl", target: string) => [
  `-A POSTROUTING -p udp -m udp --dport 7201 -j ${target} --${p}-set 65`,
  `-A POSTROUTING -p udp -m udp --dport 7202 -j ${target} --${p}-inc 1`,
  // dec 5 of 1 and 2 saturates at 0; inc 0x10 of 254 saturates at 255.
  `-A POSTROUTING -p udp -m udp --dport 7203 -j ${target} --${p}-dec 5`,
  `-A POSTROUTING -p udp -m udp --dport 7204 -j ${target} --${p}-inc 0x10`,
];
/** xt_HL's ttl_tg/hl_tg6 on the forwarded value (sent - 1). */
const WANT: Record<number, (t: number) => number> = {
  7201: () => 65,
  7202: (t) => Math.min(255, t + 1),
  7203: (t) => Math.max(0, t - 5),
  7204: (t) => Math.min(255, t + 16),
};

/** Prints `listening`, then `PORT TTL` per datagram on PORTS (IPv4 and IPv6). */
const RECEIVE = `
import socket, select
socks = []
for fam in (socket.AF_INET, socket.AF_INET6):
    for p in [${PORTS.join(", ")}]:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        else:
            # IP_RECVTTL (linux/in.h); Python 3.11 does not name it.
            s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", p))
        socks.append((s, p))
print("listening", flush=True)
while True:
    ready, _, _ = select.select([s for s, _ in socks], [], [], 30)
    if not ready:
        break
    for s in ready:
        data, anc, _, _ = s.recvmsg(64, 64)
        ttl = next(int.from_bytes(d[:4], "little") for lvl, typ, d in anc)
        print(dict((x, p) for x, p in socks)[s], ttl, flush=True)
`;

/** One datagram per TTL in SENT to each port, in order. */
const SEND = `
import socket, sys
dst = sys.argv[1]
v6 = ":" in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
for p in [${PORTS.join(", ")}]:
    for t in [${SENT.join(", ")}]:
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, t)
        else:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, t)
        s.sendto(b"x", (dst, p))
`;

/** Per port, the TTLs the receiver saw, in arrival order. */
async function received(s: Side, dst: string): Promise<Record<number, number[]>> {
  const earlier = s.rx!.output().split("\n").length;
  await lab.exec(s.client, ["/usr/bin/python3", "-c", SEND, dst]);
  const want = PORTS.length * SENT.length;
  let lines: string[] = [];
  for (let i = 0; i < 100; i++) {
    lines = s
      .rx!.output()
      .split("\n")
      .slice(earlier - 1)
      .filter((l) => /^\d+ \d+$/.test(l));
    if (lines.length >= want) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const out: Record<number, number[]> = {};
  for (const l of lines) {
    const [p, t] = l.split(" ").map(Number) as [number, number];
    (out[p] ??= []).push(t);
  }
  return out;
}

for (const tool of ["iptables", "ip6tables"] as const) {
  test(`${tool} -j ${tool === "iptables" ? "TTL" : "HL"} set/inc/dec (saturating): ${tool}-restore, the nftables and ${tool} renders write the same TTLs`, async () => {
    const v6 = tool === "ip6tables";
    const text = [
      `# Generated by ${tool}-save v1.8.9`,
      "*mangle",
      ":POSTROUTING ACCEPT [0:0]",
      ...rules(v6 ? "hl" : "ttl", v6 ? "HL" : "TTL"),
      "COMMIT",
      "",
    ].join("\n");
    const imported = importPolicy("iptables-save", text);
    assert.deepEqual(imported.errors, []);
    const v = validatePolicy(imported.policy, { target: "nftables" });
    assert.deepEqual(v.errors, []);
    const nft = renderNft(v.policy!);
    assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
    const ipt = renderIptables(v.policy!);
    assert.ok(ipt.ok, JSON.stringify(!ipt.ok && ipt.errors));
    for (const s of Object.values(side)) {
      await lab.exec(s.router, ["iptables", "-t", "mangle", "-F"]);
      await lab.exec(s.router, ["ip6tables", "-t", "mangle", "-F"]);
      await lab.nft(s.router, ["flush", "ruleset"]);
    }
    await lab.exec(side.orig.router, [`${tool}-restore`], { input: text });
    await lab.nft(side.nft.router, ["-f", "-"], nft.text);
    await lab.exec(side.ipt.router, [`${tool}-restore`, "--noflush"], { input: v6 ? ipt.text6 : ipt.text });
    const want = Object.fromEntries(PORTS.map((p) => [p, SENT.map((t) => WANT[p]!(t - 1))]));
    // The saturating cases are in it: dec 5 of 1 and 2 is 0, inc 16 of 254 is 255.
    assert.deepEqual(want[7203]!.slice(0, 2), [0, 0]);
    assert.equal(want[7204]!.at(-1), 255);
    for (const k of KINDS) {
      const s = side[k];
      s.rx ??= await listenOn(s.server);
      assert.deepEqual(await received(s, v6 ? s.ip6 : s.ip4), want, `${k}: ${tool}`);
    }
  });
}

async function listenOn(ns: string): Promise<Background> {
  const l = lab.background(ns, ["/usr/bin/python3", "-c", RECEIVE], { maxLifetimeMs: 120_000 });
  for (let i = 0; i < 100 && !l.output().includes("listening"); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(l.output(), /listening/);
  return l;
}
