// The forward presets' fast path (src/engine/compile/nft/forward-fast-path.ts) is made only
// where it is exact, and conntrack state lists render in nft's flag form unless negated.
// The packets' verdicts are proven in test/kernel/nft-forward-presets.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";

const forwardRules = (doc: PolicyInput, chain = "forward") => {
  const r = renderNft(Policy.parse(doc));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.text
    .split("\n")
    .filter((l) => l.startsWith(`add rule inet palisade ${chain} `))
    .map((l) => l.slice(`add rule inet palisade ${chain} `.length).replace(/ comment ".*"$/, ""));
};
const protections = { bogusPackets: {}, portScanTrap: { ports: [139] } };
type RuleInput = NonNullable<NonNullable<PolicyInput["chains"]>[string]["rules"]>[number];
const replies: RuleInput = { comment: "replies", match: { ctState: ["established", "related"] }, action: "accept" };
const ssh: RuleInput = { match: { protocol: "tcp", dport: 22 }, action: "accept" };
const FAST = [
  "meta l4proto != tcp ct state established ip saddr != @recent_protect_portscan_v4 accept",
  "meta l4proto != tcp ct state established ip6 saddr != @recent_protect_portscan_v6 accept",
  "tcp dport != 139 ct state established ip saddr != @recent_protect_portscan_v4 accept",
  "tcp dport != 139 ct state established ip6 saddr != @recent_protect_portscan_v6 accept",
];

test("the rule after the jump accepts ESTABLISHED: skip + ban check as accepts before the jump", () => {
  const rules = forwardRules({
    protections,
    chains: { forward: { hook: "forward", policy: "drop", rules: [replies, ssh] } },
  });
  assert.deepEqual(rules, [
    ...FAST,
    "jump protect_forward",
    "ct state established,related accept",
    "tcp dport 22 accept",
  ]);
});

test("no portScanTrap in forward: the skip alone is the fast path", () => {
  const rules = forwardRules({
    protections: { bogusPackets: {} },
    chains: { forward: { hook: "forward", policy: "drop", rules: [replies] } },
  });
  assert.deepEqual(rules, [
    "ct state established accept",
    "jump protect_forward",
    "ct state established,related accept",
  ]);
});

test("no fast path where it would not be exact", () => {
  const cases: Record<string, PolicyInput["chains"]> = {
    "the next rule counts": {
      forward: { hook: "forward", policy: "drop", rules: [{ ...replies, counter: true }, ssh] },
    },
    "the next rule logs": {
      forward: { hook: "forward", policy: "drop", rules: [{ ...replies, action: { type: "log", prefix: "r" } }, ssh] },
    },
    "the next rule accepts only NEW": {
      forward: { hook: "forward", policy: "drop", rules: [{ ...replies, match: { ctState: ["new"] } }] },
    },
    "the next rule matches more than the state": {
      forward: {
        hook: "forward",
        policy: "drop",
        rules: [{ ...replies, match: { ctState: ["established"], protocol: "udp" } }],
      },
    },
    "the next rule is not about the state": { forward: { hook: "forward", policy: "accept", rules: [ssh] } },
    "nothing after the jump, policy drop": { forward: { hook: "forward", policy: "drop", rules: [] } },
  };
  for (const [what, chains] of Object.entries(cases)) {
    const rules = forwardRules({ protections, chains });
    assert.ok(rules[0]?.startsWith("jump protect_forward"), `${what}: ${rules.join("\n")}`);
  }
});

test("the presets' own base chain (policy accept, nothing after the jump) gets the fast path", () => {
  const rules = forwardRules({ protections, chains: {} }, "protect_forward_base");
  assert.deepEqual(rules, [...FAST, "jump protect_forward"]);
});

test("ct state lists: flag form, negated lists keep the set form", () => {
  const rules = forwardRules({
    chains: {
      forward: {
        hook: "forward",
        policy: "drop",
        rules: [
          { match: { ctState: ["established", "related"] }, action: "accept" },
          { match: { ctState: { not: ["established", "related"] }, protocol: "udp" }, action: "drop" },
          { match: { ctState: ["invalid"] }, action: "drop" },
        ],
      },
    },
  });
  assert.deepEqual(rules, [
    "ct state established,related accept",
    "meta l4proto udp ct state != { established, related } drop",
    "ct state invalid drop",
  ]);
});
