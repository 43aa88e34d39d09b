// Schema errors (zod) translated into Diagnostics: pointer paths and stable codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { validatePolicy } from "../../../src/engine/validate/index.ts";

function codes(doc: unknown) {
  const r = validatePolicy(doc);
  assert.equal(r.ok, false);
  return r.errors.map((e) => `${e.code} ${e.path}`);
}

test("an empty document is valid", () => {
  const r = validatePolicy({});
  assert.equal(r.ok, true);
  assert.deepEqual(r.errors, []);
  assert.equal(r.policy?.failsafe.enabled, true);
});

test("unknown fields", () => {
  assert.deepEqual(codes({ chainz: {} }), ["unknown_field /chainz"]);
  assert.deepEqual(codes({ chains: { input: { hook: "input", rulez: [] } } }), ["unknown_field /chains/input/rulez"]);
});

test("wrong types, missing fields, bad enum values", () => {
  assert.deepEqual(
    codes({ chains: { input: { hook: "input", rules: [{ match: { sport: true }, action: "accept" }] } } }),
    ["invalid_type /chains/input/rules/0/match/sport"],
  );
  assert.deepEqual(codes({ chains: { input: { hook: "input", rules: [{}] } } }), [
    "missing_field /chains/input/rules/0/action",
  ]);
  assert.deepEqual(codes({ chains: { input: { hook: "inptu" } } }), ["invalid_value /chains/input/hook"]);
  assert.deepEqual(codes({ chains: { x: { rules: [{ action: { type: "explode" } }] } } }), [
    "invalid_value /chains/x/rules/0/action/type",
  ]);
  assert.deepEqual(codes({ chains: { x: { rules: [{ action: "blah" }] } } }), [
    "invalid_value /chains/x/rules/0/action",
  ]);
  assert.deepEqual(codes({ chains: { x: { rules: [{ action: { type: "log", prefix: 5 } }] } } }), [
    "invalid_type /chains/x/rules/0/action/prefix",
  ]);
  assert.deepEqual(codes([]), ["invalid_type "]);
});

test("invalid names, addresses, ranges and refinements get their own codes", () => {
  assert.deepEqual(codes({ sets: { "1x": { type: "ipv4_addr" } } }), ["invalid_name /sets/1x"]);
  assert.deepEqual(codes({ chains: { x: { rules: [{ match: { saddr: { not: "10.0.0.300" } }, action: "drop" }] } } }), [
    "invalid_address /chains/x/rules/0/match/saddr/not",
  ]);
  assert.deepEqual(
    codes({ chains: { x: { rules: [{ match: { protocol: "tcp", dport: "90-80" }, action: "drop" }] } } }),
    ["invalid_range /chains/x/rules/0/match/dport"],
  );
  assert.deepEqual(codes({ chains: { x: { rules: [{ comment: 'a"b', action: "drop" }] } } }), [
    "unsafe_text /chains/x/rules/0/comment",
  ]);
  assert.deepEqual(codes({ quotas: { q: {} } }), ["quota_limit_required /quotas/q/limit"]);
  assert.deepEqual(codes({ accounting: { a: { prefix: "10.0.0.0/7" } } }), [
    "account_prefix_too_short /accounting/a/prefix",
  ]);
  assert.deepEqual(codes({ accounting: { a: { prefix: "2001:db8::/7" } } }), [
    "account_prefix_too_short /accounting/a/prefix",
  ]);
  assert.deepEqual(codes({ accounting: { a: { prefix: "2001:db8::/48", aggregate: 32 } } }), [
    "account_aggregate_invalid /accounting/a/aggregate",
  ]);
  assert.deepEqual(codes({ accounting: { a: { prefix: "10.0.0.0/16", aggregate: 64 } } }), [
    "account_aggregate_invalid /accounting/a/aggregate",
  ]);
  assert.deepEqual(codes({ accounting: { a: { prefix: "0.0.0.0/0", aggregate: 8 } } }), [
    "account_aggregate_invalid /accounting/a/aggregate",
  ]);
  assert.equal(
    validatePolicy({ accounting: { a: { prefix: "2001:db8::/32", aggregate: 64 }, b: { prefix: "2001:db8:1::/64" } } })
      .ok,
    true,
  );
  assert.deepEqual(codes({ chains: { x: { rules: [{ action: { type: "logmark", prefix: "x".repeat(30) } }] } } }), [
    "too_large /chains/x/rules/0/action/prefix",
  ]);
});

test("interface names the kernel refuses, and empty log prefixes, are refused at validation with their path", () => {
  const rule = (match: unknown, action: unknown = "accept") => ({
    chains: { input: { hook: "input", rules: [{ match, action }] } },
  });
  for (const bad of ["eth0:1", ".", "..", "eth/0", "eth 0", "", "a234567890123456", "*"]) {
    const r = validatePolicy(rule({ iif: bad }));
    assert.equal(r.ok, false, `iif ${JSON.stringify(bad)} must be refused`);
    assert.deepEqual(
      r.errors.map((e) => e.path),
      ["/chains/input/rules/0/match/iif"],
      bad,
    );
  }
  const dot = validatePolicy(rule({ oif: [".."] }));
  assert.match(dot.errors[0]!.message, /"\." or "\.\."/);
  assert.match(validatePolicy(rule({ iif: "eth0:1" })).errors[0]!.message, /no ':'/);
  for (const good of ["eth0", "eth*", "eth0*", "br-lan.10", "wg_0@x", "a23456789012345"]) {
    assert.equal(validatePolicy(rule({ iif: good })).ok, true, good);
  }
  const empty = validatePolicy(rule({}, { type: "log", prefix: "" }));
  assert.equal(empty.ok, false);
  assert.deepEqual(
    empty.errors.map((e) => e.path),
    ["/chains/input/rules/0/action/prefix"],
  );
  assert.equal(empty.errors[0]!.code, "too_small");
  assert.equal(validatePolicy(rule({}, { type: "log" })).ok, true);
  assert.equal(validatePolicy(rule({}, { type: "log", prefix: "drop: " })).ok, true);
});
