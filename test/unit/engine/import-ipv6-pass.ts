// An IPv4-only input (iptables lines or an iptables-save dump): each base chain that could
// change IPv6 starts with a rule that accepts IPv6, which iptables never saw.
import assert from "node:assert/strict";
import type { Rule } from "../../../src/engine/policy/index.ts";

export const IPV6_PASS: Rule = {
  comment: "IPv6 passes: the input's iptables rules are for IPv4 only",
  match: { family: "ipv6" },
  action: "accept",
};

/** The chain's rules after its IPv6 pass rule (asserted to be the first). */
export function ipv4Rules(rules: readonly Rule[] | undefined): Rule[] {
  assert.ok(rules, "the chain exists");
  assert.deepEqual(rules[0], IPV6_PASS, "the first rule lets IPv6 pass");
  return rules.slice(1);
}
