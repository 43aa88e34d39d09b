// Which features each compile target can express: the single source of truth shared by the
// validator (refuses a policy for a target), the nftables and iptables compilers (refuse
// instead of rendering something else) and the agent (which xtables-addons modules a host
// needs). A feature a target cannot express is an `unsupported_on_target` error naming the
// feature, the target, and what would support it.
import { error, type Diagnostic, type Path } from "../diagnostics.ts";
import { hitcountErrors, hitcountIdiomErrors, type TargetCapabilities } from "./hitcount.ts";
import {
  isNegated,
  normalizeAction,
  quotaRuleFills,
  unwrap,
  type Match,
  type Policy,
  type ActionObject,
} from "../policy/index.ts";

export type CompileTarget = "nftables" | "iptables";
export type { TargetCapabilities } from "./hitcount.ts";
export const COMPILE_TARGETS: readonly CompileTarget[] = ["nftables", "iptables"];

/** A kernel module a rendering needs; `xtablesAddons` modules are not in the mainline kernel. */
export interface ModuleNeed {
  module: string;
  xtablesAddons: boolean;
}

export type Support =
  | { supported: true; how: string; needs?: ModuleNeed }
  | { supported: false; reason: string; alternative: string };

export interface FeatureEntry {
  /** What an operator calls it; used in messages. */
  label: string;
  nftables: Support;
  iptables: Support;
}

const yes = (how: string, needs?: ModuleNeed): Support =>
  needs ? { supported: true, how, needs } : { supported: true, how };
const no = (reason: string, alternative: string): Support => ({ supported: false, reason, alternative });
const addon = (module: string): ModuleNeed => ({ module, xtablesAddons: true });
const mainline = (module: string): ModuleNeed => ({ module, xtablesAddons: false });
const USE_IPT = "render with target iptables on a host with xtables-addons";

/**
 * nftables on Linux 6.x cannot give an xtables-addons module's meaning: `why` says what the
 * kernel lacks, `instead` the nearest thing that works; the iptables target always follows.
 */
function nftCannot(why: string, instead: string, module: string): Support {
  return no(why, `${instead}; or ${USE_IPT} (module ${module})`);
}
const REFLECT = no(
  "it sends traffic back to its source (reflection loops, DoS amplification; MIRROR was removed from the kernel)",
  "nothing supports it: Palisade refuses reflection on every target",
);

export const FEATURES = {
  // ---- actions (targets)
  "action.notrack": { label: "NOTRACK", nftables: yes("notrack"), iptables: yes("-j CT --notrack (raw table)") },
  "action.ctHelper": {
    label: "CT --helper (conntrack helper: ftp, tftp, sip, ...)",
    nftables: yes(
      'ct helper object + ct helper set "NAME" in a chain ct_helper_<hook> at priority -199 (after conntrack; raw base chain only, no accept/return/jump before it)',
    ),
    iptables: yes("-j CT --helper NAME (raw table)"),
  },
  "action.reject": { label: "REJECT", nftables: yes("reject with"), iptables: yes("-j REJECT --reject-with") },
  "action.log": {
    label: "LOG",
    nftables: yes("log group 2 (the agent ships it to the API; level/kernelLog add a kernel-log copy)"),
    iptables: yes("-j LOG"),
  },
  "action.nflog": { label: "NFLOG group", nftables: yes("log group"), iptables: yes("-j NFLOG --nflog-group") },
  "action.counter": {
    label: "named counter",
    nftables: yes("named counter object"),
    iptables: yes("rules tagged with comment 'palisade-counter:NAME'; the agent sums their per-rule counters"),
  },
  "action.mark": { label: "MARK", nftables: yes("meta mark set"), iptables: yes("-j MARK --set-xmark") },
  "action.connmark": { label: "CONNMARK", nftables: yes("ct mark set"), iptables: yes("-j CONNMARK") },
  "action.account": {
    label: "ACCOUNT",
    nftables: yes("per-prefix dynamic sets with per-element counters (src and dst)"),
    iptables: yes("-j ACCOUNT --addr --tname", addon("xt_ACCOUNT")),
  },
  "action.logmark": {
    label: "LOGMARK",
    nftables: yes("log group 2 (the agent reads mark and ct mark)"),
    iptables: yes("-j LOGMARK", addon("xt_LOGMARK")),
  },
  "action.logmarkNflog": {
    label: "LOGMARK to an NFLOG group",
    nftables: yes("log group (the agent reads mark and ct mark)"),
    iptables: yes("-j NFLOG --nflog-group (the agent reads mark and ct mark)"),
  },
  "action.ipmark": {
    label: "IPMARK",
    nftables: yes("meta mark set from the raw address bits (@nh) with and/or"),
    iptables: yes("-j IPMARK", addon("xt_IPMARK")),
  },
  "action.tee": {
    label: "TEE",
    nftables: yes("dup to (in a table of family ip/ip6)"),
    iptables: yes("-j TEE --gateway", mainline("xt_TEE")),
  },
  "action.rawsnat": {
    label: "RAWSNAT",
    nftables: yes("stateless payload rewrite (ip saddr set ...) with notrack at raw priority"),
    iptables: yes("-j RAWSNAT (raw/rawpost table)", addon("xt_RAWNAT")),
  },
  "action.rawdnat": {
    label: "RAWDNAT",
    nftables: yes("stateless payload rewrite (ip daddr set ...) with notrack at raw priority"),
    iptables: yes("-j RAWDNAT (raw table)", addon("xt_RAWNAT")),
  },
  "action.tos": {
    label: "TOS (DSCP and ECN)",
    nftables: yes("ip/ip6 dscp set, ip/ip6 ecn set (kept bits: one case each)"),
    iptables: yes("-j TOS --set-tos value/mask"),
  },
  "action.ttl": {
    label: "TTL / hop limit (TTL and HL targets)",
    nftables: yes(
      "ip ttl set N / ip6 hoplimit set N; inc/dec: ip ttl vmap { OLD : jump ttl_v4_NEW } to chains that set the constant (saturating at 255 and 0 as xt_HL)",
    ),
    iptables: yes("-j TTL --ttl-set/--ttl-inc/--ttl-dec, ip6tables -j HL --hl-set/--hl-inc/--hl-dec (mangle table)"),
  },
  "action.queue": {
    label: "NFQUEUE (userspace queue)",
    nftables: yes("queue num N / num A-B, flags bypass, fanout (needs nft_queue in the kernel)"),
    iptables: yes("-j NFQUEUE --queue-num / --queue-balance, --queue-bypass, --queue-cpu-fanout"),
  },
  "action.setUpdate": {
    label: "add to / delete from a set (SET target)",
    nftables: yes("add/delete @set { ip saddr }"),
    iptables: yes("-j SET --add-set/--del-set"),
  },
  "action.tproxy": {
    label: "TPROXY (transparent proxy)",
    nftables: yes(
      "tproxy ip/ip6 to ADDRESS:PORT meta mark set ... accept, then drop (the packet without a transparent socket, as xt_TPROXY)",
    ),
    iptables: yes("-j TPROXY --on-port --on-ip --tproxy-mark"),
  },
  "action.tcpmss": {
    label: "TCPMSS (MSS clamping)",
    nftables: yes("tcp option maxseg size set rt mtu / N"),
    iptables: yes("-j TCPMSS --clamp-mss-to-pmtu / --set-mss"),
  },
  "action.tcpmssWithoutSyn": {
    label: "TCPMSS on a rule that does not match SYN",
    nftables: yes("tcp option maxseg size set (only SYNs carry the option)"),
    iptables: no(
      "the TCPMSS target refuses rules that do not match TCP SYN (--tcp-flags SYN,RST SYN or --syn)",
      "match tcpFlags with syn, or render with target nftables",
    ),
  },
  "action.checksumFill": {
    label: "CHECKSUM --checksum-fill",
    nftables: no(
      "nftables writes a checksum only when it rewrites a header field it knows; no statement fills in a checksum left to the NIC's offload",
      "turn transmit checksum offload off on that device (ethtool -K DEV tx off), or render with target iptables (mainline module xt_CHECKSUM, mangle table)",
    ),
    iptables: yes("-j CHECKSUM --checksum-fill (mangle table)", mainline("xt_CHECKSUM")),
  },
  "action.tarpit": {
    label: "TARPIT",
    nftables: nftCannot(
      "TARPIT answers each segment itself (a SYN with a zero-window SYN-ACK, later segments with zero-window ACKs) without a socket; an nftables rule can only answer with reject (an RST or ICMP error) or synproxy (which completes the handshake for a real listener), never forge other segments",
      "use drop (the peer retransmits its SYN until it gives up, about two minutes on Linux)",
      "xt_TARPIT",
    ),
    iptables: yes("-j TARPIT", addon("xt_TARPIT")),
  },
  "action.delude": {
    label: "DELUDE",
    nftables: nftCannot(
      "DELUDE forges a SYN-ACK for every SYN without a listener; an nftables rule can only answer with reject (an RST or ICMP error), and synproxy's SYN-ACK leads to a real listener",
      "use reject with tcp-reset (the port then reads closed, not open)",
      "xt_DELUDE",
    ),
    iptables: yes("-j DELUDE", addon("xt_DELUDE")),
  },
  "action.chaos": {
    label: "CHAOS",
    nftables: nftCannot(
      "CHAOS answers at random with DELUDE or TARPIT, neither of which an nftables rule can send",
      "use reject with tcp-reset or drop",
      "xt_CHAOS",
    ),
    iptables: yes("-j CHAOS", addon("xt_CHAOS")),
  },
  "action.steal": {
    label: "STEAL",
    nftables: no(
      "an nftables rule's verdicts are accept, drop, queue, continue, return, jump and goto: NF_STOLEN is not one of them (STEAL differs from drop only in that a local sender in OUTPUT gets no EPERM)",
      `use drop, or ${USE_IPT} (module xt_STEAL)`,
    ),
    iptables: yes("-j STEAL", addon("xt_STEAL")),
  },
  "action.sysrq": {
    label: "SYSRQ",
    nftables: nftCannot(
      "SYSRQ verifies a salted SHA hash and a sequence number in the packet and then calls the kernel's SysRq handler; nftables has neither a hash verification nor a statement that triggers SysRq",
      "use an out-of-band console (IPMI, serial) for a hung host",
      "xt_SYSRQ",
    ),
    iptables: yes("-j SYSRQ", addon("xt_SYSRQ")),
  },
  "action.dhcpmac": {
    label: "DHCPMAC target",
    nftables: yes(
      "@th,288,BITS set PREFIX (the BOOTP client address) with udp checksum set 0: a raw write leaves the checksum stale, and 0 means none in IPv4 UDP",
    ),
    iptables: yes("-j DHCPMAC --set-mac", addon("xt_DHCPMAC")),
  },
  "action.echo": { label: "ECHO", nftables: REFLECT, iptables: REFLECT },
  "action.mirror": { label: "MIRROR", nftables: REFLECT, iptables: REFLECT },
  "action.masquerade": { label: "MASQUERADE", nftables: yes("masquerade"), iptables: yes("-j MASQUERADE") },
  "action.snat": { label: "SNAT", nftables: yes("snat to"), iptables: yes("-j SNAT --to-source") },
  "action.dnat": { label: "DNAT", nftables: yes("dnat to"), iptables: yes("-j DNAT --to-destination") },
  "action.redirect": { label: "REDIRECT", nftables: yes("redirect to"), iptables: yes("-j REDIRECT --to-ports") },
  "action.netmap": { label: "NETMAP", nftables: yes("snat/dnat prefix to"), iptables: yes("-j NETMAP --to") },

  // ---- core matches with target-specific limits
  "match.namedSet": {
    label: "named address set",
    nftables: yes("named set (@name; an imported ipset keeps its name, sanitised)"),
    iptables: yes(
      "-m set --match-set pal_<name> (ipset; the agent loads the `ipsets` part with `ipset restore` first)",
    ),
  },
  "match.tcpFlagsEcnCwr": {
    label: "TCP flags ECN/CWR",
    nftables: yes("tcp flags"),
    iptables: no("the iptables tcp match only knows FIN, SYN, RST, PSH, ACK and URG", "render with target nftables"),
  },
  "match.negatedList": {
    label: "negated list of several addresses, interfaces or ICMP types",
    nftables: yes("anonymous set with !="),
    iptables: no(
      "iptables can negate only one address or interface per rule",
      "negate a named address set (@name, rendered as ipset), split the rule, or render with target nftables",
    ),
  },
  "match.limit": { label: "limit", nftables: yes("limit rate"), iptables: yes("-m limit") },
  "match.limitOver": {
    label: "limit over",
    nftables: yes("limit rate over"),
    iptables: yes("-m hashlimit --hashlimit-above (one bucket)"),
  },
  "match.meter": {
    label: "rate meter",
    nftables: yes("meter / dynamic set with limit"),
    iptables: yes("-m hashlimit"),
  },
  "match.recent": {
    label: "recent",
    nftables: yes("set with timeouts (add/update/delete @set); one set per window a list is checked with"),
    iptables: yes("-m recent"),
  },
  "match.routingHeader": {
    label: "IPv6 routing header (rt)",
    nftables: yes("rt type / rt seg-left (exthdr rt exists when neither is given)"),
    iptables: yes("ip6tables -m rt --rt-type / --rt-segsleft"),
  },
  "match.tcpMss": {
    label: "TCP MSS option (tcpmss)",
    nftables: yes("tcp option maxseg size; negated: maxseg missing, or size outside (two rules)"),
    iptables: yes("-m tcpmss --mss"),
  },
  "match.socket": {
    label: "local socket (socket) with wildcard",
    nftables: yes("socket transparent 1 (with transparent) / socket transparent 0-1 (any socket)"),
    iptables: yes("-m socket --nowildcard [--transparent]"),
  },
  "match.socketNoWildcard": {
    label: "local socket (socket) without wildcard listeners",
    // nft_socket (Linux 6.x): `socket wildcard` stops the rule (NFT_BREAK) for a socket that is
    // not a full socket, where xt_socket skips its any-address test and matches.
    nftables: no(
      "nft's socket wildcard cannot be read for a half-open or time-wait connection's socket (the rule stops), where xt_socket matches it (the handshake's last ACK, a late FIN), so no nft expression skips only listeners bound to the any-address",
      "give wildcard: true (iptables --nowildcard: a listener bound to the any-address at the packet's destination port counts too), or render with target iptables",
    ),
    iptables: yes("-m socket [--transparent]"),
  },
  "match.socketRestoreMark": {
    label: "socket --restore-skmark",
    nftables: no(
      "nft's socket mark stops the rule for a half-open or time-wait connection's socket, where xt_socket still matches (leaving the packet mark) and the rule's action runs",
      "set the mark with a connmark restore or a mark action, or render with target iptables",
    ),
    iptables: yes("-m socket --restore-skmark"),
  },
  "match.recentHitcount": {
    label: "recent --hitcount",
    nftables: yes(
      "a counting chain of slot sets and a blocked set, up to 1024 (a list only set and rcheck'd is counted at its set rules)",
    ),
    // How large a hit count may be depends on the host's kernel: see hitcount.ts.
    iptables: yes("-m recent --hitcount (up to what the host's xt_recent accepts)"),
  },
  "match.rpfilter": {
    label: "reverse-path check",
    nftables: yes("fib saddr . iif oif missing"),
    iptables: yes("-m rpfilter (raw/mangle PREROUTING)"),
  },
  "match.rpfilterOutsidePrerouting": {
    label: "reverse-path check outside raw/mangle prerouting",
    nftables: yes("fib saddr . iif oif missing"),
    iptables: no(
      "the iptables rpfilter match is only valid in the raw and mangle PREROUTING chains",
      "put the rule in a raw or mangle chain on hook prerouting, or render with target nftables",
    ),
  },
  "match.daddrType": {
    label: "destination address type",
    nftables: yes("fib daddr type"),
    iptables: yes("-m addrtype --dst-type"),
  },
  "match.socketOwner": {
    label: "socket owner (uid/gid)",
    nftables: yes("meta skuid / meta skgid"),
    iptables: yes("-m owner --uid-owner / --gid-owner"),
  },
  "match.ctStatus": {
    label: "conntrack status",
    nftables: yes("ct status & (...) != 0"),
    iptables: yes("-m conntrack --ctstate DNAT,SNAT / --ctstatus"),
  },
  "match.ctStatusMixed": {
    label: "conntrack status: snat/dnat together with other bits",
    nftables: yes("ct status & (...) != 0"),
    iptables: no(
      "iptables tests snat/dnat (--ctstate) and the other status bits (--ctstatus) in different options",
      "split the rule, or render with target nftables",
    ),
  },
  "match.ctOriginal": {
    label: "conntrack original tuple (protocol, addresses, ports)",
    nftables: yes("ct original protocol / ip saddr / proto-src ..."),
    iptables: yes("-m conntrack --ctproto --ctorigsrc --ctorigdstport ..."),
  },
  "match.ctOriginalPortRelated": {
    label: "conntrack original ports in a rule that related packets reach",
    nftables: no(
      "nft types ct original proto-src/proto-dst only after meta l4proto, which an ICMP error related to the connection does not pass",
      "add ctState without related (e.g. [new]) to the rule, or render with target iptables",
    ),
    iptables: yes("-m conntrack --ctorigsrcport / --ctorigdstport"),
  },
  "match.statistic": {
    label: "statistic (random / every nth packet)",
    nftables: yes("numgen random mod 2^31 < p*2^31 / numgen inc mod every == packet"),
    iptables: yes("-m statistic --mode random|nth"),
  },
  "match.time": {
    label: "time of day, weekdays, dates (UTC)",
    nftables: yes(
      "meta hour (UTC seconds of the day) / meta day (weekday in the kernel's time zone: UTC unless sys_tz is set) / meta time",
    ),
    iptables: yes("-m time (UTC)"),
  },
  "match.macSource": {
    label: "source MAC address (prerouting, input, forward)",
    nftables: yes("ether saddr"),
    iptables: yes("-m mac --mac-source"),
  },
  "match.physdev": {
    label: "bridge port (physdev)",
    nftables: no(
      "a table of family ip, ip6 or inet sees a bridged packet with the bridge as its interface (br_netfilter hands the bridge device to the IP hooks: measured on Linux 6.18, meta iifname is br0, never the port), and no nft expression of those families reads the bridge port (meta ibrname/obrname exist only in the bridge family, and name the bridge there)",
      "match the bridge itself with iif/oif (all its ports), or filter by port in an nft table of family bridge (meta iifname PORT), which Palisade does not manage; or render with target iptables (-m physdev, a mainline module)",
    ),
    iptables: yes("-m physdev", mainline("xt_physdev")),
  },
  "match.addressRange": {
    label: "address range",
    nftables: yes("ip saddr A-B"),
    iptables: yes("-m iprange --src-range / --dst-range"),
  },
  "match.tupleSet": {
    label: "tuple set lookup (ipset hash:ip,port / hash:net,port)",
    nftables: yes("a concatenated set: ip saddr . meta l4proto . th dport @set"),
    iptables: yes("ipset hash:ip,port / hash:net,port; -m set --match-set NAME src,dst"),
  },
  "match.pktType": { label: "packet type", nftables: yes("meta pkttype"), iptables: yes("-m pkttype --pkt-type") },
  "match.connlimit": {
    label: "connection count per address (connlimit)",
    nftables: yes("add @set { ip saddr ct count over N }"),
    iptables: yes("-m connlimit"),
  },
  "match.dscp": { label: "DSCP", nftables: yes("ip dscp / ip6 dscp"), iptables: yes("-m dscp --dscp") },
  "match.ttl": { label: "TTL / hop limit", nftables: yes("ip ttl / ip6 hoplimit"), iptables: yes("-m ttl / -m hl") },
  "match.ipsec": {
    label: "IPsec policy",
    nftables: yes("meta ipsec exists|missing (in) / rt ipsec exists|missing (out)"),
    iptables: yes("-m policy --dir --pol"),
  },
  "match.ipsecTunnel": {
    label: "IPsec tunnel endpoints",
    nftables: yes(
      "ipsec in|out ip|ip6 saddr|daddr: the outer addresses of the packet's first SA, tunnel mode only (xt_policy without --strict tries every SA of the packet)",
    ),
    iptables: yes("-m policy --mode tunnel --tunnel-src / --tunnel-dst"),
  },
  "match.ipsecProtocolEsp": {
    label: "IPsec policy protocol esp",
    // nft cannot test an SA's protocol; targetSupport warns (validate/target.ts).
    nftables: yes("not tested: any security association matches (a validation warning says so)"),
    iptables: yes("-m policy --proto esp"),
  },
  "match.ipsecProtocolOther": {
    label: "IPsec policy protocol ah/ipcomp",
    nftables: no(
      "nftables cannot test a security association's protocol",
      "drop protocol (every SA then matches), or render with target iptables",
    ),
    iptables: yes("-m policy --proto ah|ipcomp"),
  },
  "match.fragment": {
    label: "non-first IPv4 fragment",
    nftables: yes("ip frag-off & 0x1fff != 0"),
    iptables: yes("-f"),
  },
  "match.icmpCode": {
    label: "ICMP/ICMPv6 code",
    nftables: yes("icmp code / icmpv6 code"),
    iptables: yes("-m icmp --icmp-type TYPE/CODE"),
  },
  "match.quota": {
    label: "quota2",
    nftables: yes("named quota (or counter for grow) object"),
    iptables: yes("-m quota2", addon("xt_quota2")),
  },
  "match.quotaNoChange": {
    label: "quota2 --no-change on a byte budget",
    nftables: no(
      "an nftables quota (nft_quota) adds every packet it evaluates to its usage; the kernel has no read-only test of a byte budget",
      `count packets (mode: packets, where --no-change is supported), or test the quota in the one rule that counts and set a mark there (action mark), then match the mark in the other rules; or ${USE_IPT} (module xt_quota2)`,
    ),
    iptables: yes("-m quota2 --no-change", addon("xt_quota2")),
  },
  "match.quotaNoChangePackets": {
    label: "quota2 --no-change on a packet budget or a growing counter",
    nftables: yes(
      "packet budget: the set quota_NAME_spent, filled by the packet that takes the last unit (the counting rules become two rules and need a terminating action), tested with != @quota_NAME_spent; growing counter: no expression (always matches, counts nothing)",
    ),
    iptables: yes("-m quota2 --no-change", addon("xt_quota2")),
  },
  "match.quotaMixedInvert": {
    label: "quota used both inverted and not",
    nftables: no(
      "an nftables quota is 'until' or 'over' for every rule that uses it",
      `declare two quotas, or ${USE_IPT} (module xt_quota2)`,
    ),
    iptables: yes("-m quota2 [!] --quota", addon("xt_quota2")),
  },
  "match.quotaBucket": {
    label: "quota2 bytebucket (grow on a rule of a quota that other rules count down)",
    nftables: nftCannot(
      "an nftables quota only consumes: a packet can only add to its used bytes, and no rule can give bytes back or raise its limit (only the control plane can: `reset quotas`, or an update of the object's limit, which keeps what was used); a counter cannot be compared with another counter or a quota",
      "give the counting-down rules a fixed budget (a quota with a limit) and count the filling traffic with a growing quota (quotas.NAME.grow) to watch it; if every rule of the quota grows, declare quotas.NAME.grow instead",
      "xt_quota2",
    ),
    iptables: yes("-m quota2 --grow on the filling rules, -m quota2 on the others", addon("xt_quota2")),
  },
  // ---- xtables-addons matches
  "match.condition": {
    label: "condition match",
    nftables: yes("meta nfproto @condition_NAME (a set the agent fills while the operator has NAME on)"),
    iptables: yes("-m condition", addon("xt_condition")),
  },
  "match.geoip": {
    label: "geoip match",
    nftables: yes(
      "ip saddr|daddr @geo_v4_CC / ip6 ... @geo_v6_CC: per-country interval sets the agent fills from the API's country data (docs/geoip.md)",
    ),
    iptables: yes("-m geoip", addon("xt_geoip")),
  },
  "match.iface": {
    label: "iface match",
    nftables: nftCannot(
      "no nftables expression reads an interface's flags (IFF_UP, IFF_RUNNING, IFF_PROMISC, ...): meta iif/oif and iiftype name the device and its link type, not its state",
      "match the interface by name (iif/oif; a down interface passes no packets), or its type for loopback",
      "xt_iface",
    ),
    iptables: yes("-m iface", addon("xt_iface")),
  },
  "match.ipp2p": {
    label: "ipp2p match",
    nftables: nftCannot(
      "ipp2p searches each payload for protocol signatures at varying offsets; nftables compares payload only at fixed offsets (no search, no loop)",
      "match the protocols' ports, or send the traffic to a userspace classifier through NFQUEUE (such as nDPI; not part of Palisade)",
      "xt_ipp2p",
    ),
    iptables: yes("-m ipp2p", addon("xt_ipp2p")),
  },
  "match.ipv4options": {
    label: "ipv4options match",
    nftables: yes(
      "ip option lsrr|ssrr|rr|ra exists|missing (the kernel's IPv4 option walker); any: one rule per option, with a verdict",
    ),
    iptables: yes("-m ipv4options", addon("xt_ipv4options")),
  },
  "match.ipv4optionsOther": {
    label: "ipv4options other than lsrr, ssrr, record-route and router-alert",
    nftables: nftCannot(
      "the kernel's nftables IPv4 option walker (nft_exthdr) finds only lsrr, ssrr, record-route and router-alert; another option sits at an offset that depends on the options before it, which a fixed-offset payload match cannot follow",
      "test lsrr, ssrr, record-route or router-alert only",
      "xt_ipv4options",
    ),
    iptables: yes("-m ipv4options", addon("xt_ipv4options")),
  },
  "match.length2": {
    label: "length2 match (layer 3 or 4)",
    nftables: yes(
      "meta length; layer4: ip hdrlength . ip length in a set (IPv4), ip6 length without extension headers (IPv6)",
    ),
    iptables: yes("-m length2", addon("xt_length2")),
  },
  "match.length2Layer5": {
    label: "length2 --layer5",
    nftables: nftCannot(
      "the transport payload starts after a header whose length varies per packet (TCP's data offset); nftables cannot subtract one field from another, and nft 1.0.6 mis-encodes tcp doff in a concatenation (a set written 5 . 5 . 40-50 lists back as 0 . 0 . 0, measured)",
      "match the layer-4 length (transport header included)",
      "xt_length2",
    ),
    iptables: yes("-m length2 --layer5", addon("xt_length2")),
  },
  "match.lscan": {
    label: "lscan --stealth",
    nftables: yes(
      "ct state invalid,untracked with TCP flags other than a SYN, a RST or a RST-ACK (xt_lscan's test for a packet without a conntrack entry)",
    ),
    iptables: yes("-m lscan", addon("xt_lscan")),
  },
  "match.lscanConnection": {
    label: "lscan --synscan, --cnscan, --grscan",
    nftables: yes(
      "the connection's stages (SYN-ACK, handshake ACK, payload from each side) recorded in conntrack labels 120-123 by two base chains after conntrack (prerouting, output); the rule tests them on the initiator's FIN or RST (compile/nft/lscan.ts)",
    ),
    iptables: yes("-m lscan", addon("xt_lscan")),
  },
  "match.psd": {
    label: "psd match",
    nftables: yes(
      "dynamic sets per rule: saddr . dport (known ports), a per-source token bucket that each new port takes its weight from, and the detected sources; every timeout the delay threshold (compile/nft/psd.ts)",
    ),
    iptables: yes("-m psd", addon("xt_psd")),
  },
  "match.fuzzy": {
    label: "fuzzy match",
    nftables: nftCannot(
      "xt_fuzzy matches with a probability a fuzzy controller adapts to the measured rate between the two limits; an nftables limit is a token bucket with one fixed rate",
      "use limit with over at the upper limit (a hard threshold instead of a gradual one)",
      "xt_fuzzy",
    ),
    iptables: yes("-m fuzzy", addon("xt_fuzzy")),
  },
  "match.gradm": {
    label: "gradm match",
    nftables: nftCannot(
      "gradm tests grsecurity's RBAC state, which exists in no mainline kernel (grsecurity's patches are not public since 2017), so a 6.x kernel has nothing to test",
      "drop the match",
      "xt_gradm, on a grsecurity kernel",
    ),
    iptables: yes("-m gradm", addon("xt_gradm")),
  },
  "match.dhcpmac": {
    label: "dhcpmac match",
    nftables: yes("@th,288,BITS: the BOOTP client hardware address, 28 bytes into the UDP payload"),
    iptables: yes("-m dhcpmac", addon("xt_DHCPMAC")),
  },

  // ---- named objects
  "object.quotaPackets": {
    label: "packet-counting quota",
    nftables: yes(
      "one element of the dynamic set quota_NAME_packets carrying a token bucket of N packets (limit rate 1/week burst N packets): N packets pass, then none, plus one packet a week; N from 1 to 30,500",
    ),
    iptables: yes("-m quota2 --packets", addon("xt_quota2")),
  },
  "object.setIfname": {
    label: "interface-name set",
    nftables: yes("set of type ifname"),
    iptables: no(
      "ipset has no interface-name set type",
      "list the interfaces in the rule, or render with target nftables",
    ),
  },
  "object.setIntervalDynamic": {
    label: "interval set that rules add to (interval and dynamic)",
    nftables: no(
      "the kernel refuses a set with both flags interval and dynamic (Operation not supported)",
      "keep the prefixes in one set and the addresses the rules add in another (no interval), or render with target iptables",
    ),
    iptables: yes("ipset hash:net; -j SET adds the packet's address as a host entry"),
  },
  "object.setMark": {
    label: "mark set",
    nftables: yes("set of type mark"),
    iptables: no("ipset has no plain mark set type", "match marks in the rule, or render with target nftables"),
  },

  "object.rawpostTable": {
    label: "rawpost table",
    nftables: yes("a chain at postrouting after source NAT"),
    iptables: yes("*rawpost table", addon("xt_RAWNAT")),
  },
  "object.securityTable": {
    label: "security table",
    nftables: yes("a filter chain at priority security (after filter) on input, forward or output"),
    iptables: yes("*security table", mainline("iptable_security")),
  },

  // ---- forwarding and protections (expanded into plain rules)
  "forward.portfw": {
    label: "port forward (PORTFW)",
    nftables: yes("dnat with numgen map"),
    iptables: yes("DNAT with -m statistic"),
  },
  "forward.autofw": {
    label: "port-range forward (AUTOFW -h)",
    nftables: yes("dnat to range"),
    iptables: yes("DNAT with a port range"),
  },
  "forward.mfw": {
    label: "mark-based forward (FWMARK/mfw)",
    nftables: yes("mark + dnat map"),
    iptables: yes("MARK + DNAT per mark"),
  },
  "protection.antiSpoofing": {
    label: "anti-spoofing",
    nftables: yes("expanded rules"),
    iptables: yes("expanded rules (rpfilter in raw PREROUTING)"),
  },
  "protection.icmpFlood": { label: "ICMP flood", nftables: yes("expanded rules"), iptables: yes("expanded rules") },
  "protection.bogusPackets": {
    label: "bogus packets",
    nftables: yes("expanded rules"),
    iptables: yes("expanded rules"),
  },
  "protection.rstFlood": { label: "RST flood", nftables: yes("expanded rules"), iptables: yes("expanded rules") },
  "protection.synFlood": {
    label: "SYN flood",
    nftables: yes("expanded rules (recent hit count; meter with burst)"),
    iptables: yes("expanded rules (recent; hashlimit with burst)"),
  },
  "protection.portScanTrap": {
    label: "port-scan trap",
    nftables: yes("expanded rules (timeout set)"),
    iptables: yes("expanded rules (recent)"),
  },
  "protection.portKnock": {
    label: "port knocking",
    nftables: yes("expanded rules (timeout sets)"),
    iptables: yes("expanded rules (recent)"),
  },
  "protection.spaKnock": {
    label: "single-packet authorisation (pknock UDP mode)",
    nftables: yes("expanded rules (timeout set, NFLOG knock); the Palisade agent verifies the HMAC"),
    iptables: no(
      "the knock's HMAC is verified by the Palisade agent, which applies nftables only; an iptables rendering would log knocks nobody verifies",
      "render with target nftables, or write -m pknock --opensecret/--closesecret rules for xtables-addons yourself",
    ),
  },
} as const satisfies Record<string, FeatureEntry>;

export type Feature = keyof typeof FEATURES;

export function supportOf(feature: Feature, target: CompileTarget): Support {
  return FEATURES[feature][target];
}

/** One place in a policy where a feature is used. */
export interface FeatureUse {
  feature: Feature;
  path: Path;
}

const XT_MATCH_FEATURE: Record<string, Feature> = {
  condition: "match.condition",
  geoip: "match.geoip",
  iface: "match.iface",
  ipp2p: "match.ipp2p",
  ipv4options: "match.ipv4options",
  lscan: "match.lscan",
  psd: "match.psd",
  fuzzy: "match.fuzzy",
  gradm: "match.gradm",
  dhcpmac: "match.dhcpmac",
  length2: "match.length2",
};

/** The IPv4 options nft_exthdr's walker finds (compile/nft/match-xt.ts renders them). */
const NFT_IPV4_OPTION_NAMES: ReadonlySet<string> = new Set(["lsrr", "ssrr", "record-route", "router-alert"]);

const ACTION_FEATURE: Partial<Record<ActionObject["type"], Feature>> = {
  notrack: "action.notrack",
  ctHelper: "action.ctHelper",
  reject: "action.reject",
  counter: "action.counter",
  mark: "action.mark",
  connmark: "action.connmark",
  account: "action.account",
  logmark: "action.logmark",
  ipmark: "action.ipmark",
  tee: "action.tee",
  rawsnat: "action.rawsnat",
  rawdnat: "action.rawdnat",
  checksumFill: "action.checksumFill",
  setUpdate: "action.setUpdate",
  tcpmss: "action.tcpmss",
  tproxy: "action.tproxy",
  tos: "action.tos",
  ttl: "action.ttl",
  queue: "action.queue",
  tarpit: "action.tarpit",
  delude: "action.delude",
  chaos: "action.chaos",
  steal: "action.steal",
  sysrq: "action.sysrq",
  dhcpmac: "action.dhcpmac",
  echo: "action.echo",
  mirror: "action.mirror",
  masquerade: "action.masquerade",
  snat: "action.snat",
  dnat: "action.dnat",
  redirect: "action.redirect",
  netmap: "action.netmap",
};

function listLength(v: unknown): number {
  return Array.isArray(v) ? v.length : 1;
}

/** Features a match uses. `where` gives the chain context for table/hook-bound features. */
export function matchFeatures(m: Match, path: Path, where?: { table: string; hook?: string }): FeatureUse[] {
  const out: FeatureUse[] = [];
  const at = (feature: Feature, ...rest: Array<string | number>) => out.push({ feature, path: [...path, ...rest] });
  for (const key of ["saddr", "daddr"] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    const items = Array.isArray(value) ? value : [value];
    if (items.some((i) => i.startsWith("@"))) at("match.namedSet", key);
    if (negated && items.length > 1) at("match.negatedList", key);
  }
  for (const key of ["iif", "oif"] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    if (negated && listLength(value) > 1) at("match.negatedList", key);
  }
  for (const key of ["icmpType", "icmpv6Type"] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    if (negated && listLength(value) > 1) at("match.negatedList", key);
  }
  if (m.tcpFlags) {
    const f = unwrap(m.tcpFlags).value;
    if ([...f.mask, ...f.compare].some((x) => x === "ecn" || x === "cwr")) at("match.tcpFlagsEcnCwr", "tcpFlags");
  }
  if (m.tcpMss !== undefined) at("match.tcpMss", "tcpMss");
  if (m.routingHeader !== undefined) at("match.routingHeader", "routingHeader");
  if (m.limit) at(m.limit.over ? "match.limitOver" : "match.limit", "limit");
  if (m.meter) at("match.meter", "meter");
  if (m.recent) {
    at("match.recent", "recent");
    if (m.recent.hitcount !== undefined) at("match.recentHitcount", "recent", "hitcount");
  }
  if (m.rpfilter) {
    at("match.rpfilter", "rpfilter");
    if (
      where &&
      !(
        (where.table === "raw" || where.table === "mangle") &&
        (where.hook === undefined || where.hook === "prerouting")
      )
    ) {
      at("match.rpfilterOutsidePrerouting", "rpfilter");
    }
  }
  if (m.daddrType) at("match.daddrType", "daddrType");
  if (m.icmpCode !== undefined) at("match.icmpCode", "icmpCode");
  if (m.skuid !== undefined) at("match.socketOwner", "skuid");
  if (m.skgid !== undefined) at("match.socketOwner", "skgid");
  if (m.ctStatus !== undefined) {
    const bits = unwrap(m.ctStatus).value;
    const nat = bits.filter((b) => b === "snat" || b === "dnat").length;
    at(nat > 0 && nat < bits.length ? "match.ctStatusMixed" : "match.ctStatus", "ctStatus");
  }
  if (m.ctOriginal !== undefined) {
    at("match.ctOriginal", "ctOriginal");
    if ((m.ctOriginal.sport !== undefined || m.ctOriginal.dport !== undefined) && relatedMayReach(m))
      at("match.ctOriginalPortRelated", "ctOriginal");
  }
  if (m.statistic !== undefined) at("match.statistic", "statistic");
  if (m.time !== undefined) at("match.time", "time");
  if (m.macSource !== undefined) at("match.macSource", "macSource");
  if (m.physdev !== undefined) at("match.physdev", "physdev");
  if (m.saddrRange !== undefined) at("match.addressRange", "saddrRange");
  if (m.daddrRange !== undefined) at("match.addressRange", "daddrRange");
  if (m.tupleSet !== undefined) at("match.tupleSet", "tupleSet");
  if (m.fragment !== undefined) at("match.fragment", "fragment");
  if (m.pktType !== undefined) at("match.pktType", "pktType");
  if (m.dscp !== undefined) at("match.dscp", "dscp");
  if (m.socket !== undefined) {
    at(m.socket.wildcard ? "match.socket" : "match.socketNoWildcard", "socket");
    if (m.socket.restoreMark) at("match.socketRestoreMark", "socket", "restoreMark");
  }
  if (m.ttl !== undefined) at("match.ttl", "ttl");
  if (m.connlimit !== undefined) at("match.connlimit", "connlimit");
  if (m.ipsec !== undefined) {
    at("match.ipsec", "ipsec");
    if (m.ipsec.tunnelSrc !== undefined) at("match.ipsecTunnel", "ipsec", "tunnelSrc");
    if (m.ipsec.tunnelDst !== undefined) at("match.ipsecTunnel", "ipsec", "tunnelDst");
    if (m.ipsec.protocol)
      at(m.ipsec.protocol === "esp" ? "match.ipsecProtocolEsp" : "match.ipsecProtocolOther", "ipsec", "protocol");
  }
  if (m.quota) {
    at("match.quota", "quota");
    if (m.quota.noChange) at("match.quotaNoChange", "quota", "noChange");
  }
  if (m.xt) {
    for (const [k, v] of Object.entries(m.xt)) {
      const f = XT_MATCH_FEATURE[k];
      if (f && v !== undefined) at(f, "xt", k);
    }
    const o = m.xt.ipv4options;
    if (o?.flags.some((f) => !NFT_IPV4_OPTION_NAMES.has(f.option)))
      at("match.ipv4optionsOther", "xt", "ipv4options", "flags");
    if (m.xt.length2?.layer === "layer5") at("match.length2Layer5", "xt", "length2", "layer");
    if (m.xt.lscan?.some((x) => x !== "stealth")) at("match.lscanConnection", "xt", "lscan");
  }
  return out;
}

/** True unless the rule's ctState excludes related packets (ICMP errors of a connection are related). */
function relatedMayReach(m: Match): boolean {
  if (m.ctState === undefined) return true;
  const { value, negated } = unwrap(m.ctState);
  return value.includes("related") !== negated;
}

/** Every feature use in a policy, in document order. */
export function featureUses(policy: Policy): FeatureUse[] {
  const out: FeatureUse[] = [];
  const quotaInvert = new Map<string, boolean>();
  for (const [cname, chain] of Object.entries(policy.chains)) {
    if (chain.table === "rawpost") out.push({ feature: "object.rawpostTable", path: ["chains", cname, "table"] });
    if (chain.table === "security") out.push({ feature: "object.securityTable", path: ["chains", cname, "table"] });
    chain.rules.forEach((rule, i) => {
      const base: Path = ["chains", cname, "rules", i];
      if (rule.match) {
        const uses = matchFeatures(rule.match, [...base, "match"], { table: chain.table, hook: chain.hook });
        const q = rule.match.quota;
        // --no-change is native for packet budgets and growing counters, not for byte budgets.
        const def = q ? policy.quotas[q.name] : undefined;
        const exact = def !== undefined && (def.grow === true || def.mode === "packets");
        for (const u of uses)
          out.push(u.feature === "match.quotaNoChange" && exact ? { ...u, feature: "match.quotaNoChangePackets" } : u);
        const fills = q !== undefined && quotaRuleFills(def, q);
        if (fills) out.push({ feature: "match.quotaBucket", path: [...base, "match", "quota", "grow"] });
        // A --no-change test of a packet budget reads its own set, never the bucket: it may be
        // inverted freely; a filling rule always matches, so its invert means nothing.
        if (q && !(q.noChange && exact) && !fills) {
          const inv = q.invert === true;
          const seen = quotaInvert.get(q.name);
          if (seen === undefined) quotaInvert.set(q.name, inv);
          else if (seen !== inv)
            out.push({ feature: "match.quotaMixedInvert", path: [...base, "match", "quota", "invert"] });
        }
      }
      const a = normalizeAction(rule.action);
      if (a.type === "log") {
        out.push({ feature: a.group !== undefined ? "action.nflog" : "action.log", path: [...base, "action"] });
      } else if (a.type === "logmark" && a.group !== undefined) {
        out.push({ feature: "action.logmarkNflog", path: [...base, "action"] });
      } else if (a.type === "tcpmss" && !matchesSyn(rule.match)) {
        out.push({ feature: "action.tcpmssWithoutSyn", path: [...base, "action"] });
      } else {
        const f = ACTION_FEATURE[a.type];
        if (f) out.push({ feature: f, path: [...base, "action"] });
      }
    });
  }
  for (const [name, q] of Object.entries(policy.quotas)) {
    if (q.mode === "packets" && !q.grow) out.push({ feature: "object.quotaPackets", path: ["quotas", name, "mode"] });
  }
  for (const [name, s] of Object.entries(policy.sets)) {
    if (s.type === "ifname") out.push({ feature: "object.setIfname", path: ["sets", name, "type"] });
    if (s.type === "mark") out.push({ feature: "object.setMark", path: ["sets", name, "type"] });
    // setUpdate needs dynamic (references.ts), so this is every interval set a rule updates.
    if (s.interval && s.dynamic) out.push({ feature: "object.setIntervalDynamic", path: ["sets", name, "dynamic"] });
  }
  const fw = policy.forwarding;
  fw.portForwards.forEach((_, i) => out.push({ feature: "forward.portfw", path: ["forwarding", "portForwards", i] }));
  fw.rangeForwards.forEach((_, i) => out.push({ feature: "forward.autofw", path: ["forwarding", "rangeForwards", i] }));
  fw.markForwards.forEach((mf, i) => {
    out.push({ feature: "forward.mfw", path: ["forwarding", "markForwards", i] });
    out.push(
      ...matchFeatures(mf.match, ["forwarding", "markForwards", i, "match"], { table: "mangle", hook: "prerouting" }),
    );
  });
  const p = policy.protections;
  const presets = [
    "antiSpoofing",
    "icmpFlood",
    "bogusPackets",
    "rstFlood",
    "synFlood",
    "portScanTrap",
    "portKnock",
    "spaKnock",
  ] as const;
  for (const k of presets) {
    if (p[k] !== undefined) out.push({ feature: `protection.${k}` as const, path: ["protections", k] });
  }
  return out;
}

/** One sentence: the feature, the target, why not, and what would support it. */
export function unsupportedMessage(feature: Feature, target: CompileTarget): string | null {
  const s = supportOf(feature, target);
  if (s.supported) return null;
  return `${FEATURES[feature].label} is not supported on target ${target}: ${s.reason}; ${s.alternative}.`;
}

/**
 * An `unsupported_on_target` error for every use of a feature the target cannot express,
 * and for values beyond what it can express on the host whose capabilities are given
 * (without them, the oldest kernel Palisade assumes; see hitcount.ts).
 */
export function checkTargetSupport(policy: Policy, target: CompileTarget, caps: TargetCapabilities = {}): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const use of featureUses(policy)) {
    const msg = unsupportedMessage(use.feature, target);
    if (msg) out.push(error(use.path, "unsupported_on_target", msg));
  }
  for (const [cname, chain] of Object.entries(policy.chains)) {
    chain.rules.forEach((rule, i) => {
      if (rule.match) out.push(...hitcountErrors(rule.match, ["chains", cname, "rules", i, "match"], target, caps));
    });
  }
  policy.forwarding.markForwards.forEach((mf, i) =>
    out.push(...hitcountErrors(mf.match, ["forwarding", "markForwards", i, "match"], target, caps)),
  );
  // xt_recent counts the list's stamps natively; only nftables needs the counting idiom.
  if (target === "nftables") {
    const seen = new Set(out.map((d) => d.path));
    out.push(...hitcountIdiomErrors(policy).filter((d) => !seen.has(d.path)));
  }
  return out;
}

/**
 * xtables-addons kernel modules the iptables rendering of a policy needs (sorted, unique), so
 * the agent can compare them with the host's capabilities. Mainline modules are not listed.
 */
export function requiredXtablesModules(policy: Policy): string[] {
  const mods = new Set<string>();
  for (const use of featureUses(policy)) {
    const s = supportOf(use.feature, "iptables");
    if (s.supported && s.needs?.xtablesAddons) mods.add(s.needs.module);
  }
  return [...mods].sort();
}

/** The rule matches only SYNs (SYN in the compared flags, not negated): what xt_TCPMSS insists on. */
function matchesSyn(m: Match | undefined): boolean {
  const f = m?.tcpFlags;
  if (!f || isNegated(f)) return false;
  const v = unwrap(f).value;
  return v.mask.includes("syn") && v.compare.includes("syn");
}
