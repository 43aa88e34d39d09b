// Operator conditions on nftables: the rule is a lookup in a per-condition set the agent
// fills (engine/conditions), negation is `!=`, the set is declared once and a policy set of
// the same name is refused; the agent's sync text is idempotent element statements only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { conditions } from "../../../src/engine/index.ts";

const rule = (condition: unknown, dport: number) => ({
  match: { protocol: "tcp", dport, xt: { condition } },
  action: "accept",
});
const doc = (rs: unknown[], extra: object = {}) =>
  ({ chains: { input: { hook: "input", rules: rs } }, ...extra }) as PolicyInput;

test("condition NAME -> meta nfproto @condition_NAME; ! NAME -> !=; one set per name", () => {
  const r = renderNft(Policy.parse(doc([rule("web", 80), rule({ not: "web" }, 81), rule("Maint_2", 82)])));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const lines = r.text.split("\n");
  assert.deepEqual(
    lines.filter((l) => l.startsWith("add set")),
    [
      "add set inet palisade condition_web { type nf_proto ; flags dynamic ; }",
      "add set inet palisade condition_Maint_2 { type nf_proto ; flags dynamic ; }",
    ],
  );
  assert.ok(lines.some((l) => l.includes("tcp dport 80 meta nfproto @condition_web accept")));
  assert.ok(lines.some((l) => l.includes("tcp dport 81 meta nfproto != @condition_web accept")));
  assert.ok(lines.some((l) => l.includes("tcp dport 82 meta nfproto @condition_Maint_2 accept")));
});

test("a policy set named like a condition's set is refused (nft_name_clash), not merged", () => {
  const r = renderNft(
    Policy.parse(doc([rule("web", 80)], { sets: { condition_web: { type: "ipv4_addr", elements: ["192.0.2.1"] } } })),
  );
  assert.ok(!r.ok);
  assert.ok(
    r.errors.some((e) => e.code === "nft_name_clash" && /condition_web/.test(e.message)),
    JSON.stringify(r.errors),
  );
});

test("condition names: xt_condition's rule (1-27 of [A-Za-z0-9_]) in the policy schema", () => {
  for (const bad of ["", "a-b", "x".repeat(28), "web on", "../x"])
    assert.ok(!Policy.safeParse(doc([rule(bad, 80)])).success, bad);
  assert.ok(Policy.safeParse(doc([rule("x".repeat(27), 80)])).success);
});

test("sync text: on = add both families (no-op when present), off = flush; other sets untouched", () => {
  const text = conditions.conditionSyncText(
    "inet",
    "palisade",
    ["condition_web", "condition_maint", "recent_x_v4", "condition_bad-name"],
    new Set(["web"]),
  );
  assert.equal(
    text,
    "flush set inet palisade condition_maint\nadd element inet palisade condition_web { ipv4, ipv6 }\n",
  );
  assert.equal(conditions.conditionSyncText("inet", "palisade", ["recent_x_v4"], new Set()), "");
  assert.equal(conditions.conditionOfSet("condition_web"), "web");
  assert.equal(conditions.conditionOfSet("conditions"), undefined);
});
