import { test } from "node:test";
import assert from "node:assert/strict";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { chain, hasWarning, noWarning } from "../../support/validate.ts";

test("TARPIT without NOTRACK while conntrack is in use", () => {
  const tarpit = { match: { protocol: "tcp", dport: 6667 }, action: { type: "tarpit" } };
  const ct = { match: { ctState: ["established"] }, action: "accept" };
  const doc = { chains: { input: { hook: "input", rules: [ct, tarpit] } } };
  hasWarning(doc, "tarpit_without_notrack", "/chains/input/rules/1/action");
  // The manual's fix: raw prerouting notrack for the same traffic.
  const fixed = {
    chains: {
      ...doc.chains,
      raw: {
        table: "raw",
        hook: "prerouting",
        rules: [{ match: { protocol: "tcp", dport: 6667 }, action: "notrack" }],
      },
    },
  };
  noWarning(fixed, "tarpit_without_notrack");
  // Without conntrack in use there is nothing to warn about.
  noWarning({ chains: { input: { hook: "input", rules: [tarpit] } } }, "tarpit_without_notrack");
});

test("a rule shadowed by an earlier terminating rule names the earlier rule", () => {
  const doc = chain([
    { match: { protocol: "tcp", dport: [22, 80, 443], saddr: "10.0.0.0/8" }, action: "accept" },
    { match: { protocol: "tcp", dport: 80, saddr: "10.1.0.0/16", iif: "eth0" }, action: "drop" },
    { match: { protocol: "udp", dport: 80 }, action: "drop" },
  ]);
  hasWarning(doc, "rule_shadowed", "/chains/c/rules/1");
  const w = validatePolicy(doc).warnings.filter((d) => d.code === "rule_shadowed");
  assert.equal(w.length, 1);
  assert.match(w[0]!.message, /\/chains\/c\/rules\/0/);
  // An earlier rule without a match shadows everything after it.
  hasWarning(
    chain([{ action: "drop" }, { match: { protocol: "icmp" }, action: "accept" }]),
    "rule_shadowed",
    "/chains/c/rules/1",
  );
  // Rate limits and non-terminating actions do not shadow.
  noWarning(chain([{ match: { limit: { rate: "1/second" } }, action: "accept" }, { action: "drop" }]), "rule_shadowed");
  noWarning(chain([{ action: { type: "log" } }, { action: "drop" }]), "rule_shadowed");
});

test("lockout risk: default drop, failsafe off, nothing keeps the API connection", () => {
  const off = { failsafe: { enabled: false, ports: [50051] } };
  const doc = {
    ...off,
    chains: {
      input: { hook: "input", policy: "drop", rules: [{ match: { protocol: "tcp", dport: 22 }, action: "accept" }] },
    },
  };
  hasWarning(doc, "lockout_risk", "/chains/input/policy");
  const msg = validatePolicy(doc).warnings.find((d) => d.code === "lockout_risk")!.message;
  assert.match(msg, /established/);
  noWarning({ ...doc, failsafe: { enabled: true, ports: [50051] } }, "lockout_risk");
  noWarning(
    {
      ...off,
      chains: {
        input: {
          hook: "input",
          policy: "drop",
          rules: [{ match: { ctState: ["established", "related"] }, action: "accept" }],
        },
      },
    },
    "lockout_risk",
  );
  noWarning(
    {
      ...off,
      chains: {
        input: {
          hook: "input",
          policy: "drop",
          rules: [{ match: { protocol: "tcp", sport: 50051 }, action: "accept" }],
        },
      },
    },
    "lockout_risk",
  );
  hasWarning(
    { ...off, chains: { output: { hook: "output", rules: [{ action: "drop" }] } } },
    "lockout_risk",
    "/chains/output/rules/0",
  );
  // A final queue without bypass drops every packet while no program reads the queue.
  for (const action of [
    { type: "queue", num: 0 },
    { type: "queue", num: 0, to: 3 },
  ])
    hasWarning(
      { ...off, chains: { input: { hook: "input", rules: [{ action }] } } },
      "lockout_risk",
      "/chains/input/rules/0",
    );
  noWarning(
    { ...off, chains: { input: { hook: "input", rules: [{ action: { type: "queue", num: 0, bypass: true } }] } } },
    "lockout_risk",
  );
});

test("unreachable user chain, unused objects, empty policy", () => {
  hasWarning({ chains: { lonely: { rules: [{ action: "accept" }] } } }, "unreachable_user_chain", "/chains/lonely");
  hasWarning({ sets: { s: { type: "ipv4_addr" } } }, "unused_object", "/sets/s");
  hasWarning({ counters: { n: {} } }, "unused_object", "/counters/n");
  hasWarning({}, "empty_policy", "");
});

test("warnings never refuse", () => {
  const r = validatePolicy(chain([{ action: "drop" }, { action: "accept" }]));
  assert.equal(r.ok, true);
  assert.ok(r.warnings.length > 0);
});

test("a spaKnock secret shorter than 16 characters is a warning naming it; long ones are not", () => {
  const spa = (openSecret: string, closeSecret: string) => ({
    chains: { input: { hook: "input", rules: [] } },
    protections: { spaKnock: [{ name: "ssh", knockPort: 4000, port: 22, openSecret, closeSecret }] },
  });
  hasWarning(spa("short", "0123456789abcdef"), "spa_weak_secret", "/protections/spaKnock/0/openSecret");
  hasWarning(spa("0123456789abcdef", "fifteen-chars-x"), "spa_weak_secret", "/protections/spaKnock/0/closeSecret");
  noWarning(spa("0123456789abcdef", "fedcba9876543210"), "spa_weak_secret");
});

test("lints: false skips the warnings and nothing else (the agent's render)", () => {
  const doc = chain([{ action: "drop" }, { match: { protocol: "icmp" }, action: "accept" }]);
  const full = validatePolicy(doc, { target: "nftables" });
  const quiet = validatePolicy(doc, { target: "nftables", lints: false });
  assert.ok(full.warnings.some((d) => d.code === "rule_shadowed"));
  assert.deepEqual(quiet.warnings, []);
  assert.equal(quiet.ok, full.ok);
  assert.deepEqual(quiet.policy, full.policy);
  // Errors still refuse.
  const bad = chain([{ match: { protocol: "tcp", dport: 70000 }, action: "drop" }]);
  assert.equal(validatePolicy(bad, { lints: false }).ok, false);
});
