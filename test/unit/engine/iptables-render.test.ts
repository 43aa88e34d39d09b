// renderIptables: behaviour beyond the golden texts — refusals with paths, token safety,
// PORTFW shares, installed-state handling, name limits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Policy, type PolicyInput } from "../../../src/engine/policy/index.ts";
import { renderIptables, parseInstalled } from "../../../src/engine/compile/iptables/index.ts";
import { shareProbabilities } from "../../../src/engine/compile/iptables/forwarding.ts";
import { chainName } from "../../../src/engine/compile/iptables/names.ts";

const input = (rules: unknown[], extra: Record<string, unknown> = {}): PolicyInput =>
  ({ ...extra, chains: { input: { hook: "input", rules } } }) as PolicyInput;

function ok(doc: PolicyInput) {
  const r = renderIptables(Policy.parse(doc));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r;
}
function errs(doc: PolicyInput) {
  const r = renderIptables(Policy.parse(doc));
  assert.equal(r.ok, false);
  return r.ok ? [] : r.errors.map((e) => `${e.path} ${e.code}`);
}

test("weighted shares: sequential probabilities give each backend its weight's share", () => {
  const w = [15, 5, 10];
  const p = shareProbabilities(w);
  assert.equal(p[2], undefined);
  let left = 1;
  const shares = p.map((x) => {
    const s = left * (x ?? 1);
    left -= s;
    return s;
  });
  shares.forEach((s, i) => assert.ok(Math.abs(s - w[i]! / 30) < 1e-12));
});

test("unsupported features are refused with unsupported_on_target before rendering", () => {
  assert.deepEqual(errs(input([{ action: { type: "mirror" } }])), [
    "/chains/input/rules/0/action unsupported_on_target",
  ]);
  assert.deepEqual(errs(input([{ match: { iif: { not: ["a", "b"] } }, action: "drop" }])), [
    "/chains/input/rules/0/match/iif unsupported_on_target",
  ]);
});

test("iptables-specific refusals carry the field's path", () => {
  assert.deepEqual(errs(input([{ match: { dport: 22 }, action: "accept" }])), [
    "/chains/input/rules/0/match/dport iptables_ports_need_protocol",
  ]);
  assert.deepEqual(errs(input([{ action: { type: "reject", with: "tcp-reset" } }])), [
    "/chains/input/rules/0/action iptables_reject_tcp_reset",
  ]);
  const many = Array.from({ length: 16 }, (_, i) => 1000 + i);
  assert.deepEqual(errs(input([{ match: { protocol: "tcp", dport: { not: many } }, action: "drop" }])), [
    "/chains/input/rules/0/match/dport iptables_negated_ports",
  ]);
  assert.deepEqual(
    errs(
      input([{ match: { protocol: "tcp" }, action: { type: "tarpit" } }, { action: { type: "ipmark", addr: "src" } }]),
    ),
    ["/chains/input/rules/1/action iptables_wrong_table"],
  );
  assert.deepEqual(
    errs({
      chains: {
        n: { table: "nat", hook: "postrouting", rules: [{ action: "drop" }] },
        f: { table: "filter", hook: "prerouting" },
      },
    } as PolicyInput),
    ["/chains/f/hook iptables_hook_table", "/chains/n/rules/0/action iptables_wrong_table"],
  );
});

test("long port lists split into several multiport rules; positive lists multiply", () => {
  const ports = Array.from({ length: 20 }, (_, i) => 2000 + i);
  const r = ok(input([{ match: { protocol: "tcp", dport: ports, iif: ["a", "b"] }, action: "accept" }]));
  const rules = r.text.split("\n").filter((l) => l.startsWith("-A PAL-input"));
  assert.equal(rules.length, 4);
  assert.match(rules[0]!, /^-A PAL-input -i a -p tcp -m multiport --dports 2000,.*,2014 -j ACCEPT$/);
});

test("free text is quoted and escaped; nothing can start a new option or line", () => {
  const r = ok(input([{ comment: "x -j ACCEPT; y", action: { type: "log", prefix: "a b -j DROP" } }]));
  assert.match(r.text, /-m comment --comment "x -j ACCEPT; y" -j LOG --log-prefix "a b -j DROP"/);
  // Defence in depth: a value that slipped past the schema is still escaped or refused.
  const forged = Policy.parse(input([{ comment: "ok", action: "accept" }]));
  forged.chains.input!.rules[0]!.comment = 'a" -j DROP \\';
  const f = renderIptables(forged);
  assert.ok(f.ok);
  assert.match(f.text, /--comment "a\\" -j DROP \\\\" -j ACCEPT/);
  forged.chains.input!.rules[0]!.comment = "a\n-A INPUT -j ACCEPT";
  const g = renderIptables(forged);
  assert.equal(g.ok, false);
  const q = Policy.parse(
    input([{ match: { quota: { name: "x" } }, action: "accept" }], { quotas: { x: { limit: 1 } } }),
  );
  q.quotas["a b"] = { mode: "bytes", limit: 1 };
  q.chains.input!.rules[0]!.match!.quota!.name = "a b";
  const h = renderIptables(q);
  assert.equal(h.ok, false);
});

test("installed state: no second jump, stale chains flushed, unjumped and deleted", () => {
  const save = [
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ":PALISADE-INPUT - [0:0]",
    ":PALISADE-FORWARD - [0:0]",
    ":PAL-old - [0:0]",
    ":DOCKER - [0:0]",
    "-A INPUT -j PALISADE-INPUT",
    "-A FORWARD -j PALISADE-FORWARD",
    "-A PAL-old -j ACCEPT",
    "COMMIT",
  ].join("\n");
  const inst = parseInstalled(save);
  assert.deepEqual(inst.chains.filter, ["PALISADE-INPUT", "PALISADE-FORWARD", "PAL-old"]);
  assert.deepEqual(inst.jumps.filter, ["INPUT", "FORWARD"]);
  const r = renderIptables(Policy.parse(input([{ action: "accept" }])), { installed: { ipv4: inst } });
  assert.ok(r.ok);
  const lines = r.text.split("\n");
  assert.ok(!lines.some((l) => l.startsWith("-I ")));
  assert.ok(lines.includes("-D FORWARD -j PALISADE-FORWARD"));
  assert.ok(lines.includes("-X PAL-old") && lines.includes("-X PALISADE-FORWARD"));
  assert.ok(!r.text.includes("DOCKER"));
  assert.ok(lines.indexOf(":PAL-old - [0:0]") < lines.indexOf("-X PAL-old"));
});

test("chain names fit the 28-character kernel limit, deterministically", () => {
  const long = "a".repeat(32);
  assert.equal(chainName(long).length, 28);
  assert.equal(chainName(long), chainName(long));
  assert.notEqual(chainName(long), chainName("a".repeat(31) + "b"));
  assert.equal(chainName("input"), "PAL-input");
});

test("ACCOUNT of an IPv6 or aggregated table is refused (the target is IPv4-only, per address); IPv4 per address renders", () => {
  const doc = (def: Record<string, unknown>) =>
    input([{ action: { type: "account", table: "t" } }], { accounting: { t: def } });
  assert.deepEqual(errs(doc({ prefix: "2001:db8::/48" })), [
    "/chains/input/rules/0/action/table iptables_account_ipv6",
  ]);
  assert.deepEqual(errs(doc({ prefix: "10.0.0.0/16", aggregate: 24 })), [
    "/chains/input/rules/0/action/table iptables_account_aggregate",
  ]);
  assert.match(ok(doc({ prefix: "10.0.0.0/16" })).text, /-j ACCOUNT --addr 10\.0\.0\.0\/16 --tname t/);
});

test("match order: xtables-addons matches before the stateful ones, stateful ones in the nftables compiler's order", () => {
  // A limit before a geoip match would spend tokens on packets of every country.
  const line = (match: Record<string, unknown>) =>
    ok(input([{ match, action: "drop" }]))
      .text.split("\n")
      .find((l) => l.startsWith("-A PAL-input ") && / -j DROP/.test(l))!;
  const geoLimit = line({
    xt: { geoip: { source: ["CN"] }, condition: "web" },
    limit: { rate: "5/second" },
    recent: { name: "l", mode: "set" },
  });
  assert.ok(geoLimit, "no rule line rendered");
  const at = (s: string) => geoLimit.indexOf(s);
  for (const [a, b] of [
    ["-m condition", "-m limit"],
    ["-m geoip", "-m limit"],
    ["-m limit", "-m recent"],
  ] as const)
    assert.ok(at(a) !== -1 && at(a) < at(b), `${a} not before ${b}: ${geoLimit}`);
  const psdConn = line({ protocol: "tcp", xt: { psd: {} }, connlimit: { count: 5 } });
  assert.ok(psdConn.indexOf("-m psd") < psdConn.indexOf("-m connlimit"), psdConn);
});
