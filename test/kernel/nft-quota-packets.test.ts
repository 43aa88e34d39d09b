// quota2 --packets and --no-change on nftables, with real packets: the manual's syntax
// imported, rendered and loaded in a namespace; UDP datagrams from the other namespace,
// counted by the rules' own counters. A packet budget of N lets exactly N packets through
// and not the N+1th; `!` matches from the N+1th on; --no-change rules match while the
// budget has a packet left without taking it, and the budget survives an agent-style
// (incremental) re-apply.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type Link } from "../support/netns.ts";
import { importPolicy, validatePolicy } from "../../src/engine/index.ts";
import { compileNft } from "../../src/engine/compile/nft/index.ts";
import { Policy, type PolicyInput } from "../../src/engine/policy/index.ts";
import { nftDriver } from "../../src/engine/driver/index.ts";
import { incrementalPlan } from "../../src/agent/kernel/plan.ts";
import { readPalisade } from "../../src/agent/kernel/read.ts";
import { resetQuotaByName } from "../../src/agent/quota-reset.ts";
import { applyPolicy, ruleCounter } from "../support/nft-lab.ts";

const lab = createLab();
let p: { client: string; server: string; link: Link };
before(async () => {
  p = await lab.pair();
});
after(() => lab.cleanup());

/** Send `count` UDP datagrams to `port` on the server, one at a time. */
async function send(port: number, count: number): Promise<void> {
  await lab.exec(p.client, [
    "python3",
    "-c",
    `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(${count}):\n    s.sendto(b"x", ("${p.link.b.ip4}", ${port}))\n`,
  ]);
}

/**
 * Import iptables lines, each rule counted (`counter: true`) and commented `rule N` (N from 0,
 * the script's order): after the rule that lets IPv6 pass, which an IPv4 input's chain starts with.
 */
function imported(script: string): PolicyInput {
  const r = importPolicy("iptables", script);
  assert.deepEqual(r.errors, []);
  const doc = r.policy as { chains: Record<string, { rules: Record<string, unknown>[] }> };
  const [pass, ...rules] = doc.chains.input!.rules;
  assert.deepEqual(pass?.match, { family: "ipv6" });
  rules.forEach((rule, i) => {
    rule.counter = true;
    rule.comment = `rule ${i}`;
  });
  const v = validatePolicy(doc, { target: "nftables" });
  assert.ok(v.ok, JSON.stringify(v.errors));
  return doc as PolicyInput;
}

const passed = async (rule: number) => (await ruleCounter(lab, p.server, "input", `rule ${rule}`)).packets;

test("--packets: a budget of 5 lets exactly 5 packets through; the 6th and later ones are not", async () => {
  const doc = imported(
    [
      "iptables -A INPUT -p udp --dport 9001 -m quota2 --name pk --quota 5 --packets -j ACCEPT",
      "iptables -A INPUT -p udp --dport 9001 -j DROP",
    ].join("\n"),
  );
  const text = await applyPolicy(lab, p.server, doc);
  assert.match(text, /update @quota_pk_packets \{ meta mark & 0x0 limit rate 1\/week burst 5 packets \}/);
  for (let i = 1; i <= 5; i++) {
    await send(9001, 1);
    assert.equal(await passed(0), i, `packet ${i} passes`);
  }
  await send(9001, 1);
  assert.equal(await passed(0), 5, "the 6th does not");
  assert.equal(await passed(1), 1);
  await send(9001, 20);
  assert.deepEqual([await passed(0), await passed(1)], [5, 21]);
  // The agent's quota reset (palisade quotas reset pk) empties the set: 5 more, not 6.
  await resetQuotaByName("palisade", "pk", nftDriver({ netns: p.server }));
  await send(9001, 6);
  assert.deepEqual([await passed(0), await passed(1)], [10, 22]);
});

test("! --quota N --packets: the first N packets do not match (they take the budget), then every one does", async () => {
  const doc = imported(
    [
      "iptables -A INPUT -p udp --dport 9001 -m quota2 --name pk3 ! --quota 3 --packets -j DROP",
      "iptables -A INPUT -p udp --dport 9001 -j ACCEPT",
    ].join("\n"),
  );
  await applyPolicy(lab, p.server, doc);
  await send(9001, 3);
  assert.deepEqual([await passed(0), await passed(1)], [0, 3]);
  await send(9001, 4);
  assert.deepEqual([await passed(0), await passed(1)], [4, 3]);
});

test("--no-change: matches while a packet is left, takes nothing; the counting rule still lets exactly N through; state survives an incremental re-apply", async () => {
  const script = [
    "iptables -A INPUT -p udp --dport 9002 -m quota2 --name pk2 --quota 4 --packets -j ACCEPT",
    "iptables -A INPUT -p udp --dport 9003 -m quota2 --name pk2 --quota 4 --packets --no-change -j ACCEPT",
    "iptables -A INPUT -p udp --dport 9004 -m quota2 --name pk2 ! --quota 4 --packets --no-change -j ACCEPT",
    "iptables -A INPUT -p udp -j DROP",
  ].join("\n");
  const doc = imported(script);
  const d = nftDriver({ netns: p.server });
  const apply = async (policy: PolicyInput) => {
    const r = compileNft(Policy.parse(policy));
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    await d.apply(incrementalPlan(r.text, await readPalisade(d), r.tables));
  };
  await lab.nft(p.server, ["flush", "ruleset"]);
  await apply(doc);
  // --no-change takes nothing: 10 tests, and the whole budget is still there.
  await send(9003, 10);
  await send(9004, 2);
  assert.deepEqual([await passed(1), await passed(2)], [10, 0]);
  await send(9002, 3);
  assert.equal(await passed(0), 3);
  await send(9003, 1);
  assert.equal(await passed(1), 11, "one packet left: --no-change still matches");
  // Re-applied as the agent does (a rule added at the end): the budget is not reset.
  const more = imported(`${script}\niptables -A INPUT -p tcp --dport 1 -j DROP`);
  await apply(more);
  await send(9002, 1);
  assert.equal(await passed(0), 1, "the 4th packet passes (counters restart with the new rules)");
  await send(9002, 1);
  assert.equal(await passed(0), 1, "the 5th does not");
  await send(9003, 2);
  await send(9004, 2);
  assert.deepEqual([await passed(1), await passed(2)], [0, 2], "spent: --no-change no longer matches, ! does");
  // A reset refills the budget and clears the spent flag.
  await resetQuotaByName("palisade", "pk2", d);
  await send(9003, 1);
  await send(9002, 5);
  assert.deepEqual([await passed(0), await passed(1)], [5, 1]);
});
