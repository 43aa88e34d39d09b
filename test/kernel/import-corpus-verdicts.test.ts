// Behaviour of real rulesets from the corpus (test/fixtures/import/corpus): each is loaded
// with iptables-restore on the router of one client--router--server lab, and imported and
// rendered with renderNft on the router of a second, identical lab. The same probes run in
// both: new connections to the router (input), a connection the router opens (output, then
// established replies), and new connections and pings through it (forward, with their
// established replies). Every probe must give the same answer in both labs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { CORPUS_DIR } from "../support/import-corpus.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";

/** Filter rulesets that import and load (see import-corpus.test.ts). */
const RULESETS = [
  "debian-webserver.rules",
  "pi-server.rules",
  "persistent-web.rules",
  "mail-relay.rules",
  "zerotier-starter.rules",
  "openshift-bastion.rules",
  "amimoto-centos.rules",
  "synology-ds414.rules",
  "cloudflare-only.rules",
  "dmz-minecraft.rules",
  "simple-ipv4-router.rules",
  "ufw-server2.rules",
  // Loading since the check-then-stamp recent idiom and -m policy (ipsec) were added.
  "freifunk-sargon.rules",
  "unifi-ipsec-gateway.rules",
  // Matches ipsets: loaded with its sets (below).
  "firehol-country-ipset.rules",
];

/**
 * `ipset save` text for a ruleset that matches ipsets, given the clients of both labs: the
 * iptables router loads it with `ipset restore` before the dump, and the import gets the same
 * text (`palisade import --ipset`), so both hold the same members.
 */
const IPSETS: Record<string, (clients: string[]) => string> = {
  // The client is in country_ru: its packets to the router (-s) and the router's to it (-d)
  // are dropped after the rules before them; forwarded traffic passes neither chain.
  "firehol-country-ipset.rules": (clients) =>
    save(
      ["country_hk", "country_ru", "country_cn", "country_pl", "cta_cryptowall", "spamhaus_drop", "spamhaus_edrop"],
      { country_ru: clients, spamhaus_drop: ["192.0.2.0/24"] },
    ),
  // Forwarding and masquerading are for allowed_internet's members only: the client is one
  // (the repository's own set, pi-ap-ipset.ipset, holds 192.168.22.x hosts, none of them a
  // lab client, so it would show only the refusals).
  "pi-ap-ipset.rules": (clients) => save(["allowed_internet"], { allowed_internet: clients }),
};

function save(sets: string[], members: Record<string, string[]>): string {
  return sets
    .flatMap((n) => [
      `create ${n} hash:net family inet hashsize 1024 maxelem 65536`,
      ...(members[n] ?? []).map((m) => `add ${n} ${m}`),
    ])
    .map((l) => `${l}\n`)
    .join("");
}

/** The import of a corpus file, with its ipsets when it has some (no set left empty then). */
function importCorpus(name: string, text: string, clients: string[]) {
  const ipsets = IPSETS[name]?.(clients);
  const imported = importPolicy("iptables-save", text, ipsets === undefined ? {} : { ipsets });
  assert.deepEqual(imported.errors, []);
  // The labs probe IPv4; an IPv4 DROP policy's warning that IPv6 passes the chain unfiltered is expected.
  assert.deepEqual(
    imported.warnings.filter((w) => w.code !== "ipv4_only_input"),
    [],
  );
  const nft = renderNft(imported.policy!);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));
  return { nft: nft.text, ipsets };
}

/** The original on a router: its ipsets first (a rule can only refer to a set that exists), then the dump. */
async function restoreOriginal(router: string, text: string, ipsets: string | undefined): Promise<void> {
  await lab.exec(router, ["iptables-restore"], { input: EMPTY });
  await lab.exec(router, ["ipset", "destroy"], { allowFailure: true });
  if (ipsets !== undefined) await lab.exec(router, ["ipset", "restore"], { input: ipsets });
  await lab.exec(router, ["iptables-restore"], { input: text });
}

interface Lab {
  client: string;
  router: string;
  server: string;
  routerIn: string;
  serverIp: string;
  clientIp: string;
}
const lab: NetnsLab = createLab();
let viaIpt: Lab;
let viaNft: Lab;

async function routed(): Promise<Lab> {
  const r = await lab.routed();
  const l = {
    client: r.client,
    router: r.router,
    server: r.server,
    routerIn: r.left.b.ip4,
    serverIp: r.right.b.ip4,
    clientIp: r.left.a.ip4,
  };
  // A REJECT answers with ICMP errors, which the kernel rate-limits per peer (6 at once, then
  // one a second): a probe after a few rejections would find its answer suppressed in one lab
  // and not in the other. Without the limit every probe gets the answer its rules give.
  await lab.exec(l.router, ["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0"]);
  // Listeners: the client (for the router's outgoing connection), the server (forwarded ones).
  lab.background(l.client, ["nc", "-lk", "7777"], { maxLifetimeMs: 600_000 });
  for (const port of ["80", "22"]) lab.background(l.server, ["nc", "-lk", port], { maxLifetimeMs: 600_000 });
  return l;
}

before(async () => {
  viaIpt = await routed();
  viaNft = await routed();
});
after(() => lab.cleanup());

/** TCP: 1 when the router's TCP stack answered (SYN-ACK or RST), 0 when the packet was
 *  dropped or rejected with an ICMP error (hping3 counts those as received too, so its
 *  summary alone cannot tell a REJECT from an accept). UDP: any answer counts. */
async function syn(l: Lab, host: string, port: number, udp = false): Promise<number> {
  const r = await lab.exec(
    l.client,
    ["hping3", ...(udp ? ["-q", "--udp"] : ["-S"]), "-c", "2", "-i", "u20000", "-p", String(port), host],
    { allowFailure: true, timeoutMs: 10_000 },
  );
  const out = r.stdout + r.stderr;
  const m = /(\d+) packets received/.exec(out);
  if (!m) throw new Error(`hping3 printed no summary: ${out}`);
  if (udp) return Number(m[1]) > 0 ? 1 : 0;
  return /flags=(SA|RA)/.test(out) ? 1 : 0;
}

const PROBES: Record<string, (l: Lab) => Promise<number | boolean>> = {
  "new tcp 22 to the router": (l) => syn(l, l.routerIn, 22),
  "new tcp 80 to the router": (l) => syn(l, l.routerIn, 80),
  "new tcp 12345 to the router": (l) => syn(l, l.routerIn, 12345),
  "udp 53 to the router": (l) => syn(l, l.routerIn, 53, true),
  "ping the router": async (l) => (await lab.ping(l.client, l.routerIn, { count: 2, waitS: 1 })).received > 0,
  "router connects out (output, established replies)": (l) => lab.tcpConnect(l.router, l.clientIp, 7777),
  "forwarded connection to 80 (new + established)": (l) => lab.tcpConnect(l.client, l.serverIp, 80),
  "forwarded connection to 22": (l) => lab.tcpConnect(l.client, l.serverIp, 22),
  "forwarded ping": async (l) => (await lab.ping(l.client, l.serverIp, { count: 2, waitS: 1 })).received > 0,
};

async function probeAll(l: Lab): Promise<Record<string, number | boolean>> {
  const out: Record<string, number | boolean> = {};
  for (const [name, probe] of Object.entries(PROBES)) out[name] = await probe(l);
  return out;
}

const EMPTY =
  "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

test("with no rules every probe succeeds (so a refusal below is the ruleset's)", async () => {
  const open = await probeAll(viaIpt);
  for (const [name, v] of Object.entries(open)) assert.ok(v === true || v === 1, name);
});

for (const name of RULESETS) {
  test(`${name}: iptables-restore and Palisade's nftables give the same verdicts`, async () => {
    const text = readFileSync(join(CORPUS_DIR, name), "utf8");
    const { nft, ipsets } = importCorpus(name, text, [viaIpt.clientIp, viaNft.clientIp]);
    await restoreOriginal(viaIpt.router, text, ipsets);
    await lab.nft(viaNft.router, ["flush", "ruleset"]);
    await lab.nft(viaNft.router, ["-f", "-"], nft);
    for (const l of [viaIpt, viaNft]) await lab.exec(l.router, ["conntrack", "-F"], { allowFailure: true });
    const [a, b] = await Promise.all([probeAll(viaIpt), probeAll(viaNft)]);
    console.log(
      `${name}: ${Object.values(a)
        .map((v) => (v === true || v === 1 ? "+" : "-"))
        .join("")}`,
    );
    assert.deepEqual(b, a, "same answers from the nftables rendering as from iptables");
  });
}

// NAT paths: routers from the corpus whose nat table masquerades or DNATs by interface. Two
// more labs, whose router interfaces are renamed to the ruleset's LAN and WAN names (the
// client sits on the LAN, the server on the WAN), so `-o eth0 -j MASQUERADE` and `-i eth1`
// mean what they meant on the original host. Besides the verdicts, each lab's conntrack
// entry says which source address the server saw for a forwarded connection (the client's,
// or the router's after MASQUERADE/SNAT).
const NAT_RULESETS: Record<string, { lan: string; wan: string }> = {
  "pi-router-3lan.rules": { lan: "eth1", wan: "eth0" },
  "3g-router.rules": { lan: "wlan0", wan: "ppp0" },
  "pi-router.rules": { lan: "lan", wan: "eth0" },
  "docker-class-management.rules": { lan: "docker0", wan: "eth0" },
  "sample-nat-router.rules": { lan: "eth1", wan: "eth0" },
  "pi-ap-ipset.rules": { lan: "wlan0", wan: "eth0" },
};

interface NatLab extends Lab {
  routerOut: string;
  lanIf: string;
  wanIf: string;
}
let natIpt: NatLab | undefined;
let natNft: NatLab | undefined;

async function natLab(): Promise<NatLab> {
  const r = await lab.routed();
  const l: NatLab = {
    client: r.client,
    router: r.router,
    server: r.server,
    routerIn: r.left.b.ip4,
    routerOut: r.right.a.ip4,
    serverIp: r.right.b.ip4,
    clientIp: r.left.a.ip4,
    lanIf: r.left.b.ifname,
    wanIf: r.right.a.ifname,
  };
  await lab.exec(l.router, ["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
  lab.background(l.client, ["nc", "-lk", "7777"], { maxLifetimeMs: 600_000 });
  for (const port of ["80", "22"]) lab.background(l.server, ["nc", "-lk", port], { maxLifetimeMs: 600_000 });
  lab.background(l.router, ["nc", "-lk", "22"], { maxLifetimeMs: 600_000 });
  return l;
}

/** Gives the router's LAN and WAN interfaces the ruleset's names (a rename needs the link down). */
async function nameInterfaces(l: NatLab, lan: string, wan: string): Promise<void> {
  for (const [from, to] of [
    [l.lanIf, `pl${l.lanIf.slice(-6)}`],
    [l.wanIf, `pw${l.wanIf.slice(-6)}`],
  ] as const) {
    // First to a neutral name, so a swap (eth0 <-> eth1) never collides.
    await lab.exec(l.router, ["ip", "link", "set", "dev", from, "down"]);
    await lab.exec(l.router, ["ip", "link", "set", "dev", from, "name", to]);
    if (from === l.lanIf) l.lanIf = to;
    else l.wanIf = to;
  }
  for (const [from, to] of [
    [l.lanIf, lan],
    [l.wanIf, wan],
  ] as const) {
    await lab.exec(l.router, ["ip", "link", "set", "dev", from, "name", to]);
    await lab.exec(l.router, ["ip", "link", "set", "dev", to, "up"]);
  }
  l.lanIf = lan;
  l.wanIf = wan;
}

/** Who the server saw as the source of the forwarded connection to port 80 (the reply's destination). */
async function seenSource(l: NatLab): Promise<string> {
  const r = await lab.exec(l.router, ["conntrack", "-L", "-p", "tcp", "--dport", "80", "-s", l.clientIp], {
    allowFailure: true,
  });
  const line = r.stdout.split("\n").find((x) => x.includes(`dst=${l.serverIp}`));
  const dst = line ? [...line.matchAll(/dst=(\S+)/g)][1]?.[1] : undefined;
  if (dst === undefined) return "no connection";
  return dst === l.clientIp ? "client" : dst === l.routerOut ? "router" : dst;
}

async function natProbes(l: NatLab): Promise<Record<string, number | boolean | string>> {
  await lab.exec(l.router, ["conntrack", "-F"], { allowFailure: true });
  const out: Record<string, number | boolean | string> = {};
  out["LAN to WAN tcp 80 (new + established)"] = await lab.tcpConnect(l.client, l.serverIp, 80);
  out["source the server saw"] = await seenSource(l);
  out["LAN to WAN ping"] = (await lab.ping(l.client, l.serverIp, { count: 2, waitS: 1 })).received > 0;
  out["WAN to LAN new tcp"] = await lab.tcpConnect(l.server, l.clientIp, 7777);
  out["router to WAN tcp 22 (output, nat output)"] = await lab.tcpConnect(l.router, l.serverIp, 22);
  out["LAN to the router tcp 22"] = await syn(l, l.routerIn, 22);
  out["WAN to the router tcp 22"] = await lab.tcpConnect(l.server, l.routerOut, 22);
  return out;
}

test("NAT labs: with no rules every path is open and the server sees the client", async () => {
  natIpt = await natLab();
  natNft = await natLab();
  // Conntrack hooks a namespace only once a rule needs it: one rule that only counts makes the
  // source readable as with the rulesets, without changing a verdict.
  await lab.exec(natIpt.router, ["iptables-restore"], {
    input: "*filter\n-A FORWARD -m conntrack --ctstate NEW\nCOMMIT\n",
  });
  const open = await natProbes(natIpt);
  assert.equal(open["source the server saw"], "client");
  for (const [name, v] of Object.entries(open))
    if (name !== "source the server saw") assert.ok(v === true || v === 1, name);
});

for (const [name, { lan, wan }] of Object.entries(NAT_RULESETS)) {
  test(`${name} (NAT paths, LAN ${lan}, WAN ${wan}): iptables-restore and Palisade's nftables agree`, async () => {
    const [ipt, nftLab] = [natIpt!, natNft!];
    for (const l of [ipt, nftLab]) await nameInterfaces(l, lan, wan);
    const text = readFileSync(join(CORPUS_DIR, name), "utf8");
    const { nft, ipsets } = importCorpus(name, text, [ipt.clientIp, nftLab.clientIp]);
    await restoreOriginal(ipt.router, text, ipsets);
    await lab.nft(nftLab.router, ["flush", "ruleset"]);
    await lab.nft(nftLab.router, ["-f", "-"], nft);
    const [a, b] = await Promise.all([natProbes(ipt), natProbes(nftLab)]);
    console.log(`${name} (NAT): ${JSON.stringify(a)}`);
    assert.deepEqual(b, a, "same answers and the same source address from the nftables rendering as from iptables");
  });
}
