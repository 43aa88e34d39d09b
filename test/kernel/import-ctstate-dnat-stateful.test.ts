// `! --ctstate DNAT` with a limit or an nth counter side by side: loaded with iptables-restore
// in one pair of namespaces, imported and rendered for nftables in a second. nft renders the
// negated status as two alternatives (no conntrack entry, or an entry without the bit); each
// would keep its own limit or counter, so both jump to one chain that holds the rule's rest
// once. The client sends 3 UDP datagrams each to 7001 (tracked), 7002 (raw notrack) and 7003
// (DNAT to 7004): 6 are eligible, tracked ones first. A burst of 4 counts 4 (one state per
// alternative: 3 + 3 = 6; the status test alone, as before 8dd886c: 3); every 2nd packet
// counts 3 (two counters: 2 + 2 = 4; the status test alone: 2).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { applyPolicy, ruleCounter } from "../support/nft-lab.ts";
import { CT_NAT_SEND, ctNatSave, variantPairs, xtCounts } from "../support/import-lab.ts";

const lab = createLab();
after(() => lab.cleanup());

const save = (server: string, stateful: string) =>
  ctNatSave(server, [`-A INPUT -p udp -m conntrack ! --ctstate DNAT ${stateful} -j ACCEPT`]);

async function counts(stateful: string): Promise<{ xt: number; nft: number }> {
  const { original: xt, nft: pal } = await variantPairs(lab, ["original", "nft"]);
  await lab.exec(xt.server, ["iptables-restore"], { input: save(xt.link.b.ip4, stateful) });

  const imported = importPolicy("iptables-save", save(pal.link.b.ip4, stateful), { family: "ipv4" });
  assert.deepEqual(imported.errors, []);
  const doc = imported.policy as { chains: Record<string, { rules: { counter?: boolean; match?: object }[] }> };
  const at = doc.chains.input!.rules.findIndex((r) => r.match !== undefined && "ctStatus" in r.match);
  doc.chains.input!.rules[at]!.counter = true;
  const v = validatePolicy(doc, { target: "nftables" });
  assert.ok(v.ok && v.policy, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, pal.server, v.policy);
  const helper = /ct state invalid,untracked jump (ctnat_\S+)/.exec(text)?.[1];
  assert.ok(helper, text);

  for (const p of [xt, pal]) await lab.exec(p.client, ["/usr/bin/python3", "-c", CT_NAT_SEND, p.link.b.ip4]);
  return {
    xt: (await xtCounts(lab, xt.server, (l) => l.includes("-A INPUT ") && l.includes("-j ACCEPT")))[0]!,
    nft: (await ruleCounter(lab, pal.server, helper, `input rule ${at}`)).packets,
  };
}

test("! --ctstate DNAT -m limit --limit-burst 4: 4 of the 6 eligible (tracked and untracked) on both", async () => {
  assert.deepEqual(await counts("-m limit --limit 1/min --limit-burst 4"), { xt: 4, nft: 4 });
});

test("! --ctstate DNAT -m statistic --mode nth --every 2: 3 of the 6 eligible on both", async () => {
  assert.deepEqual(await counts("-m statistic --mode nth --every 2 --packet 0"), { xt: 3, nft: 3 });
});
