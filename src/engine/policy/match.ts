// What a rule matches. Every key is optional; all present keys must match (AND).
// Core matches render on every target; the `xt` group holds xtables-addons matches that
// only the iptables target (with xtables-addons installed) can express.
import * as z from "zod";
import {
  AddressList,
  Interface,
  Name,
  PortList,
  Protocol,
  Rate,
  Seconds,
  U32,
  deferred,
  negatable,
} from "./primitives.ts";
import { extraMatchKeys } from "./match-extra.ts";
import { ConditionName } from "../conditions/names.ts";

export const CT_STATES = ["new", "established", "related", "invalid", "untracked"] as const;
export const TCP_FLAGS = ["fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"] as const;
export const ICMP_TYPES = [
  "echo-reply",
  "destination-unreachable",
  "source-quench",
  "redirect",
  "echo-request",
  "router-advertisement",
  "router-solicitation",
  "time-exceeded",
  "parameter-problem",
  "timestamp-request",
  "timestamp-reply",
  "info-request",
  "info-reply",
  "address-mask-request",
  "address-mask-reply",
] as const;
export const ICMPV6_TYPES = [
  "destination-unreachable",
  "packet-too-big",
  "time-exceeded",
  "parameter-problem",
  "echo-request",
  "echo-reply",
  "mld-listener-query",
  "mld-listener-report",
  "mld-listener-done",
  "nd-router-solicit",
  "nd-router-advert",
  "nd-neighbor-solicit",
  "nd-neighbor-advert",
  "nd-redirect",
  "router-renumbering",
] as const;
/** The type numbers of the names above (RFC 792, RFC 4443): the iptables compiler and the packet tracer. */
export const ICMP_TYPE_NUMBERS: Readonly<Record<string, number>> = {
  "echo-reply": 0,
  "destination-unreachable": 3,
  "source-quench": 4,
  redirect: 5,
  "echo-request": 8,
  "router-advertisement": 9,
  "router-solicitation": 10,
  "time-exceeded": 11,
  "parameter-problem": 12,
  "timestamp-request": 13,
  "timestamp-reply": 14,
  "info-request": 15,
  "info-reply": 16,
  "address-mask-request": 17,
  "address-mask-reply": 18,
} satisfies Record<(typeof ICMP_TYPES)[number], number>;
export const ICMPV6_TYPE_NUMBERS: Readonly<Record<string, number>> = {
  "destination-unreachable": 1,
  "packet-too-big": 2,
  "time-exceeded": 3,
  "parameter-problem": 4,
  "echo-request": 128,
  "echo-reply": 129,
  "mld-listener-query": 130,
  "mld-listener-report": 131,
  "mld-listener-done": 132,
  "nd-router-solicit": 133,
  "nd-router-advert": 134,
  "nd-neighbor-solicit": 135,
  "nd-neighbor-advert": 136,
  "nd-redirect": 137,
  "router-renumbering": 138,
} satisfies Record<(typeof ICMPV6_TYPES)[number], number>;
/** A type by name, or by number for the ones without a name here (ICMPv6 143, MLDv2 report, ...). */
const IcmpNumber = deferred(() => z.number().int().min(0).max(255));
const IcmpTypeItem = deferred(() => z.union([z.enum(ICMP_TYPES), IcmpNumber]));
const Icmpv6TypeItem = deferred(() => z.union([z.enum(ICMPV6_TYPES), IcmpNumber]));
export const ADDR_TYPES = [
  "unicast",
  "local",
  "broadcast",
  "anycast",
  "multicast",
  "blackhole",
  "unreachable",
  "prohibit",
] as const;

const TcpFlag = z.enum(TCP_FLAGS);
/** `--tcp-flags MASK COMP`: of the flags in `mask`, exactly those in `compare` are set. */
export const TcpFlagsMatch = deferred(() =>
  z
    .strictObject({ mask: z.array(TcpFlag).min(1), compare: z.array(TcpFlag) })
    .refine((f) => f.compare.every((c) => f.mask.includes(c)), {
      message: "every flag in compare must also be in mask",
      path: ["compare"],
    }),
);

/** A 32-bit value with optional mask: `mark & mask == value`. */
export const MarkMatch = deferred(() => z.union([U32, z.strictObject({ value: U32, mask: U32 })]));

/** Packet length (layer 3, as `-m length` and nft `meta length`): exact or "min-max". */
export const LengthMatch = deferred(() =>
  z.union([
    z.number().int().min(0).max(65535),
    z.string().regex(/^\d{1,5}-\d{1,5}$/, 'must be a length or a range "min-max"'),
  ]),
);

export const LimitMatch = deferred(() =>
  z.strictObject({
    rate: Rate,
    burst: z.number().int().min(1).max(1_000_000).optional(),
    /** Match only traffic above the rate (nft `limit rate over`). */
    over: z.boolean().optional(),
  }),
);

/** Per-source (or per-destination) rate meter: hashlimit, or `recent --hitcount`. */
export const MeterMatch = deferred(() =>
  z.strictObject({
    name: Name,
    key: z.enum(["saddr", "daddr"]).default("saddr"),
    rate: Rate,
    burst: z.number().int().min(1).max(1_000_000).optional(),
    /** true: match sources above the rate (the usual "drop the flooder"). */
    over: z.boolean().default(true),
    /** How long a source's meter lives after its last packet. */
    timeoutSeconds: Seconds.default(60),
    size: z.number().int().min(1).max(1_000_000).default(65536),
  }),
);

/** `-m recent`: a named list of addresses with last-seen times. */
export const RecentMatch = deferred(() =>
  z.strictObject({
    name: Name,
    /** set: add the address (always matches); update/rcheck: match if listed (update refreshes); remove: drop it (matches if it was listed). */
    mode: z.enum(["set", "update", "rcheck", "remove"]),
    /** Only count the address as listed if seen within this many seconds (update/rcheck). */
    seconds: Seconds.optional(),
    /** Match only when the address was seen at least this many times within `seconds`. */
    hitcount: z.number().int().min(1).max(1_000_000).optional(),
    side: z.enum(["source", "destination"]).default("source"),
  }),
);

/** `-m quota2`: consult a named quota (declared under `quotas`). */
export const QuotaMatch = deferred(() =>
  z.strictObject({
    name: z.string(),
    /** `! --quota`: match once the budget is spent instead of while it lasts. */
    invert: z.boolean().optional(),
    /** `--no-change`: test without consuming. */
    noChange: z.boolean().optional(),
    /**
     * `--grow` on this rule: add the packet to the counter instead of taking it. quota2 decides
     * this per rule, so a quota that counts down elsewhere becomes a bucket (the manual's
     * bytebucket). A rule grows when its quota grows (`quotas.NAME.grow`) or it says so here.
     */
    grow: z.boolean().optional(),
  }),
);
export type QuotaMatch = z.infer<typeof QuotaMatch>;

/** quota2 per rule: does this rule add to its counter (rather than take from it)? */
export const quotaRuleGrows = (def: { grow?: boolean } | undefined, q: QuotaMatch): boolean =>
  def?.grow === true || q.grow === true;

/** A rule that grows a quota its declaration does not (a bytebucket's filling rule). */
export const quotaRuleFills = (def: { grow?: boolean } | undefined, q: QuotaMatch): boolean =>
  def !== undefined && def.grow !== true && q.grow === true;

const CountryList = deferred(() =>
  z.array(z.string().regex(/^[A-Z]{2}$/, "must be an ISO-3166 alpha-2 code like DE")).min(1),
);
export const IFACE_FLAGS = [
  "up",
  "down",
  "broadcast",
  "loopback",
  "pointtopoint",
  "running",
  "noarp",
  "arp",
  "promisc",
  "multicast",
  "dynamic",
  "lower-up",
  "dormant",
] as const;
const IPV4_OPTIONS = [
  "nop",
  "security",
  "lsrr",
  "timestamp",
  "record-route",
  "ssrr",
  "mtu-probe",
  "mtu-reply",
  "traceroute",
  "router-alert",
] as const;

/** xtables-addons matches (seed: xtables-addons manual). */
export const XtMatch = deferred(() =>
  z.strictObject({
    condition: negatable(ConditionName).optional(),
    geoip: z
      .strictObject({
        source: CountryList.optional(),
        destination: CountryList.optional(),
        invert: z.boolean().optional(),
      })
      .optional(),
    iface: z
      .strictObject({
        interface: Interface.optional(),
        devIn: z.boolean().optional(),
        devOut: z.boolean().optional(),
        flags: z.array(z.strictObject({ flag: z.enum(IFACE_FLAGS), not: z.boolean().optional() })).min(1),
      })
      .optional(),
    ipp2p: z
      .array(z.enum(["edk", "kazaa", "gnu", "dc", "bit", "apple", "soul", "winmx", "ares"]))
      .min(1)
      .optional(),
    ipv4options: z
      .strictObject({
        flags: z.array(z.strictObject({ option: z.enum(IPV4_OPTIONS), not: z.boolean().optional() })).min(1),
        any: z.boolean().optional(),
      })
      .optional(),
    lscan: z
      .array(z.enum(["stealth", "synscan", "cnscan", "grscan"]))
      .min(1)
      .optional(),
    psd: z
      .strictObject({
        weightThreshold: z.number().int().min(1).optional(),
        delayThreshold: z.number().int().min(1).optional(),
        loPortsWeight: z.number().int().min(1).optional(),
        hiPortsWeight: z.number().int().min(1).optional(),
      })
      .optional(),
    fuzzy: z.strictObject({ lowerLimit: z.number().int().min(1), upperLimit: z.number().int().min(1) }).optional(),
    gradm: z.enum(["enabled", "disabled"]).optional(),
    dhcpmac: negatable(
      z
        .string()
        .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}(\/\d{1,2})?$/i, "must be a MAC address aa:bb:cc:dd:ee:ff[/bits]")
        .refine(
          (s) => !s.includes("/") || (Number(s.split("/")[1]) >= 1 && Number(s.split("/")[1]) <= 48),
          "the prefix length must be 1-48 bits",
        ),
    ).optional(),
    /**
     * `-m length2`: the length of one layer. layer3: IP header and payload (as `length`);
     * layer4: transport header and payload; layer5: the transport payload.
     */
    length2: z
      .strictObject({ layer: z.enum(["layer3", "layer4", "layer5"]), length: negatable(LengthMatch) })
      .optional(),
  }),
);

export const Match = z.strictObject({
  /** Restrict a rule to one IP family (inet tables see both). */
  family: z.enum(["ipv4", "ipv6"]).optional(),
  saddr: deferred(() => negatable(AddressList)).optional(),
  daddr: deferred(() => negatable(AddressList)).optional(),
  protocol: deferred(() => negatable(Protocol)).optional(),
  sport: deferred(() => negatable(PortList)).optional(),
  dport: deferred(() => negatable(PortList)).optional(),
  iif: deferred(() => negatable(z.union([Interface, z.array(Interface).min(1)]))).optional(),
  oif: deferred(() => negatable(z.union([Interface, z.array(Interface).min(1)]))).optional(),
  ctState: deferred(() => negatable(z.array(z.enum(CT_STATES)).min(1))).optional(),
  tcpFlags: deferred(() => negatable(TcpFlagsMatch)).optional(),
  icmpType: deferred(() => negatable(z.union([IcmpTypeItem, z.array(IcmpTypeItem).min(1)]))).optional(),
  icmpv6Type: deferred(() => negatable(z.union([Icmpv6TypeItem, z.array(Icmpv6TypeItem).min(1)]))).optional(),
  /** ICMP/ICMPv6 code, with exactly one (positive) type: `--icmp-type 3/4`, nft `icmp code 4`. */
  icmpCode: IcmpNumber.optional(),
  length: deferred(() => negatable(LengthMatch)).optional(),
  /**
   * The TCP MSS option's value, exact or "min-max" (`-m tcpmss --mss`; nft `tcp option maxseg
   * size`). Needs protocol tcp. A packet without the option does not match; negated, it does
   * (xt_tcpmss returns the inversion when the option is missing), so `{ not: … }` renders as
   * two nft rules: option missing, or its size outside the range.
   */
  tcpMss: deferred(() => negatable(LengthMatch)).optional(),
  mark: deferred(() => negatable(MarkMatch)).optional(),
  ctmark: deferred(() => negatable(MarkMatch)).optional(),
  /** Destination address type as the routing table sees it (`-m addrtype --dst-type`, nft `fib daddr type`). */
  daddrType: deferred(() => negatable(z.array(z.enum(ADDR_TYPES)).min(1))).optional(),
  /** Reverse-path check: "fail" matches packets whose source is not routed back out the interface they came in on. */
  rpfilter: z.enum(["fail", "pass"]).optional(),
  limit: LimitMatch.optional(),
  meter: MeterMatch.optional(),
  recent: RecentMatch.optional(),
  quota: QuotaMatch.optional(),
  xt: XtMatch.optional(),
  ...extraMatchKeys,
});
export type Match = z.infer<typeof Match>;
