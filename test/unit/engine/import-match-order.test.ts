// The policy evaluates stateful matches after every other one; a line that put one earlier
// imports with a warning that names both modules, and lines already in that order do not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";

function reason(line: string): string {
  const r = importPolicy("iptables", line);
  assert.deepEqual(r.errors, [], line);
  assert.equal(r.report[0]!.status, "imported", line);
  return r.report[0]!.reason ?? "";
}

const WARN = /warning: -m (\w+) comes before -m (\w+)/;

test("a limit before a conntrack match: warned, naming both", () => {
  const m = reason("iptables -A INPUT -p tcp -m limit --limit 5/s -m conntrack --ctstate NEW -j ACCEPT").match(WARN);
  assert.ok(m, "no warning");
  assert.deepEqual([m[1], m[2]], ["limit", "conntrack"]);
});

test("an nth counter before the tcp port match (explicit -m tcp): warned", () => {
  assert.match(
    reason("iptables -A INPUT -p tcp -m statistic --mode nth --every 3 -m tcp --dport 80 -j DROP"),
    /-m statistic comes before -m tcp/,
  );
});

test("recent --update with a hit count before a limit (the counting idiom): the limit now runs first, warned as such", () => {
  const r = reason(
    "iptables -A INPUT -p tcp -m recent --update --seconds 60 --hitcount 4 --name x -m limit --limit 1/s -j ACCEPT",
  );
  assert.match(r, /-m recent comes before -m limit/);
  // The count sees every packet (compile/hitcount.ts jumps to the counting chain without the
  // limit); the limit, tested before the hit count, is what sees too many.
  assert.match(r, /every packet that reaches the rule spends a token, not only those at the hit count/);
  assert.doesNotMatch(r, /now sees only packets/);
});

test("a limit after recent but before another match: not the last module, warned", () => {
  assert.match(
    reason("iptables -A INPUT -m recent --rcheck --name x -m limit --limit 1/s -m conntrack --ctstate NEW -j ACCEPT"),
    /warning: -m recent comes before -m limit/,
  );
});

test("read-only state before stateless matches changes nothing: no warning", () => {
  assert.doesNotMatch(reason("iptables -A INPUT -m recent --rcheck --name x -m conntrack --ctstate NEW -j DROP"), WARN);
  assert.doesNotMatch(
    reason("iptables -A INPUT -m statistic --mode random --probability 0.5 -m conntrack --ctstate NEW -j DROP"),
    WARN,
  );
});

test("the usual order (ports, state, then recent and limit) and comments anywhere: no warning", () => {
  for (const line of [
    "iptables -A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 4 --name ssh -j DROP",
    "iptables -A INPUT -p icmp -m limit --limit 1/s -m comment --comment ping -j ACCEPT",
    "iptables -A INPUT -m comment --comment x -p tcp --dport 80 -m limit --limit 10/s -j ACCEPT",
  ])
    assert.doesNotMatch(reason(line), WARN, line);
});
