// The serializer's injection-proofing, proven by the real nft parser: hostile
// comments and log prefixes render to text that `nft -c` accepts, and once applied
// the kernel holds exactly the rules intended, with the (sanitized) text intact.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createLab } from "../support/netns.ts";
import { apply, check, listRuleset, NftError } from "../../src/engine/driver/index.ts";
import {
  logPrefix,
  NftModelError,
  replaceTables,
  sanitizeText,
  serialize,
  Transaction,
  type Rule,
  type TableDefinition,
} from "../../src/engine/nft/index.ts";

const lab = createLab();
let ns = "";
const opts = () => ({ netns: ns });
const T = { family: "inet" as const, table: "palisade" };

const HOSTILE = [
  '" ; drop; "',
  '"\nadd table ip evil\n"',
  "x\n}\nflush ruleset\n",
  "# not a comment",
  "$evil and ${evil}",
  "} } table inet other { chain c { type filter hook input priority 0; policy drop; } }",
  "back\\slash\\",
  "tab\tand\rreturn\u0000nul",
  "ünïcödé ✓",
];

function table(rules: Rule[]): TableDefinition {
  return {
    table: { kind: "table", family: "inet", name: "palisade" },
    chains: [{ kind: "chain", ...T, name: "input", type: "filter", hook: "input", priority: 0, policy: "accept" }],
    rules,
  };
}

before(async () => {
  ns = await lab.addNamespace();
});
after(() => lab.cleanup());

test("hostile comments and log prefixes stay inside their tokens", async () => {
  const rules: Rule[] = HOSTILE.map((h, i) => ({
    kind: "rule",
    ...T,
    chain: "input",
    body: `tcp dport ${1000 + i} log prefix ${logPrefix(h)} accept`,
    comment: h,
  }));
  const tx = replaceTables([table(rules)]);
  await check(tx, opts());
  await apply(tx, opts());
  const st = await listRuleset(opts());
  assert.deepEqual(st.tables, [{ family: "inet", name: "palisade" }], "no other table was created");
  assert.deepEqual(
    st.chains.map((c) => [c.name, c.policy]),
    [["input", "accept"]],
  );
  assert.equal(st.rules.length, HOSTILE.length, "exactly the rules intended");
  st.rules.forEach((r, i) => {
    assert.equal(r.comment, sanitizeText(HOSTILE[i]!, "comment"));
    const log = (r.expr as Record<string, unknown>[]).find((x) => "log" in x) as
      | { log: { prefix: string } }
      | undefined;
    assert.equal(log?.log.prefix, sanitizeText(HOSTILE[i]!, "log prefix"));
    assert.ok(
      (r.expr as Record<string, unknown>[]).some((x) => "accept" in x),
      "the verdict is still accept",
    );
  });
});

test("property: random comments render to text nft accepts, one rule each", async () => {
  const samples = fc.sample(fc.string({ unit: "binary", minLength: 1, maxLength: 60 }), { numRuns: 60, seed: 42 });
  const rules: Rule[] = [];
  const expected: string[] = [];
  for (const s of samples) {
    try {
      serialize(new Transaction().add({ kind: "rule", ...T, chain: "input", body: "counter", comment: s }));
    } catch (e) {
      assert.ok(e instanceof NftModelError);
      continue;
    }
    rules.push({
      kind: "rule",
      ...T,
      chain: "input",
      body: `meta mark 0x${rules.length.toString(16)} counter`,
      comment: s,
    });
    expected.push(sanitizeText(s, "comment"));
  }
  await apply(replaceTables([table(rules)]), opts());
  const st = await listRuleset(opts());
  assert.equal(st.tables.length, 1);
  assert.deepEqual(
    st.rules.map((r) => r.comment),
    expected,
  );
});

test("text with a foreign statement smuggled after a comment is refused by the driver", async () => {
  const text = 'add rule inet palisade input counter comment "a"\nadd table ip evil\n';
  await assert.rejects(apply(text, opts()), (e: unknown) => e instanceof NftError && e.code === "foreign_table");
  const st = await listRuleset(opts());
  assert.deepEqual(
    st.tables.map((t) => t.name),
    ["palisade"],
  );
});
