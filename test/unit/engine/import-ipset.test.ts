// ipsets in a text import: `ipset save` text (the `ipsets` option, or its lines inside the
// dump) gives the real type and members; a match of a set the input does not hold is refused,
// as iptables-restore refuses it, and so is a -j SET of such a set (iptables-restore: "Set NAME
// doesn't exist."); what cannot be typed is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatImportReport, importPolicy, importRecorded } from "../../../src/engine/import/index.ts";
import { renderNft, validatePolicy } from "../../../src/engine/index.ts";

const dump = (...rules: string[]) => `*filter\n${rules.join("\n")}\nCOMMIT\n`;

test("a match of a set the dump only names is refused, as iptables-restore refuses it: the message says how to supply it", () => {
  const r = importPolicy(
    "iptables-save",
    dump("-A INPUT -m set --match-set mgmt src -j ACCEPT", "-A OUTPUT -m set --match-set mgmt dst -j DROP"),
  );
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path]),
    [
      ["import_ipset_contents_missing", "/source/line/2"],
      ["import_ipset_contents_missing", "/source/line/3"],
    ],
  );
  assert.match(
    r.errors[0]!.message,
    /^line 2: --match-set mgmt src: the input does not hold ipset mgmt; empty, the match is true for no packet.*iptables-restore refuses it while the set does not exist/,
  );
  assert.match(r.errors[0]!.message, /palisade import --ipset FILE` \(API: `ipsets`\).*its `create` line/);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.policy!.sets, {});
  // In a text script, the same.
  const script = importPolicy("iptables", "iptables -A INPUT -m set --match-set mgmt src -j ACCEPT\n");
  assert.deepEqual(
    script.errors.map((e) => e.code),
    ["import_ipset_contents_missing"],
  );
  // Its `create` line (a set empty on the host too) is enough.
  const empty = importPolicy("iptables-save", dump("-A INPUT -m set --match-set mgmt src -j ACCEPT"), {
    ipsets: "create mgmt hash:net family inet\n",
  });
  assert.deepEqual(empty.errors, []);
  assert.deepEqual(empty.warnings, []);
  assert.deepEqual(empty.policy!.sets.mgmt, { type: "ipv4_addr", elements: [], interval: true });
});

test("ip6tables-save: the set holds IPv6 addresses; -j SET makes it a dynamic set of addresses", () => {
  const r = importPolicy(
    "iptables-save",
    dump("-A FORWARD -p tcp -m set --match-set iana src -j ACCEPT", "-A INPUT -p tcp --syn -j SET --add-set seen src"),
    {
      family: "ipv6",
      ipsets: "create iana hash:net family inet6\nadd iana 2001:db8::/32\ncreate seen hash:ip family inet6\n",
    },
  );
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.policy!.sets.iana, { type: "ipv6_addr", elements: ["2001:db8::/32"], interval: true });
  assert.deepEqual(r.policy!.sets.seen, { type: "ipv6_addr", elements: [], dynamic: true });
  assert.deepEqual(r.policy!.chains.input!.rules[0]!.action, {
    type: "setUpdate",
    op: "add",
    set: "seen",
    key: "saddr",
  });
  assert.deepEqual(r.warnings, []);
});

test("-j SET of a set the input does not create is refused, as iptables-restore refuses it (Set doesn't exist)", () => {
  // Before, the set was declared empty (warning ipset_contents_missing) and the rule imported.
  for (const [rule, opts] of [
    ["-A INPUT -p tcp --syn -j SET --add-set seen src", {}],
    ["-A INPUT -p tcp --syn -j SET --del-set seen src", {}],
    ["-A INPUT -p tcp --syn -j SET --add-set seen src", { family: "ipv6" as const }],
  ] as const) {
    const r = importPolicy("iptables-save", dump(rule), opts);
    assert.deepEqual(
      r.errors.map((e) => [e.code, e.path]),
      [["import_ipset_contents_missing", "/source/line/2"]],
      rule,
    );
    assert.match(
      r.errors[0]!.message,
      /^line 2: --(add|del)-set seen src: the input does not hold ipset seen; iptables-restore refuses this rule while the set does not exist.*Supply the set: give the output of `ipset save`/,
    );
    assert.deepEqual(r.warnings, []);
  }
  const script = importPolicy("iptables", "iptables -A INPUT -j SET --add-set seen src\n");
  assert.deepEqual(
    script.errors.map((e) => e.code),
    ["import_ipset_contents_missing"],
  );
});

test("a set matched by a rule and added to by -j SET: its create line makes it a dynamic set; without, the match is refused", () => {
  const rules = dump(
    "-A INPUT -p tcp --dport 23 -j SET --add-set scanners src",
    "-A INPUT -m set --match-set scanners src -j DROP",
  );
  const r = importPolicy("iptables-save", rules, { ipsets: "create scanners hash:ip family inet\n" });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.policy!.sets.scanners, { type: "ipv4_addr", elements: [], dynamic: true });
  // Without it, both rules are refused.
  const none = importPolicy("iptables-save", rules);
  assert.deepEqual(
    none.errors.map((e) => [e.code, e.path]),
    [
      ["import_ipset_contents_missing", "/source/line/2"],
      ["import_ipset_contents_missing", "/source/line/3"],
    ],
  );
});

test("what cannot be typed from its use is refused with the reason", () => {
  const cases: [string, RegExp][] = [
    ["-A INPUT -m set --match-set pairs src,dst -j DROP", /2 directions holds tuples .*only one-dimensional/],
    ["-A INPUT -j SET --add-set ports dst,dst", /--add-set ports dst,dst: a set looked up with 2 directions/],
    [
      "-A INPUT -m set --match-set hits src --packets-gt 3 -j DROP",
      /--packets-gt: the per-element packet and byte counters/,
    ],
    ["-A INPUT -m set --match-set ex src --return-nomatch -j DROP", /--return-nomatch: nomatch elements/],
  ];
  for (const [rule, why] of cases) {
    const r = importPolicy("iptables-save", dump(rule));
    assert.equal(r.errors.length, 1, rule);
    assert.match(r.errors[0]!.message, why, rule);
  }
});

test("-m string stays refused with its reason", () => {
  const r = importPolicy(
    "iptables-save",
    dump('-A INPUT -p udp --dport 53 -m string --string "ANY" --algo bm --from 40 --to 200 -j DROP'),
  );
  assert.match(r.errors[0]!.message, /-m string: payload string matching .*xt_string searches every offset/);
});

const SAVE = [
  "create office hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x8a4e21c4",
  "add office 198.51.100.0/24",
  'add office 203.0.113.9 comment "the boss"',
  "create v6peers hash:ip family inet6 hashsize 1024 maxelem 65536 timeout 600",
  "add v6peers 2001:DB8::7 timeout 312",
  "create portpairs hash:net,iface family inet hashsize 1024 maxelem 65536",
  "add portpairs 192.0.2.0/24,eth0",
  "",
].join("\n");

test("the `ipsets` option (ipset save): real types and members, no contents warning, report lines marked as the ipsets input", () => {
  const r = importPolicy("iptables-save", dump("-A INPUT -m set --match-set office src -j ACCEPT"), { ipsets: SAVE });
  assert.deepEqual(r.errors, []);
  // Only the element whose time left (312 s) becomes the set's 600 s is worth a warning.
  assert.deepEqual(
    r.warnings.map((w) => `${w.code} ${w.path}`),
    ["ipset_element_timeout_dropped /sets/v6peers"],
  );
  assert.deepEqual(r.policy!.sets.office, {
    type: "ipv4_addr",
    elements: ["198.51.100.0/24", "203.0.113.9"],
    interval: true,
    size: 65536,
  });
  assert.deepEqual(r.policy!.sets.v6peers, {
    type: "ipv6_addr",
    elements: ["2001:db8::7"],
    timeoutSeconds: 600,
    size: 65536,
  });
  assert.equal(r.policy!.sets.portpairs, undefined);
  const fromIpsets = r.report.filter((l) => l.input === "ipsets");
  assert.deepEqual(
    fromIpsets.map((l) => `${l.line} ${l.status}`),
    ["1 imported", "2 imported", "3 imported", "4 imported", "5 imported", "6 skipped", "7 skipped"],
  );
  assert.match(fromIpsets[2]!.reason!, /comment of the element not kept/);
  assert.match(fromIpsets[5]!.reason!, /hash:net,iface is not imported.*a rule that uses set portpairs is refused/);
  assert.match(formatImportReport(r.report), /^ipsets:1 {2}imported create office/m);
});

test("a rule matching a set of a type the policy cannot hold, or of the other family, is refused", () => {
  const pairs = importPolicy("iptables-save", dump("-A INPUT -m set --match-set portpairs src -j DROP"), {
    ipsets: SAVE,
  });
  assert.match(pairs.errors[0]!.message, /--match-set portpairs: ipset type hash:net,iface is not imported/);
  const v6 = importPolicy("iptables-save", dump("-A INPUT -m set --match-set v6peers src -j DROP"), { ipsets: SAVE });
  assert.match(v6.errors[0]!.message, /holds IPv6 \(family inet6\) addresses, but this is an iptables rule/);
  const bad = importPolicy("iptables-save", dump("-A INPUT -j ACCEPT"), { ipsets: "add nowhere 192.0.2.1\n" });
  assert.equal(bad.errors[0]!.path, "/ipsets/line/1");
  assert.match(bad.errors[0]!.message, /^ipsets line 1: ipset set nowhere was not created/);
});

test("ipset save lines inside the dump are applied first, wherever they stand", () => {
  const src = `${dump("-A INPUT -m set --match-set office src -j ACCEPT")}${SAVE.split("\n").slice(0, 3).join("\n")}\n`;
  const r = importPolicy("iptables-save", src);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.policy!.sets.office!.elements, ["198.51.100.0/24", "203.0.113.9"]);
  assert.deepEqual(
    r.report.map((l) => l.line),
    [1, 2, 3, 4, 5, 6],
    "the report is in line order",
  );
});

test("a text script: ipset create/add before the rule are the set; a create after the rule used it is refused", () => {
  const ok = importPolicy(
    "iptables",
    "ipset create friends hash:ip\nipset add friends 192.0.2.7\niptables -A INPUT -m set --match-set friends src -j ACCEPT\n",
  );
  assert.deepEqual(ok.errors, []);
  assert.deepEqual(ok.warnings, []);
  assert.deepEqual(ok.policy!.sets.friends, { type: "ipv4_addr", elements: ["192.0.2.7"] });
  const late = importPolicy(
    "iptables",
    "iptables -A INPUT -m set --match-set friends src -j ACCEPT\nipset create friends hash:ip\n",
  );
  assert.match(late.errors[0]!.message, /--match-set friends src: the input does not hold ipset friends/);
  const lateSet = importPolicy(
    "iptables",
    "iptables -A INPUT -j SET --add-set friends src\nipset create friends hash:ip\n",
  );
  assert.match(lateSet.errors[0]!.message, /--add-set friends src: the input does not hold ipset friends/);
  const restore = importPolicy("iptables", "ipset restore -file /etc/ipset.conf\n");
  assert.match(restore.errors[0]!.message, /palisade import --ipset FILE/);
});

test("two ipset names that sanitise to one policy name are refused", () => {
  const r = importPolicy(
    "iptables-save",
    dump("-A INPUT -m set --match-set a-b src -j DROP", "-A INPUT -m set --match-set a.b src -j DROP"),
    { ipsets: "create a-b hash:ip family inet\n" },
  );
  assert.match(r.errors[0]!.message, /ipset a\.b and ipset a-b would both be the policy set a_b/);
  const created = importPolicy("iptables-save", dump("-A INPUT -j ACCEPT"), {
    ipsets: "create a-b hash:ip family inet\ncreate a.b hash:ip family inet\n",
  });
  assert.match(created.errors[0]!.message, /ipset a\.b and ipset a-b would both be the policy set a_b/);
});

test("a 125k-line dump (under the size cap) imports with its report in line order, with and without ipset lines", () => {
  const rules = "-A INPUT -j ACCEPT\n".repeat(125_000);
  const plain = `*filter\n:INPUT ACCEPT [0:0]\n${rules}COMMIT\n`;
  const r = importPolicy("iptables-save", plain);
  assert.equal(r.report.length, 125_003);
  // Lines 3 and 125,002 are rules; the document is refused only by the schema's rule limit.
  assert.deepEqual(
    r.errors.map((e) => e.code),
    ["import_invalid_policy"],
  );
  const withSets = `${plain}create s hash:ip family inet\nadd s 10.0.0.1\n`;
  const s = importPolicy("iptables-save", withSets);
  assert.equal(s.report.length, 125_005);
  assert.deepEqual(
    s.report.slice(-3).map((l) => l.line),
    [125_003, 125_004, 125_005],
  );
  assert.equal(s.report[0]!.line, 1);
});

test("200k ipset adds (and dels) import: each member once, in the order added", () => {
  const n = 200_000;
  // maxelem: ipset's default (65536) refuses the 65537th element ("Hash is full").
  const lines = ["create big hash:ip family inet maxelem 262144"];
  for (let i = 0; i < n; i++) lines.push(`add big 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  // A repeated add (-exist) keeps the first place; a del then an add moves the member to the end.
  // (After COMMIT: in the batch of adds before it, the -exist of a later line would not count.)
  lines.push("COMMIT", "add big 10.0.0.0 -exist", "del big 10.0.0.1", "del big 10.0.0.2", "add big 10.0.0.2");
  const r = importPolicy("iptables-save", dump("-A INPUT -m set --match-set big src -j DROP"), {
    ipsets: `${lines.join("\n")}\n`,
  });
  assert.deepEqual(r.errors, []);
  const els = r.policy!.sets.big!.elements;
  assert.equal(els.length, n - 1);
  assert.deepEqual(els.slice(0, 2), ["10.0.0.0", "10.0.0.3"]);
  assert.equal(els[els.length - 1], "10.0.0.2");
});

test("-j SET --add-set to a hash:net given with its contents is refused (nftables refuses interval with dynamic)", () => {
  const r = importPolicy(
    "iptables-save",
    dump("-A INPUT -p tcp --dport 23 -j SET --add-set s src", "-A INPUT -m set --match-set s src -j DROP"),
    { ipsets: "create s hash:net family inet\nadd s 10.0.0.0/8\n" },
  );
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path]),
    [["import_unsupported", "/source/line/2"]],
  );
  assert.match(r.errors[0]!.message, /--add-set s: the set is a hash:net .*interval and dynamic/);
  assert.equal(r.policy!.sets.s!.dynamic, undefined);
  // A hash:ip given with its contents is a set of addresses: the rule adds to it.
  const ok = importPolicy("iptables-save", dump("-A INPUT -p tcp --dport 23 -j SET --add-set s src"), {
    ipsets: "create s hash:ip family inet\nadd s 10.0.0.1\n",
  });
  assert.deepEqual(ok.errors, []);
  assert.deepEqual(ok.policy!.sets.s, { type: "ipv4_addr", elements: ["10.0.0.1"], dynamic: true });
});

test("an element's own timeout is never changed in silence: 0 (permanent) refused, others a warning per set", () => {
  const rule = dump("-A INPUT -m set --match-set bl src -j DROP");
  const create = "create bl hash:ip family inet timeout 300\n";
  const perm = importPolicy("iptables-save", rule, { ipsets: `${create}add bl 192.0.2.1 timeout 0\n` });
  assert.deepEqual(
    perm.errors.map((e) => [e.code, e.path]),
    [["import_unsupported", "/ipsets/line/2"]],
  );
  assert.match(perm.errors[0]!.message, /timeout 0: the element is permanent in ipset.*timeout 300 s/);
  assert.deepEqual(perm.policy!.sets.bl!.elements, []);

  const left = importPolicy("iptables-save", rule, {
    ipsets: `${create}add bl 192.0.2.1 timeout 100\nadd bl 192.0.2.2 timeout 300\nadd bl 192.0.2.3 timeout 7\n`,
  });
  assert.deepEqual(left.errors, []);
  assert.deepEqual(left.policy!.sets.bl!.elements, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
  assert.deepEqual(
    left.warnings.map((w) => [w.code, w.path]),
    [["ipset_element_timeout_dropped", "/sets/bl"]],
  );
  assert.match(
    left.warnings[0]!.message,
    /2 elements had a timeout of their own \(first: 192\.0\.2\.1 timeout 100\).* 300 s/,
  );
  assert.match(
    left.report[1]!.reason ?? "",
    /timeout of the element not kept \(warning: ipset_element_timeout_dropped\)/,
  );

  const none = importPolicy("iptables-save", rule, {
    ipsets: "create bl hash:ip family inet\nadd bl 192.0.2.1 timeout 100\n",
  });
  assert.deepEqual(
    none.errors.map((e) => e.code),
    ["import_invalid_value"],
  );
  assert.match(none.errors[0]!.message, /created without timeout/);
});

test("an ipset named like an nft keyword (Spamhaus drop, log, set, ...) becomes ipset_NAME, said in the report; nft renders it", () => {
  const r = importPolicy("iptables-save", dump("-A INPUT -m set --match-set drop src -j DROP"), {
    ipsets: "create drop hash:net family inet\nadd drop 192.0.2.0/24\n",
  });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(Object.keys(r.policy!.sets), ["ipset_drop"]);
  assert.equal(r.policy!.chains.input!.rules[0]!.match?.saddr, "@ipset_drop");
  assert.match(r.report[0]!.reason ?? "", /ipset drop is the policy set ipset_drop \(drop is an nft keyword\)/);
  const v = validatePolicy(r.policy, { target: "nftables" });
  assert.equal(v.ok, true);
  const n = renderNft(v.policy!);
  assert.ok(n.ok, JSON.stringify(!n.ok && n.errors));
  assert.match(n.text, /add set inet palisade ipset_drop /);
  for (const kw of [
    "log",
    "limit",
    "set",
    "map",
    "counter",
    "table",
    "quota",
    "mark",
    "ct",
    "meta",
    "dynamic",
    "interval",
  ]) {
    const k = importPolicy("iptables-save", dump(`-A INPUT -m set --match-set ${kw} src -j DROP`), {
      ipsets: `create ${kw} hash:ip family inet\n`,
    });
    assert.deepEqual(Object.keys(k.policy!.sets), [`ipset_${kw}`]);
    assert.match(
      k.report[0]!.reason ?? "",
      new RegExp(`ipset ${kw} is the policy set ipset_${kw} \\(${kw} is an nft keyword\\)`),
    );
  }
  // The renamed set and a set really called ipset_drop cannot both be one policy set.
  const both = importPolicy(
    "iptables-save",
    dump("-A INPUT -m set --match-set drop src -j DROP", "-A INPUT -m set --match-set ipset_drop src -j DROP"),
    { ipsets: "create drop hash:ip family inet\n" },
  );
  assert.deepEqual(
    both.errors.map((e) => [e.code, e.path]),
    [["import_conflict", "/source/line/3"]],
  );
});

test("an IPv6 zone id (fe80::1%eth0) is refused with its reason: in an ipset element, in -s, and by validation", () => {
  const zone = /fe80::1%eth0: an address in a policy has no zone id \(%eth0\)/;
  const el = importPolicy("iptables-save", dump("-A INPUT -m set --match-set s6 src -j DROP"), {
    family: "ipv6",
    ipsets: "create s6 hash:ip family inet6\nadd s6 fe80::1%eth0\n",
  });
  assert.deepEqual(
    el.errors.map((e) => [e.code, e.path]),
    [["import_invalid_value", "/ipsets/line/2"]],
  );
  assert.match(el.errors[0]!.message, zone);
  const rule = importPolicy("iptables-save", dump("-A INPUT -s fe80::1%eth0 -j DROP"), { family: "ipv6" });
  assert.deepEqual(
    rule.errors.map((e) => [e.code, e.path]),
    [["import_invalid_value", "/source/line/2"]],
  );
  assert.match(rule.errors[0]!.message, zone);
  const v = validatePolicy({
    chains: {
      input: { table: "filter", hook: "input", rules: [{ match: { saddr: "fe80::1%eth0" }, action: "drop" }] },
    },
  });
  assert.match(v.errors.map((e) => e.message).join("\n"), zone);
  const s = validatePolicy({
    chains: { input: { table: "filter", hook: "input", rules: [{ match: { saddr: "@s" }, action: "drop" }] } },
    sets: { s: { type: "ipv6_addr", elements: ["fe80::1%eth0"] } },
  });
  assert.deepEqual(
    s.errors.map((e) => [e.code, e.path]),
    [["set_element_invalid", "/sets/s/elements/0"]],
  );
});

test("a negated match of an ipset the input does not hold is refused (empty, it matches every packet); with the contents it imports", () => {
  const rules = dump(
    "-A INPUT -m set --match-set allow src -j ACCEPT",
    "-A INPUT -m set ! --match-set allow src -j DROP",
  );
  const r = importPolicy("iptables-save", rules);
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path]),
    [
      ["import_ipset_contents_missing", "/source/line/2"],
      ["import_ipset_contents_missing", "/source/line/3"],
    ],
  );
  assert.match(r.errors[1]!.message, /! --match-set allow src: the input does not hold ipset allow; .*every packet/);
  assert.match(r.errors[1]!.message, /palisade import --ipset FILE` \(API: `ipsets`\)/);
  // Alone (no positive use before it), and in a text script, the same.
  const alone = importPolicy("iptables-save", dump("-A INPUT -m set ! --match-set allow src -j DROP"));
  assert.deepEqual(
    alone.errors.map((e) => e.code),
    ["import_ipset_contents_missing"],
  );
  assert.deepEqual(alone.policy!.sets, {});
  const script = importPolicy("iptables", "iptables -A INPUT -m set ! --match-set allow src -j DROP\n");
  assert.deepEqual(
    script.errors.map((e) => e.code),
    ["import_ipset_contents_missing"],
  );
  for (const ipsets of [
    "create allow hash:net family inet\nadd allow 192.0.2.0/24\n",
    "create allow hash:ip family inet\n",
  ]) {
    const ok = importPolicy("iptables-save", rules, { ipsets });
    assert.deepEqual(ok.errors, []);
    // The negated match could reach IPv6 (a negation is not taken as a family): the IPv6 pass rule first.
    assert.deepEqual(ok.policy!.chains.input!.rules[0]!.match, { family: "ipv6" });
    assert.deepEqual(ok.policy!.chains.input!.rules[2]!.match?.saddr, { not: "@allow" });
  }
});

test("a set created with timeout 0 (fail2ban's) takes element timeouts: permanent by default, own timeouts a warning", () => {
  // fail2ban: `ipset create f2b-sshd hash:ip timeout 0`, then `ipset add f2b-sshd IP timeout 600`.
  const rule = dump("-A INPUT -p tcp --dport 22 -m set --match-set f2b-sshd src -j REJECT");
  const r = importPolicy("iptables-save", rule, {
    ipsets:
      "create f2b-sshd hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n" +
      "add f2b-sshd 192.0.2.1 timeout 512\nadd f2b-sshd 192.0.2.2 timeout 0\nadd f2b-sshd 192.0.2.3\nadd f2b-sshd 192.0.2.4 timeout 90\n",
  });
  assert.deepEqual(r.errors, []);
  // No timeout in the policy: an element without its own is permanent, as in ipset.
  assert.deepEqual(r.policy!.sets.f2b_sshd, {
    type: "ipv4_addr",
    elements: ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
    size: 65536,
  });
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.path]),
    [["ipset_element_timeout_dropped", "/sets/f2b_sshd"]],
  );
  assert.match(
    r.warnings[0]!.message,
    /2 elements had a timeout of their own \(first: 192\.0\.2\.1 timeout 512\).*each is permanent \(the set was created with timeout 0/,
  );
  const add = (el: string) => r.report.find((l) => l.text.includes(el))!;
  assert.match(add("192.0.2.1").reason ?? "", /warning: ipset_element_timeout_dropped/);
  assert.doesNotMatch(add("192.0.2.2").reason ?? "", /warning/);
  // A set created without any timeout still refuses element timeouts, as ipset does.
  const none = importPolicy("iptables-save", rule, {
    ipsets: "create f2b-sshd hash:ip family inet\nadd f2b-sshd 192.0.2.1 timeout 0\n",
  });
  assert.deepEqual(
    none.errors.map((e) => e.code),
    ["import_invalid_value"],
  );
});

test("add, del, flush and destroy act on the set of that ipset name, not on another with the same policy name", () => {
  const rule = dump("-A INPUT -m set --match-set a-b src -j DROP");
  const create = "create a-b hash:ip family inet\nadd a-b 192.0.2.1\n";
  for (const cmd of ["add a_b 192.0.2.9", "del a_b 192.0.2.1", "flush a_b"]) {
    const r = importPolicy("iptables-save", rule, { ipsets: `${create}${cmd}\n` });
    assert.deepEqual(
      r.errors.map((e) => [e.code, e.path]),
      [["import_syntax", "/ipsets/line/3"]],
      cmd,
    );
    assert.match(r.errors[0]!.message, /ipset set a_b was not created earlier in the input \(ipset a-b was/, cmd);
    assert.deepEqual(r.policy!.sets.a_b!.elements, ["192.0.2.1"], cmd);
  }
  // ipset destroy of a set that does not exist removes nothing.
  const d = importPolicy("iptables-save", rule, { ipsets: `${create}destroy a_b\n` });
  assert.deepEqual(d.errors, []);
  assert.deepEqual(d.policy!.sets.a_b, { type: "ipv4_addr", elements: ["192.0.2.1"] });
  assert.deepEqual(d.warnings, []);
  // Its own name still works.
  const own = importPolicy("iptables-save", rule, { ipsets: `${create}del a-b 192.0.2.1\nadd a-b 192.0.2.2\n` });
  assert.deepEqual(own.errors, []);
  assert.deepEqual(own.policy!.sets.a_b!.elements, ["192.0.2.2"]);
});

test("elements are compared as ipset stores them: del finds 2001:DB8::1 as 2001:db8:0::1 and 10.0.0.1 as 10.0.0.1/32", () => {
  const r = importPolicy("iptables-save", dump("-A INPUT -m set --match-set v6 src -j DROP"), {
    family: "ipv6",
    ipsets:
      "create v6 hash:ip family inet6\nadd v6 2001:DB8::1\nadd v6 2001:db8::2\ndel v6 2001:db8:0::1\n" +
      "add v6 2001:0db8:0000:0000:0000:0000:0000:0002 -exist\n",
  });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.policy!.sets.v6!.elements, ["2001:db8::2"]);
  // Without -exist ipset refuses that add: the same element, written otherwise.
  const dup = importPolicy("iptables-save", dump("-A INPUT -m set --match-set v6 src -j DROP"), {
    family: "ipv6",
    ipsets: "create v6 hash:ip family inet6\nadd v6 2001:db8::2\nadd v6 2001:0db8:0000:0000:0000:0000:0000:0002\n",
  });
  assert.deepEqual(
    dup.errors.map((e) => [e.code, e.path]),
    [["import_conflict", "/ipsets/line/3"]],
  );
  assert.match(dup.errors[0]!.message, /2001:db8::2 is in ipset v6 already/);
  const n = importPolicy("iptables-save", dump("-A INPUT -m set --match-set n src -j DROP"), {
    ipsets:
      "create n hash:net family inet\nadd n 10.0.0.1\nadd n 10.0.1.1/32\nadd n 192.0.2.0/24\n" +
      "del n 10.0.0.1/32\ndel n 10.0.1.1\n",
  });
  assert.deepEqual(n.errors, []);
  assert.deepEqual(n.policy!.sets.n!.elements, ["192.0.2.0/24"]);
});

test("a hash:net element with host bits is stored as its network, as ipset does, with a warning naming the change", () => {
  const r = importPolicy("iptables-save", dump("-A INPUT -m set --match-set n src -j DROP"), {
    ipsets:
      "create n hash:net family inet\nadd n 10.0.0.1/24\nadd n 10.0.1.0/24\nadd n 10.0.2.9/23\n" +
      "create n6 hash:net family inet6\nadd n6 2001:DB8::1/64\n",
  });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.policy!.sets.n!.elements, ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/23"]);
  assert.deepEqual(r.policy!.sets.n6!.elements, ["2001:db8::/64"]);
  // Validation had refused 10.0.0.1/24 (address_host_bits): the imported set validates.
  assert.equal(validatePolicy(r.policy, { target: "nftables" }).ok, true);
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.path]),
    [
      ["ipset_element_host_bits", "/sets/n"],
      ["ipset_element_host_bits", "/sets/n6"],
    ],
  );
  assert.match(r.warnings[0]!.message, /2 elements had host bits set \(first: 10\.0\.0\.1\/24 is 10\.0\.0\.0\/24\)/);
  assert.match(
    r.report[1]!.reason ?? "",
    /10\.0\.0\.1\/24 has host bits set: ipset stores the network 10\.0\.0\.0\/24/,
  );
  // ipset refuses a /0 in hash:net ("The value of the CIDR parameter of the IP address is invalid").
  const zero = importPolicy("iptables-save", dump("-A INPUT -m set --match-set n src -j DROP"), {
    ipsets: "create n hash:net family inet\nadd n 0.0.0.0/0\n",
  });
  assert.deepEqual(
    zero.errors.map((e) => e.code),
    ["import_invalid_value"],
  );
  assert.match(zero.errors[0]!.message, /ipset refuses \/0/);
});

test("a zone id inside a range (fe80::1%eth0-fe80::2) is refused with the zone id's reason, naming just the zone", () => {
  const zone = /fe80::1%eth-lan-fe80::2: an address in a policy has no zone id \(%eth-lan\)/;
  const range = "fe80::1%eth-lan-fe80::2";
  const el = importPolicy("iptables-save", dump("-A INPUT -m set --match-set n6 src -j DROP"), {
    family: "ipv6",
    ipsets: `create n6 hash:net family inet6\nadd n6 ${range}\n`,
  });
  assert.deepEqual(
    el.errors.map((e) => [e.code, e.path]),
    [["import_invalid_value", "/ipsets/line/2"]],
  );
  assert.match(el.errors[0]!.message, zone);
  const rule = importPolicy("iptables-save", dump(`-A INPUT -m iprange --src-range ${range} -j DROP`), {
    family: "ipv6",
  });
  assert.deepEqual(
    rule.errors.map((e) => [e.code, e.path]),
    [["import_invalid_value", "/source/line/2"]],
  );
  assert.match(rule.errors[0]!.message, zone);
  const input = (match: object) => ({ table: "filter", hook: "input", rules: [{ match, action: "drop" }] });
  const v = validatePolicy({ chains: { input: input({ saddrRange: range }) } });
  assert.match(v.errors.map((e) => e.message).join("\n"), zone);
  const s = validatePolicy({
    chains: { input: input({ saddr: "@s" }) },
    sets: { s: { type: "ipv6_addr", interval: true, elements: [range] } },
  });
  assert.deepEqual(
    s.errors.map((e) => [e.code, e.path]),
    [["set_element_invalid", "/sets/s/elements/0"]],
  );
  assert.match(s.errors[0]!.message, zone);
  // A zone id in a prefix ends at its '/'.
  const prefix = importPolicy("iptables-save", dump("-A INPUT -s fe80::1%eth0/64 -j DROP"), { family: "ipv6" });
  assert.match(prefix.errors[0]!.message, /no zone id \(%eth0\)/);
});

test("hash:ip: a prefix or range is each of its addresses, as ipset adds them; beyond a /16 refused", () => {
  const r = importPolicy("iptables-save", dump("-A INPUT -m set --match-set a src -j DROP"), {
    ipsets: "create a hash:ip family inet\nadd a 10.0.0.5/30\nadd a 10.0.1.3-10.0.1.1\ndel a 10.0.0.6/31\n",
  });
  assert.deepEqual(r.errors, []);
  // Before: "ipset element 10.0.0.5/30 is not an IPv4 address".
  assert.deepEqual(r.policy!.sets.a!.elements, ["10.0.0.4", "10.0.0.5", "10.0.1.1", "10.0.1.2", "10.0.1.3"]);
  assert.match(r.report[1]!.reason!, /10\.0\.0\.5\/30 is 4 addresses \(10\.0\.0\.4 to 10\.0\.0\.7\): ipset adds each/);
  const big = importPolicy("iptables-save", "", {
    ipsets: "create a hash:ip family inet maxelem 1000000\nadd a 10.0.0.0/15\n",
  });
  assert.match(
    big.errors[0]!.message,
    /10\.0\.0\.0\/15 is 131072 addresses in a hash:ip set; the import expands at most 65536/,
  );
  // hash:net: a range is the fewest prefixes that cover it, as ipset splits it.
  const net = importPolicy("iptables-save", "", { ipsets: "create n hash:net family inet\nadd n 10.0.0.4-10.0.0.1\n" });
  assert.deepEqual(net.policy!.sets.n!.elements, ["10.0.0.1", "10.0.0.2/31", "10.0.0.4"]);
  assert.match(
    net.report[1]!.reason!,
    /the range 10\.0\.0\.4-10\.0\.0\.1 is the 3 prefixes 10\.0\.0\.1, 10\.0\.0\.2\/31, 10\.0\.0\.4/,
  );
  const v6 = importPolicy("iptables-save", "", {
    ipsets: "create b hash:ip family inet6\nadd b 2001:db8::1-2001:db8::3\n",
  });
  assert.match(v6.errors[0]!.message, /ipset takes plain addresses only in a hash:ip set of family inet6/);
});

test("ipset restore text stops at a duplicate add, a del of a missing element, a second create; a script's ipset call changes nothing", () => {
  const restore = (text: string) => importPolicy("iptables-save", "", { ipsets: text });
  const dup = restore("create a hash:ip family inet\nadd a 10.0.0.1\nadd a 10.0.0.1\n");
  assert.deepEqual(
    dup.errors.map((e) => [e.code, e.path]),
    [["import_conflict", "/ipsets/line/3"]],
  );
  assert.match(
    dup.errors[0]!.message,
    /10\.0\.0\.1 is in ipset a already: .*it's already added.*ipset restore stops at this line/,
  );
  assert.deepEqual(restore("create a hash:ip family inet\nadd a 10.0.0.1 -exist\nadd a 10.0.0.1\n").errors, []);
  assert.match(restore("create a hash:ip family inet\ndel a 10.0.0.1\n").errors[0]!.message, /it's not added/);
  assert.match(
    restore("create a hash:ip family inet\ncreate a hash:ip family inet\n").errors[0]!.message,
    /set with the same name already exists/,
  );
  // Lines of `ipset save` in the dump are restore input too.
  const inDump = importPolicy("iptables-save", "create a hash:ip family inet\nadd a 10.0.0.1\nadd a 10.0.0.1\n");
  assert.deepEqual(
    inDump.errors.map((e) => e.path),
    ["/source/line/3"],
  );
  // A script: ipset refuses the call, the script goes on, the set is as it was.
  const script = importPolicy(
    "iptables",
    "ipset create a hash:ip\nipset create a hash:ip\nipset add a 10.0.0.1\nipset add a 10.0.0.1\nipset del a 10.0.0.9\n",
  );
  assert.deepEqual(script.errors, []);
  assert.deepEqual(
    script.report.map((l) => l.status),
    ["imported", "skipped", "imported", "skipped", "skipped"],
  );
  assert.match(script.report[3]!.reason!, /ipset refuses the add without -exist.*the set stays as it was/);
  // ... except a prefix that stops part way: part of it added is refused.
  const part = importPolicy("iptables", "ipset create a hash:ip\nipset add a 10.0.0.2\nipset add a 10.0.0.0/30\n");
  assert.match(
    part.errors[0]!.message,
    /10\.0\.0\.2 is in ipset a already.* after 2 of the 4 addresses of 10\.0\.0\.0\/30/,
  );
  // An executed script's `ipset -exist restore`: the flag holds for every line.
  const rec = (args: string[]) =>
    importRecorded([
      { line: 1, program: "ipset", args, input: "create a hash:ip family inet\nadd a 10.0.0.1\nadd a 10.0.0.1\n" },
    ]);
  assert.deepEqual(rec(["-exist", "restore"]).errors, []);
  assert.match(
    rec(["restore"]).errors[0]!.message,
    /^line 1: ipset restore, line 3 of its input \(add a 10\.0\.0\.1\): 10\.0\.0\.1 is in ipset a already/,
  );
});
