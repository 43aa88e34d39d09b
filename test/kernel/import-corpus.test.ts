// The import corpus: every real rule file under test/fixtures/import/corpus is imported (a
// script by running it in the sandbox of `palisade import --execute`), rendered and checked
// with `nft -c` inside a namespace of this test; iptables-restore loads each dump in a namespace
// of its own, as the reference. Prints one line per file and the rates; fails when a rate drops
// below its floor, when a file fails that is not in KNOWN_FAILURES (or iptables does not do
// with it what the list says), when a file iptables refuses loads, or when a listed file
// starts to pass (so the list and the floors can only move up).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLab, type NetnsLab } from "../support/netns.ts";
import {
  corpusFiles,
  formatRates,
  iptablesVerdict,
  loadRates,
  measureFile,
  type FileOutcome,
  type IptablesVerdict,
} from "../support/import-corpus.ts";

/** Share of files that import without an error and load (`nft -c`); measured, never lowered. */
// 0.812: freifunk-sargon's check-then-stamp recent lists compile (compile/hitcount.ts);
// 0.828: unifi-ipsec-gateway's -m policy (match ipsec); 0.843: nat-gateway-tos.sh's TOS target.
// 0.875: scripts run in the sandbox of `import --execute` (badflags-dropwall.sh, init-script-gateway.sh).
// 0.890: tor-relay-ddos.sh's connlimit and -j SET (match connlimit, action setUpdate).
// 0.898: five more real dumps (the first five rules.v4 files of the code index not yet in the corpus).
// 0.870: lowered, not by a regression: eight more dumps chosen by a fixed rule (SOURCES) before
// they were read, three of which do not load with iptables-restore either (two match ipsets
// the dump does not create, one has the typo --cstate); the 69 files before still load 62.
// 0.840: lowered again, not by a regression: 17 more dumps chosen by the same fixed rule (SOURCES,
// third round) before they were read; 13 load, 4 are refused (two ipsets, a string match, and a
// jump to the builtin INPUT chain that iptables-restore refuses too).
// 0.851: semantics-home-router's list, checked with 42 hits in 770 s (DROP) and 348 in 17123 s,
// counted where it is stamped (compile/hitcount.ts stampCountedLists; hit counts up to 1024).
// 0.861: ddos-defender's -m tcpmss ! --mss 536:65535 (match tcpMss).
// 0.846: four more dumps by the same rule (SOURCES, fourth round): two load, and iptables-restore
// refuses the other two as well (a template's <SSH_PORT_PLACEHOLDER>, -i in POSTROUTING).
// 0.908: -m set of an ipset the dump does not hold was then declared empty, typed by its use
// (with a warning ipset_contents_missing, no longer emitted; `import --ipset` gave the members):
// six dumps loaded.
// 0.846: lowered, not by a regression of what loads: a positive -m set of an ipset the dump does
// not hold is refused like the negated one (import_ipset_contents_missing), as iptables-restore
// refuses it while the set does not exist; declared empty, its rule acted on none of the host's
// members. The six dumps of 0.908 are refused again (given with their `ipset save`, they load:
// import-corpus-verdicts runs firehol-country-ipset and pi-ap-ipset so).
// 0.867: a dump's sets as its origin repository defines them, in a companion NAME.ipset given as
// `ipsets` (SOURCES): pi-ap-ipset (the repository's `ipset save`, /etc/ipset.conf) and
// pppoe-server (/etc/sysconfig/ipset: both sets created empty, filled per session by ppp's ip-up).
// 0.855: lowered, not by a regression: a fifth round of 20 dumps by the same rule (SOURCES), measured
// as they came: 16 load; iptables-restore refuses 3 as well (a template's AAA_VPS_EXT_IP, lines cut
// with `$` by an editor, ipsets the dump does not hold) and fivem-game-server checks lists no rule sets.
// 0.864: fivem-game-server's --rcheck --hitcount 4 on lists no rule sets, counted where they are
// stamped (nowhere: the check matches no packet, as xt_recent's empty list; compile/hitcount.ts).
// 0.839: lowered, not by a regression: a sixth round of 25 files by a rule fixed before reading
// them (SOURCES: 12 rules.v4, 13 rules.v6), measured as they came: 17 load; then the security
// table (firewall-defender-drop.rules6's DROP policies there) 18. Left: CHECKSUM (2), physdev,
// ip6tables -p icmp, ipsets the dump does not hold (2), a template iptables refuses too.
// 0.846: ssh-2202-web.rules6's ip6tables -p icmp imports with ip6tables' meaning (5a03c42).
// 0.848: a seventh round of 15 ip6tables-save dumps by a rule fixed before reading them (SOURCES),
// measured as they came, with no importer change: 13 load; the other 2 match an owner by a user
// name this machine does not have, which ip6tables-restore refuses here too.
const LOAD_FLOOR = 0.848;

/**
 * The same share over the files a host could be running: those iptables-restore loads here, given
 * the ipsets they match (iptablesVerdict). A file iptables refuses (a template, a typo, a rule
 * iptables does not allow) stays in the corpus and must be refused, but is left out of this rate.
 */
// 0.927: 102 of 110 (the 8 iptables refuses: two templates, --cstate, -m udp without -p udp,
// -i in POSTROUTING, a jump to INPUT, lines cut by an editor, CRLF line ends with an invalid ipset).
// 0.895: the sixth round (SOURCES): 120 of 134 (iptables-restore refuses its template too).
// 0.902: 121 of 134 (90.3 %), ssh-2202-web.rules6 (ip6tables -p icmp).
// 0.911: the seventh round (SOURCES): 134 of 147, all 13 of its files ip6tables-restore loads.
const RUNNABLE_LOAD_FLOOR = 0.911;

/**
 * Files that legitimately do not import or load: the reason (a substring of the first error)
 * and what iptables-restore makes of the file in a namespace of this test (checked).
 */
const KNOWN_FAILURES: Record<string, { reason: string; iptables: IptablesVerdict["kind"] }> = {
  // `-m set ... --packets-gt 3`: ipset's per-element counters (and, further on, dst,dst sets of
  // address and port); the policy has neither. Both also match (and negate) -m set of sets the
  // dump does not hold (import_ipset_contents_missing), which is each file's first error
  // (raw: line 11, before its --packets-gt on line 31; mangle: line 10, before line 28).
  "anti-portscan-raw.rules": {
    reason: "--match-set scanner-ipv4-set src: the input does not hold",
    iptables: "missing-set",
  },
  "anti-portscan-raw-mangle.rules": {
    reason: "! --match-set ipv4-pub-udp-port-set dst: the input does not hold",
    iptables: "missing-set",
  },
  "dotfiles-string-blocklist.rules": { reason: "-m string", iptables: "loads" },
  // -m set of an ipset the dump does not hold (import_ipset_contents_missing): iptables-restore
  // refuses these rules too while the set does not exist; `--ipset` with the host's `ipset save`
  // imports them. Their origin repositories fill these sets from what they do not hold, so no
  // companion .ipset is given (SOURCES, docs/import.md): firehol-country-ipset and
  // ipv6-testbed-router from downloaded lists (firehol's blocklists; IANA's IPv6 allocations),
  // hetzner-docker-user-ipset's `access` from a URL (its `day_whitelist` is created empty and
  // never filled by the repository), voip-debian's SIPFLOOD from /etc/SIPFLOOD.zone.
  "firehol-country-ipset.rules": {
    reason: "--match-set country_hk src: the input does not hold",
    iptables: "missing-set",
  },
  "hetzner-docker-user-ipset.rules": {
    reason: "--match-set access src: the input does not hold",
    iptables: "missing-set",
  },
  "ipv6-testbed-router.rules6": {
    reason: "--match-set iana-allocated src: the input does not hold",
    iptables: "missing-set",
  },
  // Its sets come with it (the repository's rules.ipset, SOURCES); `allow-net-port` is hash:net,port
  // looked up src,dst, a tuple set the import takes (match.tupleSet), but its one element is
  // 0.0.0.0/0,tcp:22, which ipset refuses as well (ipset restore: "The value of the CIDR parameter
  // of the IP address is invalid", measured with ipset 7.17). iptables-restore refuses the file as
  // stored: its CRLF line ends make "table name 'filter' invalid" at line 1.
  "ipset-allow-net-port.rules": {
    reason: "ipset element 0.0.0.0/0,tcp:22: a hash:net,port prefix is /1 to /32",
    iptables: "refuses",
  },
  "voip-debian.rules": { reason: "--match-set SIPFLOOD src: the input does not hold", iptables: "missing-set" },
  // `-A FORWARD -j INPUT`: iptables-restore refuses it too (nf_tables: RULE_APPEND failed,
  // Operation not supported; legacy: line 7 failed); the file's own first line says it fails.
  "kali-rpi-forward-input.rules": { reason: "cannot jump to builtin chain INPUT", iptables: "refuses" },
  // iptables-restore refuses it too: "unknown option --cstate" (conntrack's option is --ctstate).
  "cyber-comp-cstate.rules": { reason: "unknown option --cstate", iptables: "refuses" },
  // A template: iptables-restore refuses it too ("Bad IP address \"AAA_VPS_EXT_IP\"", line 7).
  "forwarder-template.rules": { reason: "AAA_VPS_EXT_IP is not an address", iptables: "refuses" },
  // A template: iptables-restore refuses it too ("invalid port/service `<SSH_PORT_PLACEHOLDER>'").
  "hetzner-ssh-template.rules": { reason: "<SSH_PORT_PLACEHOLDER> is not a port number", iptables: "refuses" },
  // `-A POSTROUTING -i enp2s0 -j MASQUERADE`: iptables-restore refuses it too ("Can't use -i with POSTROUTING").
  "hotspot-limit-router.rules": { reason: "iif cannot match at the postrouting hook", iptables: "refuses" },
  // The file itself does not load: line 30 is -p tcp -m udp (and lines 54-55 use recent --rttl).
  "nexus-pi.rules": { reason: "-m udp only works with -p udp", iptables: "refuses" },
  "opennic-tier2.rules": { reason: "-m string", iptables: "loads" },
  // Lines cut at an editor's width, ending in `$` mid-comment (`... or re$`, `-j $`): an unclosed
  // quote; iptables-restore refuses the file too (legacy: "Couldn't load target `$'", line 25;
  // nf_tables: "Chain '$' does not exist", line 35).
  "oci-web-multiport.rules": { reason: "unterminated double quote", iptables: "refuses" },
  // Sixth round. The IPv6 versions of the two anti-portscan dumps above: -m set of sets the dump
  // does not hold (both repositories create them in a script from their own port lists), then
  // --packets-gt.
  "anti-portscan-raw.rules6": {
    reason: "--match-set scanner-ipv6-set src: the input does not hold",
    iptables: "missing-set",
  },
  "anti-portscan-raw-mangle.rules6": {
    reason: "! --match-set ipv6-pub-udp-ports dst: the input does not hold",
    iptables: "missing-set",
  },
  // libvirt's `-A POSTROUTING -o virbr0 -p udp -m udp --dport 68 -j CHECKSUM --checksum-fill`
  // (mangle): nftables has no statement that fills in a checksum left to offload (the support
  // matrix, action.checksumFill); the iptables target renders it.
  "fuel-kvm-libvirt.rules": {
    reason: "CHECKSUM --checksum-fill is not supported on target nftables",
    iptables: "loads",
  },
  "kon-libvirt-dnat.rules": {
    reason: "CHECKSUM --checksum-fill is not supported on target nftables",
    iptables: "loads",
  },
  // -m physdev --physdev-in/--physdev-out: an inet table sees the bridge, not its ports (matrix).
  "physdev-bridge-log.rules": {
    reason: "bridge port (physdev) is not supported on target nftables",
    iptables: "loads",
  },
  // A template: iptables-restore refuses it too ("invalid mask `24]' specified", line 9).
  "ntp-stratum1-template.rules": {
    reason: "[CONF_LAN_NET/24] is not an IPv4/IPv6 address or prefix",
    iptables: "refuses",
  },
  // Seventh round. `-m owner --uid-owner systemd-resolve` (bwinf-owner-output, line 8) and
  // `! --uid-owner postfix` (vhost-owner-smtp, line 13): the import takes the name as the host's
  // user (meta skuid), and nft resolves it when the rules load, as ip6tables-restore does; this
  // machine has neither user, so `nft -c` says "User does not exist" and ip6tables-restore
  // refuses the file ("owner: Bad value for \"--uid-owner\" option"). The host they came from
  // had the user; with it, both would load (not measured here: no user is added to this machine).
  "bwinf-owner-output.rules6": { reason: "User does not exist", iptables: "refuses" },
  "vhost-owner-smtp.rules6": { reason: "User does not exist", iptables: "refuses" },
};

const lab: NetnsLab = createLab();
let ns: string;
before(async () => {
  ns = await lab.addNamespace();
});
after(() => lab.cleanup());

test("the corpus imports, renders and loads; rates printed", async () => {
  const files = corpusFiles();
  assert.ok(files.length >= 1, "corpus files present");
  const outcomes: FileOutcome[] = [];
  for (const f of files) {
    const o = await measureFile(f, true);
    if (o.stage === "load") {
      const r = await lab.nft(ns, ["-c", "-f", "-"], o.nft, { allowFailure: true });
      if (r.code === 0) o.stage = "ok";
      else
        o.reason = `nft -c: ${(r.stderr || r.stdout).split("\n").find((l) => /Error/.test(l)) ?? r.stderr.slice(0, 200)}`;
    }
    o.iptables = await iptablesVerdict(f);
    outcomes.push(o);
  }
  console.log(formatRates(outcomes));
  const rates = loadRates(outcomes);
  assert.ok(
    rates.loaded / rates.files >= LOAD_FLOOR,
    `load rate ${rates.loaded}/${rates.files} fell below ${LOAD_FLOOR}`,
  );
  assert.ok(
    rates.runnableLoaded / rates.runnableFiles >= RUNNABLE_LOAD_FLOOR,
    `load rate over the files iptables-restore loads, ${rates.runnableLoaded}/${rates.runnableFiles}, fell below ${RUNNABLE_LOAD_FLOOR}`,
  );
  for (const o of outcomes) {
    const known = KNOWN_FAILURES[o.name];
    // Palisade never takes what iptables itself refuses: a guess at a broken file is worse than a refusal.
    if (o.iptables?.kind === "refuses")
      assert.notEqual(o.stage, "ok", `${o.name} loads, yet iptables refuses it (${o.iptables.reason})`);
    if (o.stage === "ok") assert.equal(known, undefined, `${o.name} loads now: take it off KNOWN_FAILURES`);
    else {
      assert.ok(known !== undefined, `${o.name} fails and is not a known failure: [${o.stage}] ${o.reason}`);
      assert.ok(
        o.reason?.includes(known.reason),
        `${o.name} fails for another reason than listed: [${o.stage}] ${o.reason}`,
      );
      assert.equal(
        o.iptables?.kind,
        known.iptables,
        `${o.name}: ${o.iptables?.kind === "loads" ? "iptables-restore loads it" : o.iptables?.reason}; KNOWN_FAILURES says ${known.iptables}`,
      );
    }
  }
});
