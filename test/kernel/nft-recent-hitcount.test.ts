// The hardening seed's SYN-flood rule, `recent --update --seconds 1 --hitcount 60`, side by
// side on real kernels: the seed's own two lines loaded with iptables-restore in one pair
// of namespaces, the same lines imported and rendered by Palisade for nftables in another.
// One source sends 120 SYNs 5 ms apart (0.6 s) to a closed port, so every SYN that is not
// dropped is answered with a RST, which hping3 counts. xt_recent answers 59 (the 60th SYN
// within a second is dropped, and every later one while the source keeps sending); the
// nftables construction must answer exactly as many, where the token bucket it replaced
// answered 98.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { applyPolicy, sleep } from "../support/nft-lab.ts";

const lab = createLab();
type Pair = { client: string; server: string; link: Link };
let pal: Pair;
let seed: Pair;
before(async () => {
  pal = await lab.pair();
  seed = await lab.pair();
});
after(() => lab.cleanup());

const CLOSED = 7777;
const _FLOOD = { count: 120, intervalUs: 5000 };

/** The seed's SYN-flood commands (continuation lines joined), as written in the seed. */
function seedSynFloodLines(): string[] {
  const text = readFileSync(join(import.meta.dirname, "../fixtures/seeds/iptables-hardening-tricks.txt"), "utf8");
  const commands = text
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.trim());
  const lines = commands.filter((l) => l.startsWith("iptables ") && l.includes("--name synflood"));
  assert.equal(lines.length, 2, lines.join("\n"));
  return lines;
}

async function blockedElements(ns: string, set: string): Promise<number> {
  const out = JSON.parse((await lab.nft(ns, ["-j", "list", "set", "inet", "palisade", set])).stdout) as {
    nftables: { set?: { elem?: unknown[] } }[];
  };
  return out.nftables.find((x) => x.set)?.set?.elem?.length ?? 0;
}

let policyText = "";

/** The same SYNs to the closed port from each pair's client: how many each side answered (all were sent). */
async function synsOnBoth(
  xtPair: Pair,
  nftPair: Pair,
  opts: { count: number; intervalUs: number },
): Promise<{ xt: number; nft: number }> {
  const xt = await lab.tcpFlags(xtPair.client, xtPair.link.b.ip4, CLOSED, "S", opts);
  const nft = await lab.tcpFlags(nftPair.client, nftPair.link.b.ip4, CLOSED, "S", opts);
  assert.equal(xt.sent, opts.count);
  assert.equal(nft.sent, opts.count);
  return { xt: xt.received, nft: nft.received };
}

/** Fresh state on both sides (xt_recent list cleared, nft sets emptied by a full replace), then one flood each. */
async function flood(count: number, text = policyText): Promise<{ xt: number; nft: number }> {
  await lab.exec(seed.server, ["sh", "-c", "echo / > /proc/net/xt_recent/synflood"]);
  await lab.nft(pal.server, ["-f", "-"], text);
  return synsOnBoth(seed, pal, { count, intervalUs: 5000 });
}

/**
 * Two fresh pairs: iptables-save `lines` (the filter table's) loaded with iptables-restore in
 * one, imported and rendered by Palisade for nftables in the other.
 */
async function sideBySide(lines: string[]) {
  const xtPair = await lab.pair();
  const nftPair = await lab.pair();
  const save = ["*filter", ...lines, "COMMIT", ""].join("\n");
  await lab.exec(xtPair.server, ["iptables-restore"], { input: save });
  const imported = importPolicy("iptables-save", save);
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, nftPair.server, v.policy as never);
  return {
    text,
    nftServer: nftPair.server,
    syns: (opts: { count: number; intervalUs: number }) => synsOnBoth(xtPair, nftPair, opts),
  };
}

test("the seed's lines load with iptables-restore; imported, they render for nftables without a token bucket", async () => {
  const lines = seedSynFloodLines();
  const restore = ["*filter", ...lines.map((l) => l.replace(/^iptables /, "")), "COMMIT", ""].join("\n");
  await lab.exec(seed.server, ["iptables-restore", "--noflush"], { input: restore });
  const imported = importPolicy("iptables", lines.join("\n"));
  assert.deepEqual(imported.errors, []);
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  policyText = await applyPolicy(lab, pal.server, v.policy as never);
  assert.doesNotMatch(policyText, /limit rate over/);
});

test("120 SYNs in 0.6 s from one source: nftables answers exactly as many as xt_recent (59)", async () => {
  const r = await flood(120);
  assert.equal(r.xt, 59, "xt_recent: the 60th SYN within one second is dropped, and all after it");
  assert.equal(r.nft, r.xt);
  const saved = (await lab.exec(seed.server, ["iptables-save", "-c"])).stdout;
  assert.match(saved, /\[61:\d+\] -A INPUT .*--hitcount 60 .*-j DROP/);
});

test("300 SYNs in 1.5 s: a source that keeps flooding stays dropped past the first second, on both (59)", async () => {
  const r = await flood(300);
  assert.equal(r.xt, 59);
  assert.equal(r.nft, r.xt);
});

test("the same lines kept as plain rules (behind another rule, so not lifted into the preset): 59 as well", async () => {
  const lines = ["iptables -A INPUT -p udp --dport 9 -j ACCEPT", ...seedSynFloodLines()];
  const imported = importPolicy("iptables", lines.join("\n"));
  assert.deepEqual(imported.policy?.protections, {});
  const v = validatePolicy(imported.policy, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, pal.server, v.policy as never);
  assert.match(text, /jump recent_synflood_hc60_1s_v4 /);
  const r = await flood(120, text);
  assert.equal(r.xt, 59);
  assert.equal(r.nft, r.xt);
});

test("after a second of silence the block ends and the next burst gets 59 again", async () => {
  const blocked = [...policyText.matchAll(/ (recent_\w+_hc60_1s_v4_blocked) /g)][0]?.[1];
  assert.ok(blocked, policyText);
  await lab.nft(pal.server, ["-f", "-"], policyText);
  await lab.tcpFlags(pal.client, pal.link.b.ip4, CLOSED, "S", { count: 100, intervalUs: 2000 });
  // Wait for the state, bounded: the blocked set empties one second after the last SYN.
  for (let i = 0; i < 40 && (await blockedElements(pal.server, blocked)) > 0; i++) await sleep(100);
  assert.equal(await blockedElements(pal.server, blocked), 0, "the block ended after a second of silence");
  const again = await lab.tcpFlags(pal.client, pal.link.b.ip4, CLOSED, "S", { count: 120, intervalUs: 5000 });
  assert.equal(again.received, 59);
});

// hping3 has no IPv6: scapy sends the SYNs (distinct source ports, so each is a new connection).
const SCAPY_SYN6 = `
import sys
from scapy.all import IPv6, TCP, sr, conf
conf.verb = 0
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ans, unans = sr([IPv6(dst=dst)/TCP(sport=20000 + i, dport=port, flags="S", seq=i) for i in range(n)], timeout=1, retry=0, inter=0.005)
print(sum(1 for s, r in ans if r.haslayer(TCP) and r[TCP].flags & 0x04))
`;

test("IPv6: the same construction counts per IPv6 source (hitcount 10: 9 of 30 SYNs answered)", async () => {
  await applyPolicy(lab, pal.server, {
    // The counting idiom (nftables refuses a hit count without it): the list's set rule, then the count.
    counters: { syn6seen: {} },
    chains: {
      input: {
        hook: "input",
        rules: [
          {
            comment: "syn6 seen",
            match: { protocol: "tcp", ctState: ["new"], recent: { name: "syn6", mode: "set" } },
            action: { type: "counter", name: "syn6seen" },
          },
          {
            comment: "syn6",
            match: {
              protocol: "tcp",
              ctState: ["new"],
              recent: { name: "syn6", mode: "update", seconds: 1, hitcount: 10 },
            },
            action: "drop",
            counter: true,
          },
        ],
      },
    },
  } as never);
  const r = await lab.exec(pal.client, ["/usr/bin/python3", "-c", SCAPY_SYN6, pal.link.b.ip6, String(CLOSED), "30"], {
    timeoutMs: 30_000,
  });
  assert.equal(Number(r.stdout.trim().split("\n").pop()), 9, r.stdout + r.stderr);
});

test("check-then-stamp (Freifunk's sshd list: --update --hitcount 3 -j DROP, then --set): 3 of 12 SYNs answered on both", async () => {
  const { text, syns } = await sideBySide([
    `-A INPUT -p tcp -m recent --update --seconds 60 --hitcount 3 --name sshd --rsource -m tcp --dport ${CLOSED} -j DROP`,
    `-A INPUT -p tcp -m recent --set --name sshd --rsource -m tcp --dport ${CLOSED}`,
  ]);
  // This packet and 3 earlier ones: a counting chain of 4, without the list-membership test.
  assert.match(text, /jump recent_sshd_hc4_60s_v4/);
  assert.doesNotMatch(text, /ip saddr @recent_sshd_v4 /);
  const r = await syns({ count: 12, intervalUs: 5000 });
  assert.equal(r.xt, 3, "xt_recent: the 4th SYN has 3 earlier stamps within 60 s and is dropped, and all after it");
  assert.equal(r.nft, r.xt);
});

test("a list checked twice, counted where it is stamped (hit count 3 in 2 s with DROP, then 200 in 600 s): the stamps the first rule drops count for the second, on both", async () => {
  // semantics-home-router's forward-protect list, scaled down: xt_recent counts every stamp
  // of the list, also those of packets the first check drops, so the second check (a count
  // above the old bound of 128) matches a source that sent 200 within its window even though
  // only a few of them got past the first rule.
  const { text, nftServer, syns } = await sideBySide([
    `-A INPUT -p tcp -m tcp --dport ${CLOSED} -m recent --set --name fp --rsource`,
    `-A INPUT -p tcp -m tcp --dport ${CLOSED} -m recent --rcheck --seconds 2 --hitcount 3 --name fp --rsource -j DROP`,
    `-A INPUT -p tcp -m tcp --dport ${CLOSED} -m recent --rcheck --seconds 600 --hitcount 200 --name fp --rsource -j DROP`,
  ]);
  assert.match(text, /update @recent_fp_v4 \{ ip saddr \} jump recent_fp_stamp_v4/);
  const short = "recent_fp_hc3_2s_v4_blocked";
  // A burst of 198 SYNs (0.2 s): the first 2 are answered, the first check drops the rest.
  const burst = await syns({ count: 198, intervalUs: 1000 });
  assert.equal(burst.xt, 2, "xt_recent: the 3rd SYN within 2 s is dropped, and all after it");
  assert.equal(burst.nft, burst.xt);
  // The first check's block ends after 2 s of silence (nftables; xt_recent's burst ended earlier).
  for (let i = 0; i < 60 && (await blockedElements(nftServer, short)) > 0; i++) await sleep(100);
  assert.equal(await blockedElements(nftServer, short), 0, "the 2 s block ended");
  await sleep(300);
  // Two more SYNs: the first is the 199th stamp (answered), the second the 200th, which the
  // second check drops. Counted at that check, nftables would have seen 4 and answered both.
  const probe = await syns({ count: 2, intervalUs: 100_000 });
  assert.equal(probe.xt, 1, "xt_recent: 200 stamps within 600 s, the 200th SYN is dropped");
  assert.equal(probe.nft, probe.xt);
});

test("a list only checked, no rule sets it (fivem-game-server: --rcheck --hitcount 4): 12 of 12 SYNs answered on both", async () => {
  // Nothing stamps the list, so xt_recent's list stays empty and the check never matches;
  // nftables tests only the blocked set, which nothing fills, and counts no packet of its own.
  const { text, syns } = await sideBySide([
    `-A INPUT -p tcp -m tcp --dport ${CLOSED} -m recent --rcheck --seconds 30 --hitcount 4 --name mil4 --rsource -j DROP`,
  ]);
  assert.match(text, /ip saddr @recent_mil4_v4 ip saddr @recent_mil4_hc4_30s_v4_blocked /);
  assert.doesNotMatch(text, /jump recent_mil4_hc4_30s_v4 /);
  const r = await syns({ count: 12, intervalUs: 5000 });
  assert.equal(r.xt, 12, "xt_recent: an empty list matches no packet");
  assert.equal(r.nft, r.xt);
});
