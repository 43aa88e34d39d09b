// ctStatus { not: [dnat] } (iptables' ! --ctstate DNAT) is two alternatives on nftables: no
// conntrack entry, or an entry without the bit (match-extra.ts negatedNatStatus). A limit or an
// nth counter in each would keep state twice; both alternatives jump to one chain that holds
// the rest of the rule once. Kernel test: import-ctstate-dnat-stateful.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";

const doc = (match: Record<string, unknown>, action: unknown = "accept") =>
  Policy.parse({ chains: { input: { table: "filter", hook: "input", rules: [{ match, action, counter: true }] } } });

const lines = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l));

test("! --ctstate DNAT with a limit or an nth counter: both alternatives jump to one chain holding the state once", () => {
  for (const [extra, stateful] of [
    [{ limit: { rate: "1/second" } }, "limit rate 1/second"],
    [{ statistic: { mode: "nth", every: 2 } }, "numgen inc mod 2"],
  ] as const) {
    const r = renderNft(doc({ protocol: "udp", ctStatus: { not: ["dnat"] }, ...extra }));
    assert.ok(r.ok, JSON.stringify(r.ok ? [] : r.errors));
    assert.deepEqual(
      lines(r.text, /^add rule inet palisade input .*"input rule 0"$/).map((l) =>
        l.replace(/^add rule inet palisade input /, ""),
      ),
      [
        'ct state invalid,untracked jump ctnat_input_0 comment "input rule 0"',
        'ct status & (dnat) == 0 jump ctnat_input_0 comment "input rule 0"',
      ],
    );
    const inner = lines(r.text, /^add rule inet palisade ctnat_input_0 /);
    assert.equal(inner.length, 1, r.text);
    assert.ok(inner[0]!.includes(stateful) && / counter accept comment "input rule 0"$/.test(inner[0]!), inner[0]);
    assert.equal(r.text.split(stateful).length - 1, 1, "the state is in one rule");
  }
});

test("! --ctstate DNAT with a limit and return or goto: refused, with advice about the ct status split", () => {
  const r = renderNft(doc({ ctStatus: { not: ["dnat"] }, limit: { rate: "1/second" } }, "return"));
  assert.ok(!r.ok);
  const e = r.errors.find((x) => x.code === "nft_stateful_alternatives")!;
  assert.match(e.message, /conntrack entry/);
  assert.doesNotMatch(e.message, /addresses into one set/);
});

test("the helper chain is named by the rule's chain and index, also for chains named rules or chains", () => {
  const rule = { match: { ctStatus: { not: ["dnat"] }, limit: { rate: "1/second" } }, action: "accept" };
  const r = renderNft(
    Policy.parse({
      chains: {
        input: { table: "filter", hook: "input", rules: [{ action: { type: "jump", chain: "rules" } }] },
        rules: { table: "filter", rules: [rule] },
        chains: { table: "filter", rules: [rule] },
      },
    }),
  );
  assert.ok(r.ok, JSON.stringify(r.ok ? [] : r.errors));
  assert.equal(lines(r.text, /^add chain inet palisade ctnat_rules_0 /).length, 1, r.text);
  assert.equal(lines(r.text, /^add chain inet palisade ctnat_chains_0 /).length, 1, r.text);
});
