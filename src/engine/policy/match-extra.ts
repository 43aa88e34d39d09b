// Match keys real rule files needed beyond the core set (the import corpus): socket
// owner, conntrack status bits, address ranges, IPv4 fragments. Each renders on both
// targets (compile/nft/match-extra.ts, compile/iptables/match-extra.ts).
import * as z from "zod";
import { parsePrefix, zoneIdProblem } from "../net/address.ts";
import { Cidr, Interface, Name, PortItem, Protocol, deferred, negatable } from "./primitives.ts";

/** Conntrack status bits: `--ctstate DNAT/SNAT` and `--ctstatus` in iptables, `ct status` in nft. */
export const CT_STATUS = ["expected", "seen-reply", "assured", "confirmed", "snat", "dnat"] as const;

/**
 * A user or group name: POSIX's portable user name (letters, digits, `.`, `_`, `-`), starting
 * with a letter or `_` so it is never read as an id or a range, at most 32 characters (useradd's
 * limit). Both renders hand it to the loading host (iptables getpwnam/getgrnam, nft
 * `meta skuid "name"`); the character set keeps it one token in nft and iptables-restore text.
 */
export const OWNER_NAME = /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/;

/** A user or group id, an inclusive range "low-high", or a name the loading host resolves. */
const IdRange = deferred(() =>
  z.union([
    z.number().int().min(0).max(0xffffffff),
    z.string().regex(OWNER_NAME, 'must be an id, a range "low-high" or a user or group name'),
    z
      .string()
      .regex(/^\d{1,10}-\d{1,10}$/, 'must be an id or a range "low-high"')
      .refine((s) => {
        const [a, b] = s.split("-").map(Number) as [number, number];
        return a <= b && b <= 0xffffffff;
      }, "the range must be low-high with low <= high"),
  ]),
);

/** "first-last": an inclusive address range of one family (`-m iprange`), first <= last. */
export const AddressRange = deferred(() =>
  z.string().refine(
    (s) => {
      const [a, b, ...rest] = s.split("-");
      if (rest.length || !a || !b || a.includes("/") || b.includes("/")) return false;
      const pa = parsePrefix(a);
      const pb = parsePrefix(b);
      return pa !== null && pb !== null && pa.family === pb.family && addressValue(a) <= addressValue(b);
    },
    {
      // A zone id (fe80::1%eth0-fe80::2) gets its own reason.
      error: (iss) =>
        (typeof iss.input === "string" ? zoneIdProblem(iss.input) : undefined) ??
        'must be "first-last", two addresses of one family with first <= last',
    },
  ),
);

/** An address as a number (IPv4) or bigint (IPv6) for ordering ranges. */
export function addressValue(a: string): bigint {
  if (a.includes(":")) {
    const [head, tail = ""] = a.includes("::") ? a.split("::") : [a, ""];
    const h = head ? head.split(":") : [];
    const t = tail ? tail.split(":") : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
    return groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g || "0", 16)), 0n);
  }
  return a.split(".").reduce((acc, o) => (acc << 8n) + BigInt(Number(o)), 0n);
}

const unwrapAddr = (v: string | { not: string }) => (typeof v === "string" ? v : v.not);
type MaybeAddr = string | { not: string } | undefined;
/** Two optional (negatable) addresses are of one family when both are given. */
const oneFamily = (a: MaybeAddr, b: MaybeAddr) =>
  a === undefined || b === undefined || parsePrefix(unwrapAddr(a))?.family === parsePrefix(unwrapAddr(b))?.family;

/**
 * `-m policy --dir in|out --pol ipsec|none [--proto esp|ah|ipcomp] [--mode tunnel --tunnel-src
 * A --tunnel-dst B]`: in is known at prerouting/input/forward (the packet's secpath), out at
 * forward/output/postrouting (its route). `protocol`: one of the packet's security
 * associations uses it. `tunnelSrc`/`tunnelDst`: the outer addresses of a tunnel-mode SA
 * (iptables takes them only with `--mode tunnel`), of the rule's own family.
 */
export const IpsecMatch = deferred(() =>
  z
    .strictObject({
      direction: z.enum(["in", "out"]),
      policy: z.enum(["ipsec", "none"]),
      protocol: z.enum(["esp", "ah", "ipcomp"]).optional(),
      tunnelSrc: negatable(Cidr).optional(),
      tunnelDst: negatable(Cidr).optional(),
    })
    .refine((m) => m.protocol === undefined || m.policy === "ipsec", {
      message: "protocol needs policy: ipsec (a packet without IPsec has no security association)",
      path: ["protocol"],
    })
    .refine((m) => (m.tunnelSrc === undefined && m.tunnelDst === undefined) || m.policy === "ipsec", {
      message: "tunnelSrc/tunnelDst need policy: ipsec (a packet without IPsec has no tunnel)",
      path: ["policy"],
    })
    .refine((m) => oneFamily(m.tunnelSrc, m.tunnelDst), {
      message: "tunnelSrc and tunnelDst must be of one family",
      path: ["tunnelDst"],
    }),
);

/** The address family of an IPsec match's tunnel endpoints, if it names any. */
export function ipsecTunnelFamily(m: z.infer<typeof IpsecMatch>): "ipv4" | "ipv6" | undefined {
  const v = m.tunnelSrc ?? m.tunnelDst;
  return v === undefined ? undefined : parsePrefix(unwrapAddr(v))?.family;
}

export const PKT_TYPES = ["host", "broadcast", "multicast", "other"] as const;

/**
 * `-m socket` (xt_socket): the packet belongs to a local socket, found by the kernel's socket
 * lookup (an established, time-wait or half-open connection's, or a listener's). Without
 * `wildcard`, listeners bound to the any-address (0.0.0.0 / ::) do not count (xt_socket's
 * default: a local service must not capture forwarded traffic); `wildcard: true` is
 * `--nowildcard` (they count too). `transparent`: only sockets with IP_TRANSPARENT
 * (`--transparent`). `restoreMark`: a matching full socket's mark is copied to the packet
 * (`--restore-skmark`). Prerouting and input only, as the kernel allows.
 */
export const SocketMatch = deferred(() =>
  z.strictObject({
    transparent: z.boolean().optional(),
    wildcard: z.boolean().optional(),
    restoreMark: z.boolean().optional(),
  }),
);

/** `op` of `ttl`: eq, ne (`! --ttl-eq`), lt, gt, as xt_ttl/xt_hl compare. */
export const TtlMatch = deferred(() =>
  z.strictObject({
    op: z.enum(["eq", "ne", "lt", "gt"]),
    value: z.number().int().min(0).max(255),
  }),
);

/**
 * `-m connlimit` (nft `ct count` in a dynamic set keyed by the masked address): the number of
 * tracked connections of the packet's source (or destination) address, or of its /prefix.
 * over: match above `count` (--connlimit-above); otherwise match up to it (--connlimit-upto).
 */
export const ConnlimitMatch = deferred(() =>
  z.strictObject({
    count: z.number().int().min(0).max(65535),
    over: z.boolean().default(true),
    key: z.enum(["saddr", "daddr"]).default("saddr"),
    /** Count per prefix of this length (--connlimit-mask); the whole address when absent. */
    prefix: z.number().int().min(0).max(128).optional(),
  }),
);

/** Protocols whose conntrack tuple has ports (`ct original proto-src/proto-dst`). */
export const CT_PORT_PROTOCOLS = ["tcp", "udp", "sctp", "udplite", "dccp"] as const;

/**
 * `-m conntrack --ctproto/--ctorigsrc/--ctorigdst/--ctorigsrcport/--ctorigdstport`: the
 * connection's original-direction tuple as conntrack recorded it (before NAT for the
 * addresses and ports a DNAT/SNAT rewrote), not the packet's header. Ports need a
 * (positive) port protocol.
 */
export const CtOriginalMatch = deferred(() =>
  z
    .strictObject({
      protocol: negatable(Protocol).optional(),
      saddr: negatable(Cidr).optional(),
      daddr: negatable(Cidr).optional(),
      sport: negatable(PortItem).optional(),
      dport: negatable(PortItem).optional(),
    })
    .refine((m) => Object.keys(m).length > 0, { message: "give at least one of protocol, saddr, daddr, sport, dport" })
    .refine(
      (m) =>
        (m.sport === undefined && m.dport === undefined) ||
        (typeof m.protocol === "string" && (CT_PORT_PROTOCOLS as readonly string[]).includes(m.protocol)),
      { message: "sport/dport need protocol tcp, udp, sctp, udplite or dccp (not negated)", path: ["protocol"] },
    )
    .refine((m) => oneFamily(m.saddr, m.daddr), { message: "saddr and daddr must be of one family", path: ["daddr"] }),
);

/**
 * `-m statistic` (nft `numgen`): random: each packet with this probability (xt_statistic draws
 * 31 random bits, so the probability is a multiple of 2^-31); nth: one packet in every `every`,
 * the (packet+1)-th first, counted over the packets that reach the rule's other matches.
 */
export const StatisticMatch = deferred(() =>
  z.union([
    z.strictObject({ mode: z.literal("random"), probability: z.number().min(0).max(1) }),
    z
      .strictObject({
        mode: z.literal("nth"),
        every: z.number().int().min(1).max(0x7fffffff),
        packet: z.number().int().min(0).default(0),
      })
      .refine((m) => m.packet < m.every, { message: "packet must be below every", path: ["packet"] }),
  ]),
);

/** Weekdays of `-m time --weekdays` (xt_time's names). */
export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;
const DayTime = deferred(() => z.string().regex(/^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/, 'must be "hh:mm:ss" (UTC)'));
/** The last second xt_time can store (its dates are 32-bit seconds). */
export const TIME_DATE_MAX = "2038-01-19T03:14:07";
const DateTime = deferred(() =>
  z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/, 'must be "YYYY-MM-DDThh:mm:ss" (UTC)')
    .refine((s) => {
      const t = Date.parse(`${s}Z`);
      return Number.isFinite(t) && new Date(t).toISOString().startsWith(s) && t >= 0 && s <= TIME_DATE_MAX;
    }, `must be a real date from 1970-01-01T00:00:00 to ${TIME_DATE_MAX}`),
);

/**
 * `-m time`, all in UTC (xt_time's default). start/stop: the time of day, both inclusive;
 * start after stop wraps past midnight (22:00:00-06:00:00), start equal to stop is the whole
 * day (as xt_time has it). days: the weekdays (the day the packet is seen, not the day a
 * wrapped range began). dateStart/dateStop: inclusive, to the second.
 */
export const TimeMatch = deferred(() =>
  z
    .strictObject({
      start: DayTime.optional(),
      stop: DayTime.optional(),
      days: z.array(z.enum(WEEKDAYS)).min(1).optional(),
      dateStart: DateTime.optional(),
      dateStop: DateTime.optional(),
    })
    .refine((t) => Object.keys(t).length > 0, "give at least one of start, stop, days, dateStart, dateStop"),
);

/** A MAC address, lower case (`-m mac --mac-source`, nft `ether saddr`). */
export const MacAddress = deferred(() =>
  z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, 'must be "xx:xx:xx:xx:xx:xx", lower case'),
);

/**
 * `-m physdev` (xt_physdev): the bridge ports of a packet the bridge hands to the IP hooks
 * (br_netfilter, `net.bridge.bridge-nf-call-iptables=1`), where the packet's own interface is
 * the bridge. iif/oif: the port it came in on / will leave by (a trailing `*` is a wildcard);
 * isIn/isOut/isBridged: true is `--physdev-is-in|out|bridged`, false its `!` form (as
 * `fragment`). A packet that did not cross a bridge matches only negated tests, as in xt_physdev.
 */
export const PhysdevMatch = deferred(() =>
  z
    .strictObject({
      iif: negatable(Interface).optional(),
      oif: negatable(Interface).optional(),
      isIn: z.boolean().optional(),
      isOut: z.boolean().optional(),
      isBridged: z.boolean().optional(),
    })
    .refine((m) => Object.keys(m).length > 0, { message: "give at least one of iif, oif, isIn, isOut, isBridged" }),
);

/** A byte field's value (0-255) or an inclusive range "min-max" of such values. */
const byteOrRange = () =>
  z.union([
    z.number().int().min(0).max(255),
    z
      .string()
      .regex(/^\d{1,3}-\d{1,3}$/, 'must be a value or a range "min-max"')
      .refine((s) => {
        const [a, b] = s.split("-").map(Number) as [number, number];
        return a <= b && b <= 255;
      }, "a range of 0-255, min not above max"),
  ]);

/**
 * The IPv6 routing header (`ip6tables -m rt`, nft `rt type` / `rt seg-left`): its routing type
 * and its segments left. A packet without a routing header does not match, negated tests
 * included, in ip6t_rt and in nft (the header lookup fails, the rule stops). `{}` matches any
 * packet that has one (nft `exthdr rt exists`). IPv6 only.
 */
export const RoutingHeaderMatch = deferred(() =>
  z.strictObject({
    type: negatable(z.number().int().min(0).max(255)).optional(),
    segmentsLeft: negatable(byteOrRange()).optional(),
  }),
);

/**
 * `-m set --match-set NAME src,dst` on a tuple set: `directions` says, per field of the set's
 * type, which side of the packet it is looked up on (an address: saddr/daddr; a port: sport/
 * dport, with the packet's protocol). As many directions as the set has fields.
 */
export const TupleSetMatch = deferred(() =>
  z.strictObject({
    set: Name,
    directions: z
      .array(z.enum(["src", "dst"]))
      .min(2)
      .max(3),
  }),
);
export type TupleSetMatch = z.infer<typeof TupleSetMatch>;

export const extraMatchKeys = {
  /** A lookup in a tuple set (see TupleSetMatch). */
  tupleSet: deferred(() => negatable(TupleSetMatch)).optional(),
  /** Local socket's user id (`-m owner --uid-owner`, nft `meta skuid`): output and postrouting only. */
  skuid: deferred(() => negatable(IdRange)).optional(),
  /** Local socket's group id (`--gid-owner`, nft `meta skgid`). */
  skgid: deferred(() => negatable(IdRange)).optional(),
  /** Any of these conntrack status bits set (dnat: the connection was destination-NATed). */
  ctStatus: deferred(() => negatable(z.array(z.enum(CT_STATUS)).min(1))).optional(),
  /** Source / destination address in an inclusive range (`-m iprange --src-range`). */
  saddrRange: deferred(() => negatable(AddressRange)).optional(),
  daddrRange: deferred(() => negatable(AddressRange)).optional(),
  /** true: only non-first IPv4 fragments (`-f`); false: all but those (`! -f`). IPv4 only. */
  fragment: z.boolean().optional(),
  /** Link-layer packet type (`-m pkttype`, nft `meta pkttype`): host (unicast to this host), broadcast, multicast, other (another host's). */
  pktType: deferred(() => negatable(z.enum(PKT_TYPES))).optional(),
  /** DSCP (the TOS byte's / traffic class's upper 6 bits), 0-63 (`-m dscp --dscp`, nft `ip dscp` / `ip6 dscp`). */
  dscp: deferred(() => negatable(z.number().int().min(0).max(63))).optional(),
  /** IPv4 TTL / IPv6 hop limit compared with a value (`-m ttl --ttl-eq`, `-m hl --hl-gt`; nft `ip ttl` / `ip6 hoplimit`). */
  ttl: TtlMatch.optional(),
  /** IPv6 routing header: its type and segments left (`ip6tables -m rt`, nft `rt type` / `rt seg-left`). IPv6 only. */
  routingHeader: RoutingHeaderMatch.optional(),
  /** IPsec policy (`-m policy`): the packet arrived decapsulated (in) / will be encapsulated (out), or not (policy none). */
  ipsec: IpsecMatch.optional(),
  /** The connection's original tuple (`-m conntrack --ctproto/--ctorig*`, nft `ct original ...`). */
  ctOriginal: CtOriginalMatch.optional(),
  /** Random or every-nth packet (`-m statistic`, nft `numgen random` / `numgen inc`). */
  statistic: deferred(() => negatable(StatisticMatch)).optional(),
  /** Connections tracked per address (or prefix): `-m connlimit`, nft `ct count`. */
  connlimit: ConnlimitMatch.optional(),
  /** Time of day, weekdays, dates, in UTC (`-m time`, nft `meta hour` / `meta day` / `meta time`). */
  time: TimeMatch.optional(),
  /** Source MAC address (`-m mac --mac-source`, nft `ether saddr`): prerouting, input and forward only. */
  macSource: deferred(() => negatable(MacAddress)).optional(),
  /** A local socket the packet belongs to (`-m socket`, nft `socket transparent`): prerouting and input only. */
  socket: SocketMatch.optional(),
  /** Bridge ports of a bridged packet (`-m physdev`): iptables only (an inet table sees the bridge, not its ports). */
  physdev: PhysdevMatch.optional(),
};
