// quota2 decides --grow per rule, so one counter can grow in some rules and count down in
// others: the xtables-addons manual's bytebucket. The importer builds that mixed counter
// (a budget whose filling rules say grow) from every spelling the manual and iptables-save use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy, type ImportResult } from "../../../src/engine/import/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";

/** The manual's example, character for character (seed 003, quota2). */
const MANUAL =
  "-A INPUT -p tcp --dport 6881 -m quota --name bt --grow; -A OUTPUT -p tcp --sport 6881 -m quota --name bt;  \n";

function quotaMatches(r: ImportResult) {
  return Object.fromEntries(
    // An iptables input: each chain starts with the rule that lets IPv6 pass (iptables never saw it).
    Object.entries(r.policy?.chains ?? {}).map(([k, c]) => [k, ipv4Rules(c.rules).map((x) => x.match?.quota)]),
  );
}

function assertBucket(r: ImportResult, source: string): void {
  const rules = r.report.filter((l) => l.text.includes("quota"));
  assert.equal(rules.length, 2, source);
  for (const l of rules) assert.equal(l.status, "imported", `${source}: ${JSON.stringify(l)}`);
  assert.deepEqual(r.policy?.quotas, { bt: { mode: "bytes", limit: 0 } }, source);
  assert.deepEqual(quotaMatches(r), { input: [{ name: "bt", grow: true }], output: [{ name: "bt" }] }, source);
  const v = validatePolicy(r.policy);
  assert.deepEqual(v.errors, [], source);
  assert.deepEqual(
    v.warnings.filter((w) => w.code.startsWith("quota_")),
    [],
    source,
  );
}

test("the manual's bytebucket lines import as one budget that INPUT fills and OUTPUT takes from", () => {
  const r = importPolicy("iptables", MANUAL);
  assertBucket(r, MANUAL);
  // No target in the manual: both rules only count, as iptables would.
  assert.deepEqual(ipv4Rules(r.policy?.chains.input?.rules)[0], {
    match: { protocol: "tcp", dport: 6881, quota: { name: "bt", grow: true } },
    action: { type: "counter", name: "input_count_1" },
  });
  assert.deepEqual(ipv4Rules(r.policy?.chains.output?.rules)[0]?.match, {
    protocol: "tcp",
    sport: 6881,
    quota: { name: "bt" },
  });
});

test("every spelling: -m quota or -m quota2, iptables prefix or bare, with a target, as iptables-save prints it", () => {
  const sources = [
    "-A INPUT -m quota2 --name bt --grow -j ACCEPT\n-A OUTPUT -m quota2 --name bt -j ACCEPT\n",
    "iptables -A INPUT -m quota --name bt --grow -j ACCEPT\niptables -A OUTPUT -m quota --name bt -j ACCEPT\n",
    "-A INPUT -m quota2 --grow --name bt --quota 0 -j ACCEPT\n-A OUTPUT -m quota2 --name bt --quota 0 -j ACCEPT\n",
    // The rule that takes from the counter first: the direction is still per rule.
    "-A OUTPUT -m quota2 --name bt -j ACCEPT\n-A INPUT -m quota2 --name bt --grow -j ACCEPT\n",
  ];
  for (const s of sources) assertBucket(importPolicy("iptables", s), s);
  const save =
    "*filter\n-A INPUT -m quota2 --grow --name bt --quota 0 -j ACCEPT\n-A OUTPUT -m quota2 --name bt --quota 0 -j ACCEPT\nCOMMIT\n";
  assertBucket(importPolicy("iptables-save", save), save);
});

test("a counter every rule grows stays a growing quota; an initial value is its start", () => {
  const r = importPolicy(
    "iptables",
    "-A INPUT -m quota2 --name up --grow -j ACCEPT\n-A OUTPUT -m quota2 --name up --grow --quota 500 -j ACCEPT\n",
  );
  assert.deepEqual(r.policy?.quotas, { up: { mode: "bytes", grow: true } });
  assert.deepEqual(quotaMatches(r), { input: [{ name: "up" }], output: [{ name: "up" }] });
  const start = importPolicy("iptables", "-A INPUT -m quota2 --name up --grow --quota 500 -j ACCEPT\n");
  assert.deepEqual(start.policy?.quotas, { up: { mode: "bytes", grow: true, limit: 500 } });
});

test("a bucket keeps the first rule's initial value; '!' on a growing rule is dropped; bytes and packets do not mix", () => {
  const r = importPolicy(
    "iptables",
    "-A OUTPUT -m quota2 --name bt --quota 1000 -j ACCEPT\n-A INPUT -m quota2 --name bt --grow ! --quota 1000 -j ACCEPT\n",
  );
  assert.deepEqual(r.policy?.quotas, { bt: { mode: "bytes", limit: 1000 } });
  assert.deepEqual(quotaMatches(r), { output: [{ name: "bt" }], input: [{ name: "bt", grow: true }] });
  assert.match(r.report[1]!.reason ?? "", /'!' before --quota has no effect with --grow/);
  const mixed = importPolicy(
    "iptables",
    "-A INPUT -m quota2 --name bt --grow --packets -j ACCEPT\n-A OUTPUT -m quota2 --name bt -j ACCEPT\n",
  );
  const e = mixed.report[1]!;
  assert.equal(e.status, "error");
  assert.equal(e.token, "--name");
  assert.match(e.reason!, /counts packets in an earlier rule and bytes here; a policy quota has one mode/);
});
