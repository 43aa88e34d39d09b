// iptables command lines and iptables-save text -> policy rules: every match and target the
// issue lists, chain mapping, commands, and the errors for what cannot be represented.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy, formatImportReport } from "../../../src/engine/import/index.ts";
import type { Rule } from "../../../src/engine/policy/index.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { ipv4Rules, IPV6_PASS } from "./import-ipv6-pass.ts";

/**
 * Import one iptables line and return the single rule it became (asserting it imported). An
 * iptables line is IPv4's only: a rule that could reach IPv6 comes after the IPv6 pass rule.
 */
function rule(line: string, chain = "input"): Rule {
  const r = importPolicy("iptables", line);
  const entry = r.report[0]!;
  assert.equal(entry.status, "imported", `${line}: ${entry.reason}`);
  let rules = r.policy?.chains[chain]?.rules;
  if (rules && rules.length === 2) rules = ipv4Rules(rules);
  assert.ok(rules && rules.length === 1, `one rule in ${chain}`);
  return rules[0]!;
}

/** Import one line that must fail; returns the report entry. */
function err(line: string) {
  const r = importPolicy("iptables", line);
  const e = r.report.find((l) => l.status === "error");
  assert.ok(e, `${line} should be an error, got ${JSON.stringify(r.report)}`);
  return e;
}

test("addresses: -s/-d with ! (both spellings), lists, dotted masks, host bits, /32", () => {
  assert.deepEqual(rule("iptables -A INPUT ! -s 10.0.0.0/8 -j DROP").match, { saddr: { not: "10.0.0.0/8" } });
  assert.deepEqual(rule("iptables -A INPUT -s ! 10.0.0.0/8 -j DROP").match, { saddr: { not: "10.0.0.0/8" } });
  assert.deepEqual(rule("iptables -A INPUT -d 192.168.0.0/255.255.0.0,10.1.2.3/32 -j DROP").match, {
    daddr: ["192.168.0.0/16", "10.1.2.3"],
  });
  assert.deepEqual(rule("iptables -A INPUT -s 10.1.2.3/8 -j DROP").match, { saddr: "10.0.0.0/8" });
  assert.deepEqual(rule("ip6tables -A INPUT -s 2001:db8::/32 -j DROP").match, { saddr: "2001:db8::/32" });
  const e = err("iptables -A INPUT -s example.com -j DROP");
  assert.equal(e.token, "example.com");
  assert.equal(
    e.reason,
    "example.com is a host name: iptables resolves it through DNS when it loads the rule, which is not repeatable " +
      "(the answer can change between loads and differ between hosts); replace it with the addresses it stands for",
  );
  // Names starting with a digit, with a mask, and in a list are host names too; localhost gets its addresses.
  for (const [line, name] of [
    ["iptables -A INPUT -d 1e100.net -j DROP", "1e100.net"],
    ["iptables -A INPUT -s mail.example.org/24 -j DROP", "mail.example.org/24"],
    ["iptables -A INPUT -s 10.0.0.1,backup-host -j DROP", "backup-host"],
  ] as const)
    assert.match(
      err(line).reason!,
      new RegExp(`^${name.replaceAll(".", "\\.")} is a host name: .*replace it with the addresses`),
    );
  assert.match(
    err("iptables -A INPUT -s localhost -j ACCEPT").reason!,
    /addresses it stands for \(127\.0\.0\.1, ::1 for IPv6\)$/,
  );
  assert.match(
    err("iptables -A INPUT -s 10.0.0.300 -j DROP").reason!,
    /^10\.0\.0\.300 is not an IPv4\/IPv6 address or prefix$/,
  );
  assert.match(err("iptables -A INPUT -s 10.0.0.0/255.0.255.0 -j DROP").reason!, /not contiguous/);
});

test("a missing address after -s (the hardening seed's blanks) names the option", () => {
  const e = err("iptables -A INPUT -s     -j DROP");
  assert.equal(e.reason, "missing address after -s");
  assert.equal(e.token, "-s");
  assert.equal(e.line, 1);
});

test("protocol, ports, ranges, multiport, services, interfaces with +", () => {
  assert.deepEqual(rule("iptables -A INPUT -p tcp --dport 22 -j ACCEPT").match, { protocol: "tcp", dport: 22 });
  assert.deepEqual(rule("iptables -A INPUT -p udp -m udp --sport 1024:65535 ! --dport :1023 -j ACCEPT").match, {
    protocol: "udp",
    sport: "1024-65535",
    dport: { not: "0-1023" },
  });
  assert.deepEqual(rule("iptables -A INPUT -p tcp -m multiport --dports ssh,80,8000:8080 -j ACCEPT").match, {
    protocol: "tcp",
    dport: [22, 80, "8000-8080"],
  });
  assert.deepEqual(rule("iptables -A INPUT -p 17 -j ACCEPT").match, { protocol: "udp" });
  assert.deepEqual(rule("iptables -A INPUT ! -p icmp -j ACCEPT").match, { protocol: { not: "icmp" } });
  assert.equal(rule("iptables -A INPUT -p all -j ACCEPT").match, undefined);
  assert.deepEqual(rule("iptables -A FORWARD -i eth+ ! -o ppp0 -j ACCEPT", "forward").match, {
    iif: "eth*",
    oif: { not: "ppp0" },
  });
  assert.match(err("iptables -A INPUT --dport 22 -j ACCEPT").reason!, /unknown option --dport/);
  assert.match(
    err("iptables -A INPUT -p icmp -m multiport --dports 1,2 -j ACCEPT").reason!,
    /port matches need -p tcp/,
  );
  assert.match(err("iptables -A INPUT -p icmp -m multiport --ports 1,2 -j ACCEPT").reason!, /port matches need -p tcp/);
});

test("conntrack state, TCP flags and --syn, ICMP types by name and number", () => {
  assert.deepEqual(rule("iptables -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT").match, {
    ctState: ["established", "related"],
  });
  assert.deepEqual(rule("iptables -A INPUT -m conntrack ! --ctstate NEW,UNTRACKED -j ACCEPT").match, {
    ctState: { not: ["new", "untracked"] },
  });
  assert.deepEqual(rule("iptables -A INPUT -p tcp -m tcp --tcp-flags ALL NONE -j DROP").match, {
    protocol: "tcp",
    tcpFlags: { mask: ["fin", "syn", "rst", "psh", "ack", "urg"], compare: [] },
  });
  assert.deepEqual(rule("iptables -A INPUT -p tcp ! --syn -j DROP").match, {
    protocol: "tcp",
    tcpFlags: { not: { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] } },
  });
  assert.deepEqual(rule("iptables -A INPUT -p icmp --icmp-type 8 -j ACCEPT").match, {
    protocol: "icmp",
    icmpType: "echo-request",
  });
  assert.deepEqual(rule("iptables -A INPUT -p icmp -m icmp ! --icmp-type ttl-exceeded -j ACCEPT").match, {
    protocol: "icmp",
    icmpType: { not: "time-exceeded" },
  });
  assert.deepEqual(
    rule("ip6tables -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT").match,
    { protocol: "icmpv6", icmpv6Type: "nd-neighbor-solicit" },
  );
  // A name standing for a type and a code: both (import-real-rules.test.ts covers more).
  assert.deepEqual(rule("iptables -A INPUT -p icmp --icmp-type port-unreachable -j DROP").match, {
    protocol: "icmp",
    icmpType: "destination-unreachable",
    icmpCode: 3,
  });
  assert.match(err("iptables -A INPUT -p conntrack -m state --state SNAT -j DROP").reason!, /protocol conntrack/);
  assert.match(err("iptables -A INPUT -m state --state SNAT -j DROP").reason!, /SNAT/);
});

test("limit, recent, hashlimit, length, mark, connmark, addrtype, comment, rpfilter", () => {
  assert.deepEqual(rule("iptables -A INPUT -m limit --limit 3/min --limit-burst 10 -j ACCEPT").match, {
    limit: { rate: "3/minute", burst: 10 },
  });
  assert.deepEqual(rule("iptables -A INPUT -m limit -j ACCEPT").match, { limit: { rate: "3/hour" } });
  assert.deepEqual(
    rule("iptables -A INPUT -m recent --name ssh --rdest --update --seconds 60 --hitcount 4 -j DROP").match,
    {
      recent: { name: "ssh", mode: "update", seconds: 60, hitcount: 4, side: "destination" },
    },
  );
  const renamed = importPolicy("iptables", "iptables -A INPUT -m recent --name ssh-brute --set");
  assert.deepEqual(ipv4Rules(renamed.policy?.chains.input?.rules)[0]?.match, {
    recent: { name: "ssh_brute", mode: "set", side: "source" },
  });
  assert.match(renamed.report[0]!.reason!, /renamed to ssh_brute/);
  assert.match(err("iptables -A INPUT -m recent --name x -j DROP").reason!, /exactly one of --set/);
  assert.deepEqual(
    rule(
      "iptables -A INPUT -p tcp --dport 22 -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name ssh --hashlimit-htable-expire 120000 -j DROP",
    ).match,
    {
      protocol: "tcp",
      dport: 22,
      meter: { name: "ssh", key: "saddr", rate: "5/second", burst: 3, over: true, timeoutSeconds: 120, size: 65536 },
    },
  );
  assert.deepEqual(rule("iptables -A INPUT -m length ! --length 0:64 -j DROP").match, { length: { not: "0-64" } });
  assert.deepEqual(rule("iptables -A INPUT -m mark --mark 0x1/0xff -j DROP").match, { mark: { value: 1, mask: 255 } });
  assert.deepEqual(rule("iptables -A INPUT -m connmark ! --mark 7 -j DROP").match, { ctmark: { not: 7 } });
  assert.deepEqual(rule("iptables -A INPUT -m addrtype --dst-type BROADCAST,MULTICAST -j DROP").match, {
    daddrType: ["broadcast", "multicast"],
  });
  assert.deepEqual(rule("iptables -A INPUT -m rpfilter --invert -j DROP").match, { rpfilter: "fail" });
  const c = rule('iptables -A INPUT -m comment --comment "ssh from office" -j ACCEPT');
  assert.equal(c.comment, "ssh from office");
  assert.equal(c.match, undefined);
});

test("xtables-addons matches: quota2, iface, geoip, condition, ipp2p, ipv4options, lscan, psd, fuzzy, gradm, dhcpmac", () => {
  const q = importPolicy(
    "iptables",
    "iptables -A OUTPUT -m quota2 --name web --quota 1000000 -j ACCEPT\niptables -A OUTPUT -m quota2 --name web ! --quota 1000000 -j DROP",
  );
  assert.deepEqual(q.policy?.quotas, { web: { mode: "bytes", limit: 1000000 } });
  assert.deepEqual(
    ipv4Rules(q.policy?.chains.output?.rules).map((r) => r.match),
    [{ quota: { name: "web" } }, { quota: { name: "web", invert: true } }],
  );
  assert.match(err("iptables -A OUTPUT -m quota2 --name .hidden --quota 1").reason!, /starts with a dot/);
  assert.match(err("iptables -A OUTPUT -m quota2 --name a/b --quota 1").reason!, /slash/);
  const anon = importPolicy("iptables", "iptables -A OUTPUT -m quota --quota 5000 -j ACCEPT");
  assert.deepEqual(Object.values(anon.policy!.quotas), [{ mode: "bytes", limit: 5000 }]);
  assert.deepEqual(rule("iptables -A INPUT -m iface --iface eth0 --up ! --promisc -j ACCEPT").match, {
    xt: { iface: { interface: "eth0", flags: [{ flag: "up" }, { flag: "promisc", not: true }] } },
  });
  assert.deepEqual(rule("iptables -A INPUT -m geoip ! --src-cc de,FR -j DROP").match, {
    xt: { geoip: { source: ["DE", "FR"], invert: true } },
  });
  assert.deepEqual(rule("iptables -A INPUT -m condition ! --condition web_on -j DROP").match, {
    xt: { condition: { not: "web_on" } },
  });
  assert.deepEqual(rule("iptables -A FORWARD -m ipp2p --edk --bit -j DROP", "forward").match, {
    xt: { ipp2p: ["edk", "bit"] },
  });
  assert.deepEqual(rule("iptables -A INPUT -m ipv4options --flags '!nop,7' --any -j DROP").match, {
    xt: { ipv4options: { flags: [{ option: "nop", not: true }, { option: "record-route" }], any: true } },
  });
  assert.deepEqual(rule("iptables -A INPUT -m lscan --stealth --synscan -j DROP").match, {
    xt: { lscan: ["stealth", "synscan"] },
  });
  assert.deepEqual(rule("iptables -A INPUT -m psd --psd-weight-threshold 21 -j DROP").match, {
    xt: { psd: { weightThreshold: 21 } },
  });
  assert.deepEqual(rule("iptables -A INPUT -m fuzzy --lower-limit 10 --upper-limit 20 -j DROP").match, {
    xt: { fuzzy: { lowerLimit: 10, upperLimit: 20 } },
  });
  assert.deepEqual(rule("iptables -A INPUT -m gradm ! --enabled -j DROP").match, { xt: { gradm: "disabled" } });
  assert.deepEqual(rule("iptables -A INPUT -m dhcpmac --mac 00:50:56:00:00:00/24 -j DROP").match, {
    xt: { dhcpmac: "00:50:56:00:00:00/24" },
  });
});

test("targets: REJECT, LOG, NFLOG, MARK, CONNMARK, ACCOUNT, LOGMARK, IPMARK, TEE, RAWNAT, TARPIT and friends, NAT", () => {
  const a = (line: string, chain = "input") => rule(line, chain).action;
  assert.deepEqual(a("iptables -A INPUT -j REJECT --reject-with tcp-reset"), { type: "reject", with: "tcp-reset" });
  assert.deepEqual(a("ip6tables -A INPUT -j REJECT --reject-with icmp6-adm-prohibited"), {
    type: "reject",
    with: "icmp-admin-prohibited",
  });
  assert.deepEqual(a('iptables -A INPUT -j LOG --log-prefix "drop: " --log-level warning'), {
    type: "log",
    prefix: "drop: ",
    level: "warn",
  });
  assert.deepEqual(a("iptables -A INPUT -j NFLOG --nflog-group 3 --nflog-prefix x"), {
    type: "log",
    group: 3,
    prefix: "x",
  });
  assert.deepEqual(a("iptables -A INPUT -j MARK --set-xmark 0x5/0xffffffff"), { type: "mark", value: 5 });
  assert.deepEqual(a("iptables -A INPUT -j MARK --set-mark 0x10/0xf0"), { type: "mark", value: 16, mask: 0xf0 });
  // --set-mark v/m also sets v's bits outside m (the kernel's mask is v|m); --set-xmark does not.
  assert.deepEqual(a("iptables -A INPUT -j MARK --set-mark 0x101/0xff"), { type: "mark", value: 0x101, mask: 0x1ff });
  assert.deepEqual(a("iptables -A INPUT -j CONNMARK --set-mark 0x3/0x1"), {
    type: "connmark",
    op: "set",
    value: 3,
    mask: 3,
  });
  assert.deepEqual(a("iptables -A INPUT -j MARK --or-mark 0x4"), { type: "mark", value: 4, mask: 4 });
  assert.deepEqual(a("iptables -A INPUT -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff"), {
    type: "connmark",
    op: "save",
  });
  assert.deepEqual(a("iptables -A INPUT -j CONNMARK --set-mark 9"), { type: "connmark", op: "set", value: 9 });
  assert.deepEqual(a("iptables -A INPUT -j LOGMARK --log-level 8 --log-prefix mark:"), {
    type: "logmark",
    level: 8,
    prefix: "mark:",
  });
  assert.deepEqual(a("iptables -A INPUT -p tcp -j TARPIT"), { type: "tarpit" });
  assert.deepEqual(a("iptables -A INPUT -j CHAOS --delude"), { type: "chaos", mode: "delude" });
  for (const [t, type] of [
    ["DELUDE", "delude"],
    ["STEAL", "steal"],
    ["SYSRQ", "sysrq"],
  ] as const)
    assert.deepEqual(a(`iptables -A INPUT -p udp -j ${t}`), { type });
  assert.deepEqual(a("iptables -t raw -A PREROUTING -j CT --notrack", "raw_prerouting"), "notrack");
  assert.deepEqual(a("iptables -t mangle -A POSTROUTING -p udp -j CHECKSUM --checksum-fill", "mangle_postrouting"), {
    type: "checksumFill",
  });
  assert.deepEqual(
    a("iptables -t mangle -A FORWARD -p udp -j DHCPMAC --set-mac AB:CD:EF:00:00:00/24", "mangle_forward"),
    { type: "dhcpmac", setMac: "ab:cd:ef:00:00:00/24" },
  );
  assert.deepEqual(
    a("iptables -t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080", "nat_prerouting"),
    { type: "dnat", to: { address: "10.0.0.2", port: 8080 } },
  );
  assert.deepEqual(
    a("ip6tables -t nat -A PREROUTING -p tcp -j DNAT --to-destination [fd00::2]:80-81", "nat_prerouting"),
    { type: "dnat", to: { address: "fd00::2", port: "80-81" } },
  );
  assert.deepEqual(a("iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE --to-ports 1024-2048", "nat_postrouting"), {
    type: "masquerade",
    port: "1024-2048",
  });
  assert.deepEqual(a("iptables -t nat -A POSTROUTING -j SNAT --to-source 192.0.2.1", "nat_postrouting"), {
    type: "snat",
    to: { address: "192.0.2.1" },
  });
  assert.deepEqual(a("iptables -t nat -A PREROUTING -p tcp -j REDIRECT --to-ports 3128", "nat_prerouting"), {
    type: "redirect",
    port: 3128,
  });
  assert.deepEqual(
    a("iptables -t nat -A PREROUTING -d 198.51.100.0/24 -j NETMAP --to 10.20.0.0/24", "nat_prerouting"),
    { type: "netmap", to: "10.20.0.0/24" },
  );
  assert.match(err("iptables -A INPUT -j TEE --gateway 0.0.0.0").reason!, /invalid/);
  assert.match(err("iptables -A INPUT -j ACCOUNT --addr 10.0.0.0/4 --tname big").reason!, /\/8 or longer/);
  assert.match(err("iptables -A INPUT -j ACCOUNT --addr 10.0.0.0/8").reason!, /two mandatory parameters/);
  assert.match(err("iptables -A INPUT -j LOGMARK --log-prefix 123456789012345678901234567890").reason!, /at most 29/);
  const conflict = importPolicy(
    "iptables",
    "iptables -A INPUT -j ACCOUNT --addr 10.0.0.0/8 --tname t\niptables -A OUTPUT -j ACCOUNT --addr 10.0.0.0/16 --tname t",
  );
  assert.equal(conflict.report[1]!.status, "error");
  assert.match(conflict.report[1]!.reason!, /same --addr/);
});

test("refused and unknown things are errors naming the token", () => {
  const mirror = err("iptables -A INPUT -j MIRROR");
  assert.equal(mirror.token, "MIRROR");
  assert.match(mirror.reason!, /reflection loops/);
  assert.match(err("iptables -A INPUT -j ECHO").reason!, /reflection/);
  assert.equal(err("iptables -A INPUT -m nosuch --x -j DROP").token, "nosuch");
  assert.equal(err("iptables -A INPUT -j NOSUCH").token, "NOSUCH");
  assert.equal(err("iptables -A INPUT -p tcp --bogus 1 -j DROP").token, "--bogus");
  assert.equal(err("iptables -A INPUT -m string --string x --algo bm -j DROP").token, "string");
  assert.equal(err("ip6tables -A INPUT -f -j DROP").token, "-f");
  // QUEUE imports since the queue action (import-nfqueue.test.ts); ULOG stays refused.
  assert.match(err("iptables -A INPUT -j ULOG").reason!, /NFLOG/);
  assert.equal(err("iptables -D INPUT 1").token, "-D");
  assert.equal(err("ipfw add 100 allow all from any to any").token, "allow");
  assert.equal(err("ipfw add 100 deny all from any to any established").token, "established");
  assert.equal(err("iptables -A INPUT -s $UNSET -j DROP").token, "$UNSET");
  assert.equal(err("iptables -A INPUT -j DROP ! ").token, "!");
  assert.match(err("frobnicate --all").reason!, /not an iptables/);
});

test("chains: builtin -> base chains per table, -N user chains (renamed when needed), jumps, -P, -I positions", () => {
  const src = [
    "iptables -N LOG-DROP",
    "iptables -A LOG-DROP -j LOG",
    "iptables -A LOG-DROP -j DROP",
    "iptables -P INPUT DROP",
    "iptables -A INPUT -p tcp --dport 23 -j LOG-DROP",
    "iptables -A INPUT -j ACCEPT",
    "iptables -I INPUT 2 -p tcp --dport 22 -j ACCEPT",
    "iptables -I INPUT -i lo -j ACCEPT",
    "iptables -t nat -N LOG-DROP",
    "iptables -t nat -A POSTROUTING -o eth0 -g LOG-DROP",
    "iptables -t mangle -A OUTPUT -j MARK --set-mark 1",
    "iptables -F",
    "iptables -X nothere",
  ].join("\n");
  const r = importPolicy("iptables", src);
  assert.deepEqual(
    r.report.map((l) => l.status),
    [
      "imported",
      "imported",
      "imported",
      "imported",
      "imported",
      "imported",
      "imported",
      "imported",
      "imported",
      "imported",
      "imported",
      "error",
      "skipped",
    ],
  );
  const p = r.policy!;
  assert.deepEqual(Object.keys(p.chains), ["LOG_DROP", "input", "nat_LOG_DROP", "nat_postrouting", "mangle_output"]);
  assert.match(r.report[0]!.reason!, /named LOG_DROP/);
  assert.equal(p.chains.input?.policy, "drop");
  // iptables' DROP is IPv4's: the first rule lets IPv6 pass (an IPv6 accept), as iptables did.
  assert.deepEqual(p.chains.input?.rules[0]?.match, { family: "ipv6" });
  assert.deepEqual(
    p.chains.input?.rules.map((x) => x.action),
    ["accept", "accept", { type: "jump", chain: "LOG_DROP" }, "accept", "accept"],
  );
  assert.deepEqual(p.chains.input?.rules[3]?.match, { protocol: "tcp", dport: 22 });
  assert.equal(r.report[6]!.path, "/chains/input/rules/3", "paths are computed after later inserts");
  assert.deepEqual(p.chains.nat_postrouting, {
    table: "nat",
    hook: "postrouting",
    rules: [IPV6_PASS, { match: { oif: "eth0" }, action: { type: "goto", chain: "nat_LOG_DROP" } }],
  });
  assert.deepEqual(p.chains.mangle_output?.hook, "output");
  assert.match(r.report[11]!.reason!, /would remove rules added earlier/);
  assert.equal(validatePolicy(p).errors.length, 0);
});

test("a rule without a target counts: it gets a named counter", () => {
  const r = importPolicy("iptables", "iptables -A INPUT -p tcp --dport 80");
  const rule0 = ipv4Rules(r.policy!.chains.input!.rules)[0]!;
  assert.deepEqual(rule0.action, { type: "counter", name: "input_count_1" });
  assert.deepEqual(r.policy!.counters, { input_count_1: {} });
  assert.match(r.report[0]!.reason!, /only counts packets/);
});

test("ip6tables rules are IPv6-only; iptables rules become IPv4-only when the script has both", () => {
  const r = importPolicy(
    "iptables",
    "iptables -A INPUT -p tcp --dport 22 -j ACCEPT\nip6tables -A INPUT -p tcp --dport 22 -j ACCEPT\nip6tables -A INPUT -s fd00::/8 -j DROP",
  );
  assert.deepEqual(
    r.policy!.chains.input!.rules.map((x) => x.match?.family),
    ["ipv4", "ipv6", undefined],
  );
  const only4 = importPolicy("iptables", "iptables -A INPUT -p tcp --dport 22 -j ACCEPT");
  // iptables lines only: family-neutral rules; a chain that only accepts needs no IPv6 pass rule.
  assert.deepEqual(only4.policy!.chains.input!.rules.length, 1);
  assert.equal(only4.policy!.chains.input!.rules[0]!.match?.family, undefined);
  const drops4 = importPolicy("iptables", "iptables -A INPUT -p tcp --dport 23 -j DROP");
  assert.deepEqual(ipv4Rules(drops4.policy!.chains.input!.rules)[0]!.match, { protocol: "tcp", dport: 23 });
  assert.deepEqual(
    drops4.warnings.map((w) => [w.code, w.path]),
    [["ipv4_only_input", "/chains/input/rules/0"]],
  );
});

test("-P in a script with iptables and ip6tables: equal defaults are the chain policy, different ones a final family drop", () => {
  const same = importPolicy(
    "iptables",
    "iptables -P INPUT DROP\nip6tables -P INPUT DROP\nip6tables -A INPUT -p tcp --dport 22 -j ACCEPT",
  );
  assert.equal(same.policy!.chains.input!.policy, "drop");
  const v6only = importPolicy(
    "iptables",
    "ip6tables -P INPUT DROP\niptables -A INPUT -p tcp --dport 22 -j ACCEPT\nip6tables -A INPUT -p tcp --dport 22 -j ACCEPT",
  );
  const input = v6only.policy!.chains.input!;
  assert.equal(input.policy, undefined);
  assert.deepEqual(input.rules.at(-1), {
    comment: "default policy DROP for IPv6 (ip6tables -P)",
    match: { family: "ipv6" },
    action: "drop",
  });
  assert.equal(v6only.report[0]!.path, "/chains/input/rules/2");
  assert.equal(validatePolicy(v6only.policy).errors.length, 0);
});

test("iptables-save: tables, chain headers, counters, quoting, COMMIT", () => {
  const save = [
    "# Generated by iptables-save v1.8.9",
    "*filter",
    ":INPUT DROP [10:600]",
    ":FORWARD ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":my-chain - [0:0]",
    '[3:180] -A INPUT -p tcp -m tcp --dport 22 -m comment --comment "ssh \\"admin\\"" -j ACCEPT',
    "-A INPUT -j my-chain",
    "-A my-chain -j RETURN",
    "COMMIT",
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    "-A POSTROUTING -o eth0 -j MASQUERADE",
    "COMMIT",
  ].join("\n");
  const r = importPolicy("iptables-save", save);
  assert.deepEqual(r.errors, []);
  const p = r.policy!;
  assert.deepEqual(Object.keys(p.chains).sort(), ["input", "my_chain", "nat_postrouting"]);
  assert.equal(p.chains.input?.policy, "drop");
  assert.equal(p.chains.input?.rules[1]?.comment, "ssh 'admin'");
  assert.match(r.report[6]!.reason!, /comment adjusted/);
  assert.equal(r.report.find((l) => l.line === 4)!.status, "skipped", "empty FORWARD with policy ACCEPT adds nothing");
  assert.equal(r.report.find((l) => l.line === 3)!.path, "/chains/input");
  const bad = importPolicy("iptables-save", "-A INPUT -j DROP\n*filter\n-A INPUT -j DROP");
  assert.deepEqual(
    bad.report.map((l) => l.status),
    ["error", "skipped", "imported", "error"],
  );
  assert.match(bad.report[3]!.reason!, /no COMMIT/);
});

test("formatImportReport prints one line per entry and a summary", () => {
  const r = importPolicy("iptables", "# hi\niptables -A INPUT -j MIRROR\niptables -A INPUT -j DROP\n");
  const text = formatImportReport(r.report);
  const lines = text.split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0]!, /^1 {2}skipped +# hi \(comment\)$/);
  assert.match(lines[1]!, /^2 {2}error +iptables -A INPUT -j MIRROR \[at "MIRROR"\] \(MIRROR sends packets back/);
  // Behind the rule that lets IPv6 pass (iptables never saw IPv6).
  assert.match(lines[2]!, /^3 {2}imported +iptables -A INPUT -j DROP -> \/chains\/input\/rules\/1$/);
  assert.equal(lines[3], "1 imported, 0 lifted into presets/forwards, 1 skipped, 1 errors");
});

test("-j LOG without --log-level still reaches the kernel log: kernelLog, so nftables renders the NFLOG copy and a kernel log", async () => {
  const { Policy } = await import("../../../src/engine/policy/index.ts");
  const { renderNft } = await import("../../../src/engine/compile/nft/index.ts");
  const r = importPolicy("iptables", 'iptables -A INPUT -p tcp --dport 139 -j LOG --log-prefix "Portscan:"');
  assert.deepEqual(r.errors, []);
  const rule = ipv4Rules(r.policy!.chains.input!.rules)[0]!;
  assert.deepEqual(rule.action, { type: "log", prefix: "Portscan:", kernelLog: true });
  const out = renderNft(Policy.parse(r.policy));
  assert.ok(out.ok, JSON.stringify(!out.ok && out.errors));
  const logs = out.text.split("\n").filter((l) => l.includes("dport 139"));
  assert.ok(
    logs.some((l) => /log prefix "Portscan:" group 2\b/.test(l)),
    logs.join("\n"),
  );
  // The kernel-log statement: a `log` with a syslog level and no group.
  assert.ok(
    logs.some((l) => /log prefix "Portscan:" level \w+ /.test(l)),
    `no kernel-log statement:\n${logs.join("\n")}`,
  );
});

test("-m policy --proto esp on an ACCEPT rule: imported with a warning that nftables also accepts AH-only traffic there", () => {
  const r = importPolicy(
    "iptables",
    [
      "iptables -A INPUT -m policy --dir in --pol ipsec --proto esp -j ACCEPT",
      "iptables -A INPUT -m policy --dir in --pol ipsec --proto esp -j DROP",
    ].join("\n"),
  );
  assert.deepEqual(r.errors, []);
  assert.match(
    r.report[0]!.reason ?? "",
    /warning: --proto esp cannot be tested on nftables: there this ACCEPT also accepts AH-only/,
  );
  assert.doesNotMatch(r.report[1]!.reason ?? "", /AH-only/, "a DROP only drops less on nftables: no warning");
});

test("-m policy tunnel endpoints: --tunnel-src/--tunnel-dst with ! and masks, --mode tunnel only beside them, one family", () => {
  assert.deepEqual(
    rule(
      "iptables -A INPUT -m policy --dir in --pol ipsec --mode tunnel --tunnel-src 10.1.2.3/255.255.0.0 ! --tunnel-dst 10.0.0.7/32 -j ACCEPT",
    ).match?.ipsec,
    { direction: "in", policy: "ipsec", tunnelSrc: "10.1.0.0/16", tunnelDst: { not: "10.0.0.7" } },
  );
  assert.deepEqual(
    rule("ip6tables -A OUTPUT -m policy --dir out --pol ipsec --tunnel-dst 2001:db8::1 -j ACCEPT", "output").match,
    { family: "ipv6", ipsec: { direction: "out", policy: "ipsec", tunnelDst: "2001:db8::1" } },
  );
  assert.equal(err("iptables -A INPUT -m policy --dir in --pol ipsec --mode tunnel -j ACCEPT").token, "--mode");
  assert.equal(
    err("iptables -A INPUT -m policy --dir in --pol ipsec --mode transport --tunnel-src 10.0.0.1 -j ACCEPT").token,
    "--mode",
  );
  assert.equal(
    err("iptables -A INPUT -m policy --dir in --pol none --tunnel-src 10.0.0.1 -j ACCEPT").token,
    "--tunnel-src",
  );
  assert.equal(
    err("ip6tables -A INPUT -m policy --dir in --pol ipsec --tunnel-src 10.0.0.1 -j ACCEPT").token,
    "10.0.0.1",
  );
  assert.equal(
    err("iptables -A INPUT -m policy --dir in --pol ipsec --tunnel-src 10.0.0.1 --tunnel-dst 2001:db8::1 -j ACCEPT")
      .token,
    "--tunnel-dst",
  );
});

test("-m physdev: bridge ports with + wildcards and !, the is-in/is-out/is-bridged tests and their negations", () => {
  assert.deepEqual(
    rule(
      "iptables -A FORWARD -m physdev --physdev-is-in ! --physdev-in vm+ --physdev-is-out ! --physdev-out x ! --physdev-is-bridged -j ACCEPT",
      "forward",
    ).match,
    { physdev: { iif: { not: "vm*" }, oif: { not: "x" }, isIn: true, isOut: true, isBridged: false } },
  );
  assert.deepEqual(rule("iptables -A FORWARD -m physdev ! --physdev-is-in -j DROP", "forward").match, {
    physdev: { isIn: false },
  });
  assert.equal(err("iptables -A FORWARD -m physdev -j ACCEPT").token, "-m physdev");
  assert.equal(err("iptables -A FORWARD -m physdev --physdev-in a/b -j ACCEPT").token, "a/b");
});
