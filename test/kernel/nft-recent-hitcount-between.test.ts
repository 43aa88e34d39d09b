// Two --update rules of one counter with a rule between them that stops some of the
// counted packets (compile/hitcount.ts countedBeforeRules; docs/engine.md, recent hitcount):
// --set; --update --hitcount 3 -j NFLOG; -m length --length 200:65535 -j RETURN; the same
// --update -j DROP. The second check only tests what the first counted, so the RETURN between
// them hides no stamp. Loaded with iptables-restore in one namespace and as Palisade's
// nftables rendering in another; one source sends 8 single echo requests, alternately of 84
// and 328 bytes (the large ones return before the DROP rule), within the 60 s window.
// xt_recent: the 3rd packet finds 3 stamps and matches (stamping again), so the log rule
// matches from the 3rd packet (6), the DROP rule the small ones from then on (3rd, 5th, 7th).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createLab } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { applyPolicy, ruleCounter } from "../support/nft-lab.ts";

const lab = createLab();
after(() => lab.cleanup());

const CHECK = "-m recent --update --seconds 60 --hitcount 3 --name F --rsource";
const LINES = [
  ":INPUT ACCEPT [0:0]",
  ":FLOOD - [0:0]",
  "-A INPUT -p icmp -m icmp --icmp-type 8 -j FLOOD",
  "-A FLOOD -m recent --set --name F --rsource",
  `-A FLOOD ${CHECK} -j NFLOG --nflog-group 0`,
  "-A FLOOD -m length --length 200:65535 -j RETURN",
  `-A FLOOD ${CHECK} -j DROP`,
];

test("a RETURN between two --update rules of one counter: logged 6, dropped 3, answered 5 on both", async () => {
  const save = ["*filter", ...LINES, "COMMIT", ""].join("\n");
  const xt = await lab.pair();
  const pal = await lab.pair();
  await lab.exec(xt.server, ["iptables-restore"], { input: save });
  const imported = importPolicy("iptables-save", save, { family: "ipv4" });
  assert.deepEqual(imported.errors, []);
  const doc = imported.policy as { chains: Record<string, { rules: { counter?: boolean }[] }> };
  doc.chains.FLOOD!.rules[1]!.counter = true;
  doc.chains.FLOOD!.rules[3]!.counter = true;
  const v = validatePolicy(doc, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  const text = await applyPolicy(lab, pal.server, v.policy as never);
  assert.equal((text.match(/jump recent_F_hc3_60s_v4/g) ?? []).length, 1, text);
  const answered = { xt: 0, pal: 0 };
  for (let i = 0; i < 8; i++)
    for (const [k, p] of [
      ["xt", xt],
      ["pal", pal],
    ] as const) {
      const r = await lab.ping(p.client, p.link.b.ip4, { count: 1, size: i % 2 === 0 ? 56 : 300, waitS: 0.2 });
      assert.equal(r.sent, 1);
      answered[k] += r.received;
    }
  const saved = (await lab.exec(xt.server, ["iptables-save", "-c"])).stdout;
  const count = (re: RegExp) => Number(/^\[(\d+):/.exec(saved.split("\n").find((l) => re.test(l))!)![1]);
  const xtCounts = {
    logged: count(/-A FLOOD .*-j NFLOG/),
    dropped: count(/-A FLOOD .*-j DROP/),
    answered: answered.xt,
  };
  const palCounts = {
    logged: (await ruleCounter(lab, pal.server, "FLOOD", "FLOOD rule 1")).packets,
    dropped: (await ruleCounter(lab, pal.server, "FLOOD", "FLOOD rule 3")).packets,
    answered: answered.pal,
  };
  assert.deepEqual(xtCounts, { logged: 6, dropped: 3, answered: 5 });
  assert.deepEqual(palCounts, xtCounts);
});
