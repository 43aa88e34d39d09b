// `! --ctstate RELATED,ESTABLISHED,DNAT` (kubelet's KUBE-FIREWALL form) side by side: a packet
// matches when it has none of those: a new connection without destination NAT, and a packet
// without a conntrack entry (untracked here), which has no NAT bit. Loaded with iptables-restore
// in one pair of namespaces, imported (ctState not [related, established] and ctStatus not
// [dnat]) and rendered for nftables in a second, rendered back by Palisade's iptables compiler
// in a third. The client sends 3 UDP datagrams to each of 7001 (tracked, no NAT), 7002 (raw
// notrack) and 7003 (DNAT to 7004 on the server): the rule counts 6 on all three. nft's
// `ct status` alone stops at an untracked packet, so before the rendering's second rule
// (`ct state invalid,untracked`) it counted 3.
// Positive, `--ctstate NEW,DNAT` (firewalld's RELATED,ESTABLISHED,DNAT form) is NEW or DNAT:
// the import splits it into NEW, and DNAT without NEW, so the DNAT'd datagrams (NEW as well) are
// counted once by the non-terminating MARK: 6 of 9 again (7001 and 7003).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { renderIptables } from "../../src/engine/compile/iptables/index.ts";
import { applyPolicy, ruleCounter } from "../support/nft-lab.ts";
import { CT_NAT_SEND, ctNatSave, variantPairs, xtCounts } from "../support/import-lab.ts";

const lab = createLab();
after(() => lab.cleanup());

const NEG = "-A INPUT -p udp -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP";
const POS = "-A INPUT -p udp -m conntrack --ctstate NEW,DNAT -j MARK --set-xmark 0x1/0xffffffff";

const save = (server: string, rule: string) => ctNatSave(server, [rule]);

/** Packets counted by the rule in iptables-save -c of `chain` (the xt reference, Palisade's iptables text). */
async function xtCount(ns: string, chain: string): Promise<number> {
  // The rule's lines (the import makes two of the positive form); the failsafe accepts, so it is not counted.
  const counts = await xtCounts(lab, ns, (l) => l.includes(`-A ${chain} `) && /-j (DROP|MARK)/.test(l));
  return counts.reduce((a, b) => a + b, 0);
}

for (const [name, rule, action, extra] of [
  [
    "! --ctstate RELATED,ESTABLISHED,DNAT: new without NAT and untracked match, DNAT'd does not",
    NEG,
    "drop",
    /ct state invalid,untracked/,
  ],
  [
    "--ctstate NEW,DNAT split in two disjoint rules: new without NAT and DNAT'd match once each",
    POS,
    "mark",
    /ct status & \(dnat\) != 0/,
  ],
] as const)
  test(`${name}: 6 of 9 on all three`, async () => {
    const { original: xt, nft: pal, iptables: palIpt } = await variantPairs(lab);
    await lab.exec(xt.server, ["iptables-restore"], { input: save(xt.link.b.ip4, rule) });

    const imported = importPolicy("iptables-save", save(pal.link.b.ip4, rule), { family: "ipv4" });
    assert.deepEqual(imported.errors, []);
    const doc = imported.policy as { chains: Record<string, { rules: { counter?: boolean; action: unknown }[] }> };
    const at: number[] = [];
    doc.chains.input!.rules.forEach((r, i) => {
      const t = typeof r.action === "string" ? r.action : (r.action as { type: string }).type;
      if (t === action) {
        r.counter = true;
        at.push(i);
      }
    });
    const v = validatePolicy(doc, { target: "nftables" });
    assert.ok(v.ok, JSON.stringify(v.errors));
    const rendered = await applyPolicy(lab, pal.server, v.policy as never);
    assert.match(rendered, extra);

    const iptDoc = importPolicy("iptables-save", save(palIpt.link.b.ip4, rule), { family: "ipv4" }).policy!;
    const ipt = renderIptables(iptDoc, { failsafe: { apiAddresses: ["10.250.0.1"], apiPort: 8443 } });
    assert.ok(ipt.ok, JSON.stringify(ipt.ok ? [] : ipt.errors));
    await lab.exec(palIpt.server, ["iptables-restore", "--noflush"], { input: ipt.text, timeoutMs: 20_000 });

    for (const p of [xt, pal, palIpt]) await lab.exec(p.client, ["/usr/bin/python3", "-c", CT_NAT_SEND, p.link.b.ip4]);
    let palCount = 0;
    for (const i of at) palCount += (await ruleCounter(lab, pal.server, "input", `input rule ${i}`)).packets;
    const counts = {
      xt: await xtCount(xt.server, "INPUT"),
      pal: palCount,
      palIpt: await xtCount(palIpt.server, "PAL-input"),
    };
    assert.deepEqual(counts, { xt: 6, pal: 6, palIpt: 6 });
  });
