// Every iptables/ip6tables/ipmasqadm example of the seed documents imports (test/fixtures/import:
// copies with the blanks filled in), with the expected status on every line; the result
// validates; and the nftables it renders loads with `nft -c` inside a throwaway network
// namespace (never the root namespace). The seed file itself, read as written, reports
// its blank addresses as errors with their line numbers.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { importPolicy, type ImportFormat, type ImportResult } from "../../../src/engine/import/index.ts";
import { summarizeImport } from "../../../src/engine/import/report.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";
import { renderIptables } from "../../../src/engine/compile/iptables/index.ts";
import { expandPolicy } from "../../../src/engine/expand/index.ts";
import { PolicyDraft } from "../../../src/engine/import/draft.ts";
import { Collector } from "../../../src/engine/import/collect.ts";
import { importScript } from "../../../src/engine/import/script.ts";
import { assemble } from "../../../src/engine/import/assemble.ts";
import { ipv4Rules } from "./import-ipv6-pass.ts";
import { createLab } from "../../support/netns.ts";

const FIXTURES = join(import.meta.dirname, "../../fixtures/import");
// Verbatim copies of the seed documents the product comes from, so the suite needs nothing outside the repository.
const SEEDS = join(import.meta.dirname, "../../fixtures/seeds");
const lab = createLab();
after(() => lab.cleanup());

function load(
  name: string,
  format: ImportFormat = "iptables",
  variables?: Record<string, string>,
): { source: string; r: ImportResult } {
  const source = readFileSync(join(FIXTURES, name), "utf8");
  return { source, r: importPolicy(format, source, variables ? { variables } : {}) };
}

/** Every physical line of the source has at least one report entry, in order. */
function assertEveryLineReported(source: string, r: ImportResult): void {
  const lines = source.replace(/\n$/, "").split("\n").length;
  const seen = new Set(r.report.map((l) => l.line));
  for (let n = 1; n <= lines; n++) assert.ok(seen.has(n), `line ${n} has no report entry`);
  assert.ok(
    r.report.every((l, i) => i === 0 || r.report[i - 1]!.line <= l.line),
    "report is in line order",
  );
  for (const l of r.report) {
    if (l.status === "error") assert.ok(l.reason && l.reason.length > 0, `error on line ${l.line} has a reason`);
    if (l.status === "imported" || l.status === "lifted")
      assert.ok(l.path, `line ${l.line} (${l.status}) names what it became`);
  }
}

function statuses(r: ImportResult): Record<number, string> {
  const out: Record<number, string> = {};
  for (const l of r.report)
    if (!/^\s*(#|$)/.test(l.text)) out[l.line] = out[l.line] ? `${out[l.line]},${l.status}` : l.status;
  return out;
}

async function nftAccepts(r: ImportResult): Promise<void> {
  assert.ok(r.policy, `policy built: ${JSON.stringify(r.errors.filter((e) => !e.path.startsWith("/source")))}`);
  const v = validatePolicy(r.policy);
  assert.deepEqual(v.errors, [], "imported policy validates");
  const nft = renderNft(r.policy);
  assert.ok(nft.ok, `renders to nftables: ${JSON.stringify(!nft.ok && nft.errors)}`);
  const ns = await lab.addNamespace();
  const check = await lab.nft(ns, ["-c", "-f", "-"], nft.text, { allowFailure: true });
  assert.equal(check.code, 0, `nft -c accepts the render:\n${check.stderr}`);
}

test("hardening seed: spoofing, ICMP, bogus, RST, SYN-flood and port-scan lines import; ipfw drop rules too, dummynet pipes are errors", async () => {
  const { source, r } = load("hardening.sh");
  assertEveryLineReported(source, r);
  const s = statuses(r);
  for (const n of [
    8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 31, 32, 33, 42, 43, 44, 47, 48, 52, 61, 63, 67, 68, 71, 72, 75, 77,
    80, 82,
  ]) {
    assert.equal(s[n], "imported", `line ${n}`);
  }
  for (const n of [23, 26, 27, 39]) assert.equal(s[n], "imported", `ipfw line ${n}`);
  for (const n of [38, 56, 57]) assert.equal(s[n], "error", `ipfw pipe line ${n}`);
  assert.ok(
    r.report.filter((l) => l.status === "error").every((l) => l.token === "pipe" && /dummynet/.test(l.reason!)),
  );
  // ipfw checks packets on their way in (`in`) before routing: mangle prerouting, where a drop is final.
  // verrevpath is a strict reverse-path check; `me` is a local address.
  assert.deepEqual(r.policy?.chains.mangle_prerouting?.rules, [
    { match: { rpfilter: "fail" }, action: "drop" },
    { match: { saddr: "10.0.0.0/8" }, action: "drop" },
    { match: { saddr: "172.16.0.0/12" }, action: "drop" },
    { match: { protocol: "icmp", daddrType: { not: ["local"] } }, action: "drop" },
  ]);
  // Continuation lines carry their command's outcome.
  assert.equal(s[53], "imported");
  assert.deepEqual(summarizeImport(r.report), { imported: 42, lifted: 0, skipped: 38, error: 3 });
  // The idioms are recognised, but here they come after the spoofing rules: lifting them
  // would move them first and change verdicts, so they stay plain and the report says why.
  const syn = r.report.find((l) => l.line === 61)!;
  assert.match(syn.reason!, /synFlood idiom but kept as plain rules/);
  assert.match(r.report.find((l) => l.line === 33)!.reason!, /icmpFlood preset but kept/);
  assert.deepEqual(r.policy?.protections, {});
  // iptables lines only: IPv6 passes the input chain first, as it passed iptables (the ipfw
  // rules in mangle_prerouting, above, cover both families and get no such rule).
  const input = ipv4Rules(r.policy?.chains.input?.rules);
  assert.equal(input.length, 25);
  assert.deepEqual(input[0], { match: { saddr: "10.0.0.0/8" }, action: "drop" });
  assert.deepEqual(input[14], {
    match: { protocol: "icmp", limit: { rate: "1/second" } },
    action: "accept",
  });
  assert.deepEqual(input[20], {
    match: {
      ctState: ["new"],
      protocol: "tcp",
      tcpFlags: { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] },
      recent: { name: "synflood", mode: "update", seconds: 1, hitcount: 60, side: "source" },
    },
    action: "drop",
  });
  await nftAccepts(r);
});

test("hardening idioms placed first lift into the presets, and the expansion equals what they replaced", async () => {
  const source = readFileSync(join(FIXTURES, "idioms-first.sh"), "utf8");
  // The lifter on its own, as for rules that cover both families: without the IPv6 pass rule
  // that an iptables-only input's chains start with (below, where nothing lifts).
  const draft = new PolicyDraft();
  const out = new Collector();
  importScript(source, draft, out);
  draft.ipv4OnlyChains.clear();
  const r = assemble(draft, out, false);
  assertEveryLineReported(source, r);
  assert.deepEqual(summarizeImport(r.report), { imported: 1, lifted: 17, skipped: 4, error: 0 });
  assert.deepEqual(r.policy?.protections, {
    bogusPackets: { enabled: true },
    portScanTrap: { ports: [139], banSeconds: 86400, logPrefix: "Portscan:", forward: true },
    synFlood: { rate: "59/second" },
  });
  // The lifted SYN-flood preset expands to exactly the seed's `--update --seconds 1 --hitcount 60`.
  const upd = expandPolicy(r.policy!).chains.protect_input!.rules.find(
    (x) => x.match?.recent?.mode === "update" && x.match.recent.name === "protect_synflood",
  );
  assert.deepEqual(upd?.match?.recent, {
    name: "protect_synflood",
    mode: "update",
    seconds: 1,
    hitcount: 60,
    side: "source",
  });
  // What stays: the ssh rule; the no-target rules' counters went with them.
  assert.deepEqual(r.policy?.chains, {
    input: {
      table: "filter",
      hook: "input",
      rules: [{ match: { protocol: "tcp", dport: 22 }, action: "accept" }],
    },
  });
  assert.deepEqual(r.policy?.counters, {});
  await nftAccepts(r);
  // Imported as it is (iptables lines only, IPv4's), IPv6 passes each chain first (it never met
  // these rules): lifted, the presets would run before that rule and reach IPv6, so they stay
  // plain rules; with iptables' DROP policy too.
  const plain = importPolicy("iptables", source);
  assert.deepEqual(summarizeImport(plain.report), { imported: 18, lifted: 0, skipped: 4, error: 0 });
  assert.deepEqual(plain.policy?.protections, {});
  assert.deepEqual(plain.policy?.chains.input?.rules[0]?.match, { family: "ipv6" });
  assert.match(
    plain.report.find((l) => l.line === 6)!.reason!,
    /kept as plain rules: input starts with the rule that lets IPv6 pass \(iptables never saw IPv6\), but the preset would run first and reach IPv6/,
  );
  const drop = importPolicy("iptables", `iptables -P INPUT DROP\n${source}`);
  assert.deepEqual(drop.policy?.protections, {});
  assert.deepEqual(drop.policy?.chains.input?.rules[0]?.match, { family: "ipv6" });
  assert.match(
    drop.report.find((l) => l.line === 6)!.reason!,
    /kept as plain rules: input starts with the rule that lets IPv6 pass/,
  );
});

test("xtables-addons manual: ACCOUNT, IPMARK, RAWNAT, TARPIT/NOTRACK, TEE, quota2, pknock, ipv4options", async () => {
  const { source, r } = load("xtables-addons.sh");
  assertEveryLineReported(source, r);
  const s = statuses(r);
  assert.equal(s[5], "imported,imported", "two ACCOUNT commands on one line");
  for (const n of [8, 9, 12, 13, 14, 15, 26, 27, 28, 29, 30, 33, 39, 47, 48, 49, 50])
    assert.equal(s[n], "imported", `line ${n}`);
  assert.equal(s[18], "imported,imported", "RAWDNAT; RAWSNAT");
  for (const n of [21, 22, 23]) assert.equal(s[n], "imported", `SYSRQ line ${n}`);
  assert.equal(s[36], "imported,imported", "bytebucket: the filling rule and the rule that takes from bt");
  assert.equal(s[40], "lifted", "pknock TCP mode");
  assert.equal(s[43], "lifted", "pknock UDP mode: the knock rule");
  assert.equal(s[44], "lifted", "pknock UDP mode: its --checkip rule");
  assert.deepEqual(
    r.report.filter((l) => l.status === "error"),
    [],
  );
  // The SYSRQ line with IPsec: iptables 1.8.9 takes tunnel endpoints only with --mode tunnel,
  // which they imply, so the render adds it (the report says so).
  assert.deepEqual(r.policy?.chains.input?.rules.find((x) => x.match?.ipsec)?.match, {
    saddr: "10.10.25.1",
    daddr: "10.10.25.7",
    protocol: "udp",
    dport: 9,
    ipsec: { direction: "in", policy: "ipsec", protocol: "esp", tunnelSrc: "10.10.25.1", tunnelDst: "10.10.25.7" },
  });
  assert.match(r.report.find((l) => l.line === 22)!.reason ?? "", /--mode tunnel/);
  const p = r.policy!;
  assert.deepEqual(p.accounting, { all_outgoing: { prefix: "0.0.0.0/0" }, sales: { prefix: "192.168.1.0/24" } });
  assert.deepEqual(
    p.chains.forward?.rules.slice(0, 2).map((x) => x.action),
    [
      { type: "account", table: "all_outgoing" },
      { type: "account", table: "sales" },
    ],
  );
  assert.deepEqual(p.chains.mangle_postrouting?.rules[2], {
    match: { family: "ipv4", oif: "eth3" },
    action: { type: "ipmark", addr: "dst", andMask: 0xffff, orMask: 0x10000 },
  });
  assert.deepEqual(p.chains.mangle_prerouting?.rules[0], {
    match: { saddr: "2001:db8::/32" },
    action: { type: "ipmark", addr: "src", shift: 16, andMask: 0xffff },
  });
  assert.deepEqual(p.chains.raw_prerouting?.rules[0]?.action, { type: "rawdnat", to: "199.181.132.250" });
  assert.deepEqual(p.chains.rawpost_postrouting?.rules[0]?.action, { type: "rawsnat", to: "212.201.100.135" });
  assert.deepEqual(p.chains.mangle_prerouting?.rules[1], {
    match: { family: "ipv6", iif: "eth0" },
    action: { type: "tee", gateway: "2001:db8::1" },
  });
  // quota2 decides --grow per rule: bt is a budget that starts empty (no --quota), which the
  // INPUT rule fills and the OUTPUT rule takes from. Neither has a target: both only count.
  // (IPv4: the file also has ip6tables lines.)
  assert.deepEqual(p.quotas, { bt: { mode: "bytes", limit: 0 } });
  const bt = (chain: "input" | "output") => p.chains[chain]?.rules.find((x) => x.match?.quota)?.match;
  assert.deepEqual(bt("input"), { family: "ipv4", protocol: "tcp", dport: 6881, quota: { name: "bt", grow: true } });
  assert.deepEqual(bt("output"), { family: "ipv4", protocol: "tcp", sport: 6881, quota: { name: "bt" } });
  assert.deepEqual(p.protections.portKnock, [
    {
      name: "SSH",
      knockPorts: [4002, 4001, 4004],
      protocol: "tcp",
      port: 22,
      knockTimeoutSeconds: 10,
      openSeconds: 3600,
    },
  ]);
  assert.deepEqual(p.protections.spaKnock, [
    {
      name: "FTP",
      knockPort: 4000,
      protocol: "tcp",
      port: 21,
      openSecret: "foo",
      closeSecret: "bar",
      openSeconds: 240 * 60,
      logGroup: 2,
    },
  ]);
  // The file also has ip6tables lines, so `iptables -P INPUT DROP` is the IPv4 default only:
  // the inet chain keeps ACCEPT and ends with an IPv4 drop.
  assert.equal(p.chains.input?.policy, undefined);
  assert.deepEqual(p.chains.input?.rules.at(-1), {
    comment: "default policy DROP for IPv4 (iptables -P)",
    match: { family: "ipv4" },
    action: "drop",
  });
  assert.deepEqual(validatePolicy(p).errors, []);
  const opts = (n: number) => p.chains.input?.rules.filter((x) => x.match?.xt?.ipv4options)[n]?.match?.xt?.ipv4options;
  assert.deepEqual(opts(0), { flags: [{ option: "nop" }, { option: "timestamp" }] });
  assert.deepEqual(opts(3), { flags: [{ option: "nop", not: true }, { option: "timestamp" }], any: true });
  // The iptables target (xtables-addons syntax) renders all of it, the bytebucket as the
  // manual writes it; nftables refuses exactly TARPIT, SYSRQ (all three lines import now), the
  // options its IPv4 option walker cannot find (nop, timestamp), the bytebucket (no rule can
  // give an nft quota bytes back) and DHCPMAC's bridge ports (an inet table sees the bridge,
  // not its port), each saying why, and renders everything else.
  const ipt = renderIptables(p);
  assert.ok(ipt.ok);
  assert.match(ipt.text, /^-A PAL-input -p tcp -m tcp --dport 6881 -m quota2 --name bt --grow -m comment /m);
  assert.match(ipt.text, /^-A PAL-output -p tcp -m tcp --sport 6881 -m quota2 --name bt -m comment /m);
  // DHCPMAC: the manual's two lines, bridge ports included.
  for (const [dport, dir, mac, setMac] of [
    [67, "in", "00:50:56:00:00:00/24", "ab:cd:ef:00:00:00/24"],
    [68, "out", "ab:cd:ef:00:00:00/24", "00:50:56:00:00:00/24"],
  ])
    assert.ok(
      ipt.text.includes(
        `\n-A PAL-mangle_forward -p udp -m udp --dport ${dport} -m physdev --physdev-${dir} vmnet1 -m dhcpmac --mac ${mac} -j DHCPMAC --set-mac ${setMac}\n`,
      ),
      `DHCPMAC --dport ${dport}`,
    );
  assert.match(
    ipt.text,
    /^-A PAL-input -s 10\.10\.25\.1\/32 -d 10\.10\.25\.7\/32 -p udp -m udp --dport 9 -m policy --dir in --pol ipsec --proto esp --mode tunnel --tunnel-src 10\.10\.25\.1 --tunnel-dst 10\.10\.25\.7 -j SYSRQ$/m,
  );
  const nft = renderNft(p);
  assert.ok(!nft.ok);
  const refused = nft.errors.map(
    (e) =>
      (e.code === "unsupported_on_target" &&
        /^(TARPIT|SYSRQ|ipv4options|quota2 bytebucket|bridge port \(physdev\))/.exec(e.message)?.[1]) ||
      e.message,
  );
  assert.deepEqual(
    [...refused].sort(),
    [
      "SYSRQ",
      "SYSRQ",
      "SYSRQ",
      "TARPIT",
      "TARPIT",
      "TARPIT",
      "bridge port (physdev)",
      "bridge port (physdev)",
      "ipv4options",
      "ipv4options",
      "ipv4options",
      "ipv4options",
      "quota2 bytebucket",
    ],
    JSON.stringify(nft.errors),
  );
  assert.equal(
    nft.errors.find((e) => e.message.startsWith("quota2 bytebucket"))?.path,
    `/chains/input/rules/${p.chains.input!.rules.findIndex((x) => x.match?.quota?.grow)}/match/quota/grow`,
  );
  assert.ok(nft.errors.every((e) => !/nftables has no/.test(e.message)));
  const withoutTarpit = structuredClone(r);
  for (const c of Object.values(withoutTarpit.policy!.chains)) {
    c.rules = c.rules.filter(
      (x) =>
        !(typeof x.action === "object" && (x.action.type === "tarpit" || x.action.type === "sysrq")) &&
        !x.match?.xt?.ipv4options &&
        !x.match?.quota?.grow,
    );
    // DHCPMAC's rewrite and its dhcpmac match load without the bridge port.
    for (const x of c.rules) delete x.match?.physdev;
  }
  await nftAccepts(withoutTarpit);
});

test("kernel port forwarding: PORTFW with preferences and reply masquerading", async () => {
  const { source, r } = load("portfw.sh", "ipmasqadm", { EXTIP: "198.51.100.1" });
  assertEveryLineReported(source, r);
  assert.deepEqual(statuses(r), { 7: "imported", 8: "imported", 10: "lifted", 11: "lifted" });
  assert.deepEqual(r.policy?.forwarding.portForwards, [
    {
      protocol: "tcp",
      address: "198.51.100.1",
      port: 80,
      masquerade: true,
      backends: [
        { address: "192.168.16.27", port: 80, weight: 15 },
        { address: "192.168.16.28", port: 80, weight: 5 },
      ],
    },
  ]);
  await nftAccepts(r);
});

test("kernel port forwarding: FWMARK script with ${VAR} substitution", async () => {
  const { source, r } = load("fwmark.sh", "ipmasqadm");
  assertEveryLineReported(source, r);
  assert.deepEqual(statuses(r), {
    5: "skipped",
    6: "skipped",
    7: "skipped",
    8: "skipped",
    9: "skipped",
    11: "lifted",
    12: "lifted",
    14: "imported",
    15: "imported",
    17: "lifted",
    18: "lifted",
  });
  assert.deepEqual(r.policy?.forwarding.markForwards, [
    {
      mark: 3,
      match: { saddr: { not: "209.81.8.0/24" } },
      backends: [{ address: "192.168.15.46", preference: 10 }],
      active: 0,
      masquerade: true,
    },
    {
      mark: 1,
      match: { saddr: "209.81.8.0/24" },
      backends: [{ address: "192.168.17.3", preference: 10 }],
      active: 0,
      masquerade: true,
    },
  ]);
  await nftAccepts(r);
});

test("kernel port forwarding: AUTOFW -h imports, -c (control port) is refused with the reason", async () => {
  const { source, r } = load("autofw.sh", "ipmasqadm");
  assertEveryLineReported(source, r);
  assert.deepEqual(statuses(r), { 2: "skipped", 3: "imported", 4: "error" });
  const bad = r.report.find((l) => l.line === 4)!;
  assert.equal(bad.token, "-c");
  assert.match(bad.reason!, /control port/);
  assert.deepEqual(r.policy?.forwarding.rangeForwards, [
    { protocol: "udp", ports: "6970-7170", to: "192.168.16.40", masquerade: false },
  ]);
  await nftAccepts(r);
});

test("mirror seed: MIRROR is an error that says why", () => {
  const { r } = load("mirror.sh");
  const line = r.report.find((l) => l.line === 2)!;
  assert.equal(line.status, "error");
  assert.equal(line.token, "MIRROR");
  assert.match(line.reason!, /reflection loops and denial of service/);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]!.code, "import_refused");
  assert.equal(r.errors[0]!.path, "/source/line/2");
});

test("the hardening seed as written: each blank address is an error with its line number", () => {
  const text = readFileSync(join(SEEDS, "iptables-hardening-tricks.txt"), "utf8");
  // Only the seed's iptables lines (with their continuations), at their original line numbers.
  const lines = text.split("\n");
  const kept = lines.map((l, i) => (l.startsWith("iptables ") || (i > 0 && lines[i - 1]!.endsWith("\\")) ? l : ""));
  const r = importPolicy("iptables", kept.join("\n"));
  const errors = r.report.filter((l) => l.status === "error");
  assert.equal(errors.length, 12, "the twelve spoofing lines lost their addresses");
  for (const e of errors) {
    assert.match(e.reason!, /^missing address after -[sd]$/);
    assert.match(e.token!, /^-[sd]$/);
    assert.match(lines[e.line - 1]!, /^iptables -A INPUT -[sd]\s+-j DROP/);
  }
  assert.equal(errors[0]!.line, lines.findIndex((l) => l.startsWith("iptables -A INPUT -s     -j DROP")) + 1);
  // 19 commands (7 of them continued on a second line) import.
  assert.equal(r.report.filter((l) => l.status === "imported").length, 26);
});

test("pknock UDP mode: a --checkip rule without its knock rule, or a knock without -p udp, is refused by name", () => {
  const run = (text: string) => importPolicy("iptables", text);
  const lone = run("-A INPUT -p tcp -m pknock --checkip --name FTP --dport 21 -j ACCEPT\n");
  assert.equal(lone.report[0]?.status, "error");
  assert.match(lone.report[0]?.reason ?? "", /--checkip --name FTP has no knock rule/);
  const tcp = run("-A INPUT -p tcp -m pknock --knockports 4000 --name FTP --opensecret a --closesecret b -j DROP\n");
  assert.match(tcp.report[0]?.reason ?? "", /needs -p udp/);
  const same = run(
    "-A INPUT -p udp -m pknock --knockports 4000 --name FTP --opensecret a --closesecret a -j DROP\n-A INPUT -p tcp -m pknock --checkip --name FTP --dport 21 -j ACCEPT\n",
  );
  assert.match(same.report[1]?.reason ?? "", /must differ/);
  assert.match(same.report[1]?.reason ?? "", /does not fit protections\.spaKnock/);
});

test("pknock TCP mode: a knock the preset cannot hold (one knock port) is refused naming the field", () => {
  const one = importPolicy(
    "iptables",
    "-A INPUT -p tcp -m pknock --knockports 4002 --name SSH --time 10 --dport 22 -j ACCEPT\n",
  );
  assert.equal(one.report[0]?.status, "error");
  assert.match(one.report[0]?.reason ?? "", /does not fit protections\.portKnock: knockPorts/);
});

test("ipmasqadm clears, deletes and double commands: skipped on an empty import, refused otherwise, by name", () => {
  const run = (text: string) => importPolicy("ipmasqadm", text).report.map((l) => [l.status, l.reason ?? ""]);
  const [clearFirst, add, clearAfter] = run(
    "ipmasqadm portfw -f\nipmasqadm portfw -a -P tcp -L 198.51.100.1 80 -R 192.168.16.27 80\nipmasqadm portfw -f\n",
  );
  assert.equal(clearFirst?.[0], "skipped");
  assert.match(clearFirst?.[1] ?? "", /portfw -f: the imported policy starts empty/);
  assert.equal(add?.[0], "imported");
  assert.equal(clearAfter?.[0], "error");
  assert.match(clearAfter?.[1] ?? "", /portfw -f would clear forwards added earlier/);
  const [autoDel, mfwEdit, twice] = run("ipmasqadm autofw -D\nipmasqadm mfw -E -m 1\nipmasqadm mfw -A -F\n");
  assert.match(autoDel?.[1] ?? "", /autofw -D deletes a forward added earlier/);
  assert.match(mfwEdit?.[1] ?? "", /mfw -E changes a forward added earlier/);
  assert.match(twice?.[1] ?? "", /one command per line: -A and -F/);
});
