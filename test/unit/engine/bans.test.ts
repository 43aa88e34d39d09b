// engine/bans: one canonical spelling per ban, refusals with stable codes, and the nft
// text the agent sends (the kernel side is test/kernel/bans-fleet.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { bans } from "../../../src/engine/index.ts";
import { assertPalisadeOnly } from "../../../src/engine/driver/index.ts";
import { isPalisadeTable } from "../../../src/engine/nft/index.ts";

const ok = (t: string) => {
  const r = bans.parseBanAddress(t);
  assert.ok(r.ok, `${t}: ${JSON.stringify(r)}`);
  return r.value;
};
const code = (t: string) => {
  const r = bans.parseBanAddress(t);
  assert.ok(!r.ok, `${t} must be refused`);
  return r.error.code;
};

test("addresses are canonical; single addresses and prefixes are told apart", () => {
  assert.deepEqual(ok("203.0.113.5"), { family: "ipv4", text: "203.0.113.5", length: 32, single: true });
  assert.deepEqual(ok("203.0.113.5/32"), { family: "ipv4", text: "203.0.113.5", length: 32, single: true });
  assert.equal(ok("198.51.100.0/24").text, "198.51.100.0/24");
  assert.equal(ok("2001:DB8:0:0::1").text, "2001:db8::1");
  assert.equal(ok("2001:db8:0::/48").text, "2001:db8::/48");
  assert.equal(ok("2001:db8::1/128").single, true);
});

test("malformed, whole-internet and host-bit prefixes are refused with their codes", () => {
  assert.equal(code("10.1.2.300"), "malformed_address");
  assert.equal(code("example.com"), "malformed_address");
  assert.equal(code("10.0.0.0/33"), "malformed_address");
  assert.equal(code("0.0.0.0/0"), "whole_internet");
  assert.equal(code("::/0"), "whole_internet");
  assert.equal(code("10.0.0.1/8"), "host_bits_set");
  assert.match(
    (bans.parseBanAddress("10.0.0.1/8") as { error: { message: string } }).error.message,
    /did you mean 10\.0\.0\.0\/8/,
  );
});

test("coverage and overlap", () => {
  assert.ok(bans.banCovers(ok("10.0.0.0/8"), "10.2.3.4"));
  assert.ok(!bans.banCovers(ok("10.0.0.0/8"), "11.2.3.4"));
  assert.ok(!bans.banCovers(ok("10.0.0.0/8"), "2001:db8::1"));
  assert.ok(bans.bansOverlap(ok("10.1.0.0/16"), ok("10.0.0.0/8")));
  assert.ok(!bans.bansOverlap(ok("10.1.0.0/16"), ok("10.2.0.0/16")));
});

test("the ban table is a Palisade table for the driver's guard, but not one of the policy's", () => {
  const fs = { apiAddresses: ["192.0.2.1"], apiPort: 50051 };
  const text = bans.banTableText(
    new Map([
      [
        "edge",
        [
          { address: ok("203.0.113.5"), timeoutMs: 1500.2 },
          { address: ok("2001:db8::/64"), timeoutMs: 60_000 },
        ],
      ],
    ]),
    fs,
  );
  assert.deepEqual([...new Set(assertPalisadeOnly(text).map((t) => t.name))], ["palisade_bans"]);
  assert.equal(isPalisadeTable("palisade_bans"), false);
  assert.equal(isPalisadeTable("palisade"), true);
  assert.match(
    text,
    /ip saddr \{ 192\.0\.2\.1 \} tcp sport 50051 accept\n\s+ip saddr @edge_h4 drop/,
    "the failsafe comes before every ban rule",
  );
  assert.match(text, /add element inet palisade_bans edge_h4 \{ 203\.0\.113\.5 timeout 1501ms \}/);
  assert.match(text, /add element inet palisade_bans edge_n6 \{ 2001:db8::\/64 timeout 60000ms \}/);
  assert.match(text, /priority -310/);
});

test("a change refreshes an element's timeout and removes idempotently, in one text", () => {
  const t = bans.banDeltaText("edge", [{ address: ok("203.0.113.5"), timeoutMs: 1000 }], [ok("198.51.100.0/24")]);
  assert.deepEqual(t.trim().split("\n"), [
    "add element inet palisade_bans edge_n4 { 198.51.100.0/24 }",
    "delete element inet palisade_bans edge_n4 { 198.51.100.0/24 }",
    "add element inet palisade_bans edge_h4 { 203.0.113.5 }",
    "delete element inet palisade_bans edge_h4 { 203.0.113.5 }",
    "add element inet palisade_bans edge_h4 { 203.0.113.5 timeout 1000ms }",
  ]);
  assert.equal(bans.banDeltaText("edge", [], []), "");
});

test("the ban failsafe names the API's addresses and port together, never a port alone", () => {
  const lists = new Map([["edge", [{ address: ok("203.0.113.5"), timeoutMs: 1000 }]]]);
  const many = bans.banTableText(lists, { apiAddresses: ["2001:db8::7", "192.0.2.2", "192.0.2.1"], apiPort: 8443 });
  assert.match(
    many,
    /ip saddr \{ 192\.0\.2\.1, 192\.0\.2\.2 \} tcp sport 8443 accept/,
    "every address the name resolves to",
  );
  assert.match(many, /ip6 saddr \{ 2001:db8::7 \} tcp sport 8443 accept/);
  // Before conntrack (-310) `ct state` is never established: a conntrack rule here would be dead.
  assert.doesNotMatch(many, /\bct\b/);
  const none = bans.banTableText(lists, { apiAddresses: [], apiPort: 8443 });
  for (const t of [many, none])
    assert.doesNotMatch(t, /^\s*(meta l4proto tcp )?tcp sport 8443 accept/m, "never port-only");
  assert.doesNotMatch(none, /accept\n/, "no address: no failsafe rule at all");
  assert.match(none, /policy accept;\n\s+ip saddr @edge_h4 drop/);
});
