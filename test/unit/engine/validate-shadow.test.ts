// The rule_shadowed lint at scale, and against the plain O(n^2) algorithm it replaced.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { shadowWarnings } from "../../../src/engine/validate/lint-shadow.ts";
import { covers, isStateless } from "../../../src/engine/validate/covers.ts";
import { rulesOf, type RuleRef } from "../../../src/engine/validate/model.ts";
import { pointer, warning, type Diagnostic } from "../../../src/engine/diagnostics.ts";
import { Policy, TERMINATING } from "../../../src/engine/policy/index.ts";

/** The lint as it was: every rule against every earlier shadowing rule, in order. */
function referenceShadowWarnings(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const byChain = new Map<string, RuleRef[]>();
  for (const r of rulesOf(policy)) (byChain.get(r.chainName) ?? byChain.set(r.chainName, []).get(r.chainName)!).push(r);
  for (const rules of byChain.values()) {
    const shadows: RuleRef[] = [];
    for (const r of rules) {
      const by = shadows.find((s) => covers(s.match, r.match));
      if (by) {
        const what =
          Object.keys(by.match).length === 0 ? "matches every packet" : "matches every packet this rule matches";
        out.push(
          warning(
            r.path,
            "rule_shadowed",
            `this rule can never match: the earlier rule ${pointer(by.path)} (${by.action.type}) ${what}; remove this rule or move it above that one`,
          ),
        );
        continue;
      }
      if (TERMINATING.has(r.action.type) && isStateless(r.match)) shadows.push(r);
    }
  }
  return out;
}

function addr(i: number): string {
  const n = (0x0b000000 + i) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

test("20k rules validate with lints; shadows anywhere in the chain are still found", () => {
  const n = 20_000;
  const rules: unknown[] = [{ match: { saddr: "192.168.0.0/16" }, action: "drop" }];
  for (let i = 0; i < n; i++) {
    // Distinct hosts, some per-port rules and some prefixes: several key groups.
    if (i % 10 === 0) rules.push({ match: { protocol: "tcp", dport: 1000 + i, daddr: addr(i) }, action: "accept" });
    else if (i % 97 === 0) rules.push({ match: { saddr: `12.${(i >> 8) & 255}.${i & 255}.0/24` }, action: "drop" });
    else rules.push({ match: { saddr: addr(i) }, action: "drop" });
  }
  const last = rules.length;
  rules.push({ match: { saddr: "192.168.5.5", protocol: "udp" }, action: "accept" }); // under rule 0
  rules.push({ match: { saddr: `12.${(97 >> 8) & 255}.${97 & 255}.7` }, action: "accept" }); // under the /24 of i = 97
  rules.push({ match: { protocol: "tcp", dport: 1000 + 500, daddr: addr(500), iif: "eth0" }, action: "drop" }); // under i = 500's rule
  rules.push({ match: { saddr: addr(1) }, action: "accept" }); // an exact duplicate of i = 1
  rules.push({ match: { saddr: "11.255.255.255" }, action: "accept" }); // nothing covers this one
  const r = validatePolicy({ chains: { input: { hook: "input", policy: "accept", rules } } }, { target: "nftables" });
  assert.equal(r.ok, true, JSON.stringify(r.errors.slice(0, 3)));
  const shadowed = r.warnings.filter((d) => d.code === "rule_shadowed");
  assert.deepEqual(
    shadowed.map((d) => d.path),
    [last, last + 1, last + 2, last + 3].map((i) => `/chains/input/rules/${i}`),
  );
  assert.match(shadowed[0]!.message, /earlier rule \/chains\/input\/rules\/0 \(drop\)/);
  assert.match(shadowed[1]!.message, new RegExp(`earlier rule /chains/input/rules/${97 + 1} \\(drop\\)`));
  assert.match(shadowed[2]!.message, new RegExp(`earlier rule /chains/input/rules/${500 + 1} \\(accept\\)`));
  assert.match(shadowed[3]!.message, /earlier rule \/chains\/input\/rules\/2 \(drop\)/);
  assert.deepEqual(
    r.warnings.filter((d) => d.code === "lint_budget_exceeded"),
    [],
  );
});

test("a chain past the comparison budget gets one lint_budget_exceeded warning, not a hang", () => {
  // Port ranges cannot be indexed: every rule is compared with every earlier one.
  const rules = Array.from({ length: 300 }, (_, i) => ({
    match: { protocol: "tcp", dport: `${i + 1}-${i + 2}` },
    action: "accept",
  }));
  rules.push({ match: { protocol: "tcp", dport: "5-5" }, action: "drop" });
  const policy = Policy.parse({ chains: { input: { hook: "input", rules } } });
  // With enough budget the duplicate at the end is found...
  assert.deepEqual(
    shadowWarnings(policy).map((d) => `${d.code} ${d.path}`),
    ["rule_shadowed /chains/input/rules/300"],
  );
  assert.match(shadowWarnings(policy)[0]!.message, /earlier rule \/chains\/input\/rules\/3 /);
  // ...with too little, the lint stops at the chain and says so once.
  const capped = shadowWarnings(policy, 1000);
  assert.deepEqual(
    capped.map((d) => `${d.code} ${d.path}`),
    ["lint_budget_exceeded /chains/input"],
  );
  assert.match(capped[0]!.message, /chain input/);
});

// Small value pools so that random rules often contain each other.
const ADDRS = [
  "10.0.0.0/8",
  "10.1.0.0/16",
  "10.1.2.0/24",
  "10.1.2.3",
  "10.1.2.4",
  "10.0.0.1/8",
  "0.0.0.0/0",
  "10.1.2.3/32",
  "192.168.1.1",
  "@blk",
  "@other",
  "2001:db8::/32",
  "2001:db8::1",
  "2001:DB8::1",
  "::/0",
  "::ffff:10.1.2.3",
  "2001:db8:0:1::/64",
];
const PORTS: Array<number | string> = [22, 80, 443, "1-1024", "80-80", "443-8443", "0-65535", 8080];
const negatable = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: arb.map((v) => ({ not: v })) });
const listOf = <T>(pool: readonly T[]) =>
  fc.oneof(fc.constantFrom(...pool), fc.uniqueArray(fc.constantFrom(...pool), { minLength: 1, maxLength: 3 }));

const matchArb = fc.record(
  {
    family: fc.constantFrom("ipv4", "ipv6"),
    saddr: negatable(listOf(ADDRS)),
    daddr: negatable(listOf(ADDRS)),
    protocol: negatable(fc.constantFrom("tcp", "udp")),
    sport: negatable(listOf(PORTS)),
    dport: negatable(listOf(PORTS)),
    iif: negatable(listOf(["eth0", "eth*", "eth1", "wg0"])),
    ctState: negatable(
      fc.uniqueArray(fc.constantFrom("new", "established", "related"), { minLength: 1, maxLength: 3 }),
    ),
    icmpType: negatable(listOf(["echo-request", "echo-reply"])),
    mark: negatable(fc.oneof(fc.constantFrom(1, 2), fc.constant({ value: 1, mask: 255 }))),
    length: negatable(fc.constantFrom(100, "0-1500")),
    daddrType: negatable(fc.uniqueArray(fc.constantFrom("local", "broadcast"), { minLength: 1, maxLength: 2 })),
    rpfilter: fc.constantFrom("fail", "pass"),
    limit: fc.constant({ rate: "1/second" }),
  },
  { requiredKeys: [] },
);
// Few keys per rule: rules with many keys rarely cover anything.
const ruleArb = fc.record({
  match: fc
    .tuple(matchArb, fc.constantFrom(1, 2, 3, 1, 2, 0))
    .map(([m, n]) => Object.fromEntries(Object.entries(m).slice(0, n))),
  action: fc.constantFrom("accept", "drop", "return", { type: "reject" }, { type: "log" }),
});

test("the indexed lint reports exactly what the plain algorithm reports (random chains)", () => {
  fc.assert(
    fc.property(fc.array(ruleArb, { maxLength: 30 }), fc.array(ruleArb, { maxLength: 10 }), (a, b) => {
      const parsed = Policy.safeParse({ chains: { input: { hook: "input", rules: a }, other: { rules: b } } });
      if (!parsed.success) return; // a combination the schema refuses is not the lint's business
      assert.deepEqual(shadowWarnings(parsed.data), referenceShadowWarnings(parsed.data));
    }),
    { numRuns: 1500 },
  );
});

test("the reference and the lint agree on the existing lint examples", () => {
  const doc = Policy.parse({
    chains: {
      c: {
        hook: "input",
        rules: [
          { match: { protocol: "tcp", dport: [22, 80, 443], saddr: "10.0.0.0/8" }, action: "accept" },
          { match: { protocol: "tcp", dport: 80, saddr: "10.1.0.0/16", iif: "eth0" }, action: "drop" },
          { match: { protocol: "udp", dport: 80 }, action: "drop" },
          { action: "drop" },
          { match: { protocol: "icmp" }, action: "accept" },
        ],
      },
    },
  });
  const got = shadowWarnings(doc);
  assert.deepEqual(got, referenceShadowWarnings(doc));
  assert.deepEqual(
    got.map((d) => d.path),
    ["/chains/c/rules/1", "/chains/c/rules/4"],
  );
});

test("a family-less icmp rule is IPv4's ICMP: it shadows family ipv4 icmp, not family ipv6 icmp (next header 1); icmpv6 the mirror", () => {
  const doc = Policy.parse({
    chains: {
      input: {
        hook: "input",
        rules: [
          { match: { protocol: "icmp" }, action: "accept" },
          { match: { family: "ipv6", protocol: "icmp" }, action: "drop" },
          { match: { family: "ipv4", protocol: "icmp" }, action: "drop" },
          { match: { protocol: "icmpv6" }, action: "accept" },
          { match: { family: "ipv4", protocol: "icmpv6" }, action: "drop" },
          { match: { family: "ipv6", protocol: "icmpv6" }, action: "drop" },
        ],
      },
      forward: {
        hook: "forward",
        rules: [
          { match: { family: "ipv4" }, action: "drop" },
          { match: { protocol: "icmp" }, action: "drop" },
          { match: { protocol: "icmpv6" }, action: "drop" },
        ],
      },
    },
  });
  const got = shadowWarnings(doc);
  assert.deepEqual(got, referenceShadowWarnings(doc));
  assert.deepEqual(
    got.map((d) => d.path),
    ["/chains/forward/rules/1", "/chains/input/rules/2", "/chains/input/rules/5"],
  );
  assert.equal(covers({ protocol: "icmp" }, { family: "ipv6", protocol: "icmp" }), false);
  assert.equal(covers({ family: "ipv4" }, { protocol: "icmp" }), true);
  const v = validatePolicy(doc, { target: "nftables" });
  assert.deepEqual(
    v.warnings.filter((w) => w.code === "rule_shadowed").map((w) => w.path),
    ["/chains/forward/rules/1", "/chains/input/rules/2", "/chains/input/rules/5"],
  );
});
