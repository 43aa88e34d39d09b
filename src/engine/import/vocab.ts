// The iptables vocabulary the importer translates: protocol names and numbers, ICMP type
// names and numbers (iptables' own spellings and aliases), TCP flags, log levels, reject
// types and a few well-known service names. Values map onto the policy schema's enums.
import type { z } from "zod";
import type { Match, ActionObject, Protocol, LOG_LEVELS } from "../policy/index.ts";

type Proto = z.infer<typeof Protocol>;
type IcmpType = Extract<NonNullable<Match["icmpType"]>, string>;
type Icmpv6Type = Extract<NonNullable<Match["icmpv6Type"]>, string>;
type TcpFlag = NonNullable<Extract<NonNullable<Match["tcpFlags"]>, { mask: unknown }>["mask"]>[number];
export type RejectWith = NonNullable<Extract<ActionObject, { type: "reject" }>["with"]>;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const PROTOCOLS: Record<string, Proto> = {
  tcp: "tcp", "6": "tcp", udp: "udp", "17": "udp", icmp: "icmp", "1": "icmp",
  icmpv6: "icmpv6", "ipv6-icmp": "icmpv6", icmp6: "icmpv6", "58": "icmpv6",
  sctp: "sctp", "132": "sctp", udplite: "udplite", "136": "udplite", dccp: "dccp", "33": "dccp",
  gre: "gre", "47": "gre", esp: "esp", "50": "esp", ah: "ah", "51": "ah",
  igmp: "igmp", "2": "igmp", ipip: "ipip", ipencap: "ipip", "4": "ipip", ipv6: "ipv6", "41": "ipv6",
  ospf: "ospf", ospfigp: "ospf", "89": "ospf", pim: "pim", "103": "pim", vrrp: "vrrp", "112": "vrrp", l2tp: "l2tp", "115": "l2tp",
};
/** Protocols whose header has ports (`--sport`/`--dport` are allowed after `-p`). */
export const PORT_PROTOCOLS: ReadonlySet<Proto> = new Set<Proto>(["tcp", "udp", "sctp", "udplite", "dccp"]);

export const ICMP_BY_NAME: Record<string, IcmpType> = {
  "echo-reply": "echo-reply", pong: "echo-reply",
  "destination-unreachable": "destination-unreachable",
  "source-quench": "source-quench",
  redirect: "redirect",
  "echo-request": "echo-request", ping: "echo-request",
  "router-advertisement": "router-advertisement",
  "router-solicitation": "router-solicitation",
  "time-exceeded": "time-exceeded", "ttl-exceeded": "time-exceeded",
  "parameter-problem": "parameter-problem",
  "timestamp-request": "timestamp-request",
  "timestamp-reply": "timestamp-reply",
  "info-request": "info-request",
  "info-reply": "info-reply",
  "address-mask-request": "address-mask-request",
  "address-mask-reply": "address-mask-reply",
};
export const ICMP_BY_NUMBER: Record<number, IcmpType> = {
  0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect", 8: "echo-request",
  9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem",
  13: "timestamp-request", 14: "timestamp-reply", 15: "info-request", 16: "info-reply",
  17: "address-mask-request", 18: "address-mask-reply",
};
/** iptables names that stand for a type *and* code (`iptables -p icmp -h`): [type, code]. */
export const ICMP_CODE_NAMES: Record<string, [number, number]> = {
  "network-unreachable": [3, 0], "host-unreachable": [3, 1], "protocol-unreachable": [3, 2], "port-unreachable": [3, 3],
  "fragmentation-needed": [3, 4], "source-route-failed": [3, 5], "network-unknown": [3, 6], "host-unknown": [3, 7],
  "network-prohibited": [3, 9], "host-prohibited": [3, 10], "TOS-network-unreachable": [3, 11], "TOS-host-unreachable": [3, 12],
  "communication-prohibited": [3, 13], "host-precedence-violation": [3, 14], "precedence-cutoff": [3, 15],
  "network-redirect": [5, 0], "host-redirect": [5, 1], "TOS-network-redirect": [5, 2], "TOS-host-redirect": [5, 3],
  "ttl-zero-during-transit": [11, 0], "ttl-zero-during-reassembly": [11, 1], "ip-header-bad": [12, 0], "required-option-missing": [12, 1],
};
/** The same for ip6tables (`ip6tables -p icmpv6 -h`). */
export const ICMPV6_CODE_NAMES: Record<string, [number, number]> = {
  "no-route": [1, 0], "communication-prohibited": [1, 1], "beyond-scope": [1, 2], "address-unreachable": [1, 3],
  "port-unreachable": [1, 4], "failed-policy": [1, 5], "reject-route": [1, 6],
  "ttl-zero-during-transit": [3, 0], "ttl-zero-during-reassembly": [3, 1],
  "bad-header": [4, 0], "unknown-header-type": [4, 1], "unknown-option": [4, 2],
};

export const ICMPV6_BY_NAME: Record<string, Icmpv6Type> = {
  "destination-unreachable": "destination-unreachable",
  "packet-too-big": "packet-too-big",
  "time-exceeded": "time-exceeded", "ttl-exceeded": "time-exceeded",
  "parameter-problem": "parameter-problem",
  "echo-request": "echo-request", ping: "echo-request",
  "echo-reply": "echo-reply", pong: "echo-reply",
  "mld-listener-query": "mld-listener-query",
  "mld-listener-report": "mld-listener-report",
  "mld-listener-done": "mld-listener-done", "mld-listener-reduction": "mld-listener-done",
  "router-solicitation": "nd-router-solicit", "nd-router-solicit": "nd-router-solicit",
  "router-advertisement": "nd-router-advert", "nd-router-advert": "nd-router-advert",
  "neighbour-solicitation": "nd-neighbor-solicit", "neighbor-solicitation": "nd-neighbor-solicit", "nd-neighbor-solicit": "nd-neighbor-solicit",
  "neighbour-advertisement": "nd-neighbor-advert", "neighbor-advertisement": "nd-neighbor-advert", "nd-neighbor-advert": "nd-neighbor-advert",
  redirect: "nd-redirect", "nd-redirect": "nd-redirect",
  "router-renumbering": "router-renumbering",
};
export const ICMPV6_BY_NUMBER: Record<number, Icmpv6Type> = {
  1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
  128: "echo-request", 129: "echo-reply", 130: "mld-listener-query", 131: "mld-listener-report",
  132: "mld-listener-done", 133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit",
  136: "nd-neighbor-advert", 137: "nd-redirect", 138: "router-renumbering",
};

/** The six flags `--tcp-flags` knows; ALL means these six, as in iptables. */
export const IPT_TCP_FLAGS: Record<string, TcpFlag> = { SYN: "syn", ACK: "ack", FIN: "fin", RST: "rst", URG: "urg", PSH: "psh" };
export const ALL_TCP_FLAGS: TcpFlag[] = ["fin", "syn", "rst", "psh", "ack", "urg"];

export const LOG_LEVEL_BY_NAME: Record<string, LogLevel> = {
  "0": "emerg", emerg: "emerg", panic: "emerg",
  "1": "alert", alert: "alert",
  "2": "crit", crit: "crit",
  "3": "err", err: "err", error: "err",
  "4": "warn", warn: "warn", warning: "warn",
  "5": "notice", notice: "notice",
  "6": "info", info: "info",
  "7": "debug", debug: "debug",
};

export const REJECT_BY_NAME: Record<string, RejectWith> = {
  "icmp-port-unreachable": "icmp-port-unreachable", "port-unreach": "icmp-port-unreachable",
  "icmp-host-unreachable": "icmp-host-unreachable", "host-unreach": "icmp-host-unreachable",
  "icmp-net-unreachable": "icmp-net-unreachable", "net-unreach": "icmp-net-unreachable",
  "icmp-proto-unreachable": "icmp-proto-unreachable", "proto-unreach": "icmp-proto-unreachable",
  "icmp-net-prohibited": "icmp-net-prohibited", "net-prohib": "icmp-net-prohibited",
  "icmp-host-prohibited": "icmp-host-prohibited", "host-prohib": "icmp-host-prohibited",
  "icmp-admin-prohibited": "icmp-admin-prohibited", "admin-prohib": "icmp-admin-prohibited",
  "tcp-reset": "tcp-reset", "tcp-rst": "tcp-reset",
  // ip6tables spellings, mapped onto the family-neutral names the schema uses.
  "icmp6-port-unreachable": "icmp-port-unreachable", "port-unreachable": "icmp-port-unreachable",
  "icmp6-adm-prohibited": "icmp-admin-prohibited", "adm-prohibited": "icmp-admin-prohibited",
  "icmp6-addr-unreachable": "icmp-host-unreachable", "addr-unreach": "icmp-host-unreachable",
  "icmp6-no-route": "icmp-net-unreachable", "no-route": "icmp-net-unreachable",
};

/** Service names scripts commonly use instead of numbers (a fixed table: the importer reads no files). */
export const SERVICES: Record<string, number> = {
  ftp: 21, "ftp-data": 20, ssh: 22, telnet: 23, smtp: 25, domain: 53, bootps: 67, bootpc: 68, tftp: 69,
  http: 80, www: 80, pop3: 110, ntp: 123, "netbios-ns": 137, "netbios-dgm": 138, "netbios-ssn": 139,
  imap: 143, imap2: 143, snmp: 161, ldap: 389, https: 443, "microsoft-ds": 445, submission: 587,
  ldaps: 636, imaps: 993, pop3s: 995, mysql: 3306, postgresql: 5432, ircd: 6667,
  // More of /etc/services (netbase) as real scripts use them.
  finger: 79, kerberos: 88, auth: 113, ident: 113, sunrpc: 111, nntp: 119, "snmp-trap": 162, bgp: 179,
  irc: 194, isakmp: 500, syslog: 514, printer: 515, "dhcpv6-client": 546, "dhcpv6-server": 547, rtsp: 554,
  ipp: 631, rsync: 873, "domain-s": 853, ftps: 990, socks: 1080, openvpn: 1194, "ms-sql-s": 1433,
  l2tp: 1701, pptp: 1723, radius: 1812, "radius-acct": 1813, nfs: 2049, "ms-wbt-server": 3389, svn: 3690,
  "ipsec-nat-t": 4500, sip: 5060, "sip-tls": 5061, "xmpp-client": 5222, "xmpp-server": 5269, mdns: 5353,
  x11: 6000, "http-alt": 8080, webcache: 8080, git: 9418,
};
