// An iptables-save dump that matches ipsets, proved with real packets. Three servers: the
// original (ipset + iptables-restore), Palisade's nftables rendering of the import, and its
// iptables rendering (ipset restore + iptables-restore). Two clients: a member of the sets
// and a non-member. The dump alone is refused, as iptables-restore refuses it without the
// sets (a match of a set the input does not hold: import_ipset_contents_missing). Then the
// sets empty, as `ipset create` before the restore leaves them (their create lines), then the
// sets' members arrive (`ipset save` text, given to the import as `palisade import --ipset` does).
// Pings test `--match-set friends src`, TCP connections `! --match-set blocked src`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { importPolicy } from "../../src/engine/import/index.ts";
import { importRendered, memberLab, VARIANTS, type MemberLab } from "../support/import-lab.ts";

const PORT = 9002;
const DUMP = `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -m set --match-set friends src -j ACCEPT
-A INPUT -p tcp -m tcp --dport ${PORT} -m set ! --match-set blocked src -j ACCEPT
COMMIT
`;

const lab = createLab();
let l: MemberLab;

before(async () => {
  l = await memberLab(lab, [PORT]);
});
after(() => lab.cleanup());

/** `ipset save` of the original host: friends holds the member (a /24 and plain addresses), blocked the non-member. */
function ipsetSave(): string {
  const m = Object.values(l.links).map((link) => link.member.a.ip4);
  const o = Object.values(l.links).map((link) => link.other.a.ip4);
  return [
    "create friends hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x2d1c57a3",
    `add friends ${m[0]!.replace(/\.1$/, ".0")}/24`,
    ...m.slice(1).map((a) => `add friends ${a}`),
    "create blocked hash:ip family inet hashsize 1024 maxelem 65536",
    ...o.map((a) => `add blocked ${a}`),
    "",
  ].join("\n");
}

/** Ping and TCP from the member and the non-member to each server. */
async function probe() {
  const out: Record<string, string> = {};
  for (const k of VARIANTS) {
    const row: string[] = [];
    for (const [who, ns, link] of [
      ["member", l.member, l.links[k].member],
      ["other", l.other, l.links[k].other],
    ] as const) {
      const ping = await lab.ping(ns, link.b.ip4, { count: 2, waitS: 0.5 });
      const tcp = await lab.tcpConnect(ns, link.b.ip4, PORT);
      row.push(`${who}: ping ${ping.received > 0 ? "yes" : "no"}, tcp ${tcp ? "yes" : "no"}`);
    }
    out[k] = row.join("; ");
  }
  return out;
}

test("a dump's -m set rules: empty sets match nothing, the sets from `ipset save` match members only, in iptables and both renderings", async () => {
  // The dump alone: each match of a set the input does not hold is refused, the positive one
  // (empty, it would accept no friend) and the negated one (it would accept every connection),
  // as iptables-restore refuses both rules while the sets do not exist.
  const alone = importPolicy("iptables-save", DUMP);
  assert.deepEqual(
    alone.errors.map((e) => `${e.code} ${e.path}`),
    ["import_ipset_contents_missing /source/line/6", "import_ipset_contents_missing /source/line/7"],
  );
  const refused = await lab.exec(l.servers.original, ["iptables-restore"], { input: DUMP, allowFailure: true });
  assert.notEqual(refused.code, 0, "iptables-restore loads the dump without its sets");
  assert.match(refused.stderr, /friends/);
  // The sets exist (ipset create), empty, as iptables-restore needs them: their create lines.
  const bare = importRendered(DUMP, "create friends hash:net family inet\ncreate blocked hash:ip family inet\n");
  assert.deepEqual(
    bare.r.warnings.map((w) => `${w.code} ${w.path}`),
    ["ipv4_only_input /chains/input/rules/0"],
  );
  await lab.exec(l.servers.original, ["ipset", "restore"], {
    input: "create friends hash:net family inet\ncreate blocked hash:ip family inet\n",
  });
  await lab.exec(l.servers.original, ["iptables-restore"], { input: DUMP });
  await lab.nft(l.servers.nft, ["-f", "-"], bare.nft);
  await lab.exec(l.servers.iptables, ["ipset", "restore", "-exist"], { input: bare.ipt.ipsets });
  await lab.exec(l.servers.iptables, ["iptables-restore", "--noflush"], { input: bare.ipt.text });
  const empty = "member: ping no, tcp yes; other: ping no, tcp yes";
  assert.deepEqual(await probe(), { original: empty, nft: empty, iptables: empty });

  // The contents arrive: the original host's `ipset save`, given to the import.
  const save = ipsetSave();
  const full = importRendered(DUMP, save);
  assert.deepEqual(full.r.warnings, bare.r.warnings);
  assert.equal(full.ipt.text, bare.ipt.text, "the rules are the same; only the sets changed");
  await lab.exec(l.servers.original, ["ipset", "restore", "-exist"], { input: save });
  await lab.nft(l.servers.nft, ["flush", "ruleset"]);
  await lab.nft(l.servers.nft, ["-f", "-"], full.nft);
  await lab.exec(l.servers.iptables, ["ipset", "restore", "-exist"], { input: full.ipt.ipsets });
  const filled = "member: ping yes, tcp yes; other: ping no, tcp no";
  assert.deepEqual(await probe(), { original: filled, nft: filled, iptables: filled });
});
