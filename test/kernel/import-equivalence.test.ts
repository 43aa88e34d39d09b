// Behaviour check with real packets: a hardening-style iptables script loaded with
// iptables-restore in one network namespace, and the same script imported into a policy
// and rendered to nftables (renderNft) in another, answer the same probes the same way.
// Everything runs inside this test's own namespaces (test/support/netns.ts); the probes are
// bounded hping3/ping counts; nothing touches the root namespace's firewall.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { renderNft } from "../../src/engine/compile/nft/index.ts";
import { validatePolicy } from "../../src/engine/validate/index.ts";

// The hardening subset: INVALID drop, SYN,FIN drop, ICMP timestamp drop, a -s drop, a
// --dport accept, with a default DROP policy (plus ping allowed, to see an ICMP accept).
const SCRIPT = `
iptables -P INPUT DROP
iptables -A INPUT -m state --state INVALID -j DROP
iptables -A INPUT -p tcp -m tcp --tcp-flags SYN,FIN SYN,FIN -j DROP
iptables -A INPUT -p icmp -m icmp --icmp-type timestamp-request -j DROP
iptables -A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT
iptables -A INPUT -s \${BANNED} -j DROP
iptables -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
`;

/** The same script as iptables-restore input (what `iptables-save` would print for it). */
function restoreText(script: string, vars: Record<string, string>): string {
  const lines = script
    .replace(/\$\{(\w+)\}/g, (_, v: string) => vars[v] ?? "")
    .split("\n")
    .filter((l) => l.startsWith("iptables "));
  const policies = lines
    .filter((l) => / -P /.test(l))
    .map((l) => l.split(/\s+/))
    .map((w) => `:${w[2]} ${w[3]} [0:0]`);
  const rules = lines.filter((l) => / -A /.test(l)).map((l) => l.replace(/^iptables /, ""));
  return ["*filter", ...policies, ...rules, "COMMIT", ""].join("\n");
}

interface Setup {
  client: string;
  server: string;
  /** The server's address, and two more source addresses of the client: one the script bans. */
  target: string;
  banned: string;
  other: string;
}

const lab: NetnsLab = createLab();
let viaIptables: Setup;
let viaNft: Setup;

/** A client/server pair; the client also owns .3 and .4 of the link's /24 (hping3 -a sends from them and sees the answers). */
async function pair(): Promise<Setup> {
  const { client, server, link } = await lab.pair();
  const banned = link.a.ip4.replace(/\.1$/, ".3");
  const other = link.a.ip4.replace(/\.1$/, ".4");
  for (const a of [banned, other]) await lab.exec(client, ["ip", "addr", "add", `${a}/24`, "dev", link.a.ifname]);
  return { client, server, target: link.b.ip4, banned, other };
}

before(async () => {
  viaIptables = await pair();
  viaNft = await pair();
});
after(() => lab.cleanup());

async function hping(s: Setup, args: string[], count = 3): Promise<number> {
  const r = await lab.exec(s.client, ["hping3", "-q", "-c", String(count), "-i", "u20000", ...args, s.target], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(r.stdout + r.stderr);
  if (!m) throw new Error(`hping3 printed no summary: ${r.stdout} ${r.stderr}`);
  return Number(m[2]);
}

/** Each probe: how many of 3 packets got an answer (0 = dropped). */
const PROBES: Record<string, (s: Setup) => Promise<number>> = {
  "SYN to 22 (accepted; the closed port answers RST)": (s) => hping(s, ["-S", "-p", "22"]),
  "SYN to 23 (default policy)": (s) => hping(s, ["-S", "-p", "23"]),
  "SYN+FIN to 22": (s) => hping(s, ["-S", "-F", "-p", "22"]),
  "lone FIN to 22 (conntrack INVALID)": (s) => hping(s, ["-F", "-p", "22"]),
  "ICMP timestamp request": (s) => hping(s, ["-1", "-C", "13"]),
  "ICMP echo request": async (s) => (await lab.ping(s.client, s.target, { count: 3, waitS: 1 })).received,
  "SYN to 22 from the banned source": (s) => hping(s, ["-S", "-p", "22", "-a", s.banned]),
  "SYN to 22 from another source": (s) => hping(s, ["-S", "-p", "22", "-a", s.other]),
};

async function probeAll(s: Setup): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, probe] of Object.entries(PROBES)) out[name] = await probe(s);
  return out;
}

test("with no rules every probe gets its answers (so a 0 below means a drop)", async () => {
  const open = await probeAll(viaIptables);
  for (const [name, n] of Object.entries(open)) assert.equal(n, 3, name);
});

test("iptables-restore of the script and renderNft of its import give the same verdicts", async () => {
  // The same script in both namespaces; only the banned address (the pair's own) is a variable.
  const imported = importPolicy("iptables", SCRIPT, { variables: { BANNED: viaNft.banned } });
  assert.deepEqual(imported.errors, []);
  assert.ok(imported.report.filter((l) => l.text !== "").every((l) => l.status === "imported"));
  assert.ok(imported.policy);
  assert.deepEqual(validatePolicy(imported.policy).errors, []);
  const nft = renderNft(imported.policy);
  assert.ok(nft.ok, JSON.stringify(!nft.ok && nft.errors));

  await lab.exec(viaIptables.server, ["iptables-restore"], {
    input: restoreText(SCRIPT, { BANNED: viaIptables.banned }),
  });
  await lab.nft(viaNft.server, ["-f", "-"], nft.text);

  const a = await probeAll(viaIptables);
  const b = await probeAll(viaNft);
  assert.deepEqual(b, a, "same answers from the nftables rendering as from iptables");
  assert.deepEqual(a, {
    "SYN to 22 (accepted; the closed port answers RST)": 3,
    "SYN to 23 (default policy)": 0,
    "SYN+FIN to 22": 0,
    "lone FIN to 22 (conntrack INVALID)": 0,
    "ICMP timestamp request": 0,
    "ICMP echo request": 3,
    "SYN to 22 from the banned source": 0,
    "SYN to 22 from another source": 3,
  });
});
