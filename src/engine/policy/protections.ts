// Protection presets (seed: iptables hardening tricks). Each one expands into plain rules
// (engine/expand) that the render shows; nothing here is hidden behaviour.
import * as z from "zod";
import { Cidr, Interface, Port, Rate, Seconds, deferred, logPrefix } from "./primitives.ts";
import { BAN_LIST_RE, BAN_LIST_RULE } from "../bans/address.ts";

export const AntiSpoofing = deferred(() =>
  z.strictObject({
    /** The external interface: spoofed sources are dropped on packets arriving here. */
    interface: Interface,
    /** Reverse-path check (ipfw verrevpath; nft `fib saddr . iif oif missing drop`). */
    reversePath: z.boolean().default(true),
    /** Drop packets addressed to broadcast/multicast destinations. */
    dropBroadcastDestinations: z.boolean().default(true),
  }),
);

/** Smurf / ping flood: drop address-mask and timestamp requests, rate-limit the remaining ICMP. */
export const IcmpFlood = deferred(() =>
  z.strictObject({
    rate: Rate.default("1/second"),
    burst: z.number().int().min(1).max(10000).default(5),
  }),
);

/** INVALID conntrack state dropped in input/forward/output; SYN+FIN and SYN+RST dropped. */
export const BogusPackets = deferred(() => z.strictObject({ enabled: z.boolean().default(true) }));

export const RstFlood = deferred(() =>
  z.strictObject({
    rate: Rate.default("2/second"),
    burst: z.number().int().min(1).max(10000).default(2),
  }),
);

/**
 * Per source address: drop new TCP connections above `rate` ("N/unit": at most N in any
 * window of one unit, counted exactly like the seed's recent --hitcount). With `burst`:
 * a token bucket instead (lets the burst and the refill through).
 */
export const SynFlood = deferred(() =>
  z.strictObject({
    rate: Rate.default("60/second"),
    burst: z.number().int().min(1).max(100000).optional(),
  }),
);

/** Port-scan sand trap: a probe of a listed port logs and bans the source for `banSeconds`. */
export const PortScanTrap = deferred(() =>
  z.strictObject({
    ports: z.array(Port).min(1).max(1024).default([139]),
    banSeconds: Seconds.default(86400),
    logPrefix: logPrefix(29).default("Portscan:"),
    /** Apply in forward too (routers), not just input. */
    forward: z.boolean().default(true),
    /**
     * Share trap hits (docs/dynamic-sets.md): the agent reports each source the trap bans, and
     * the API bans it on this fleet ban list, for `ttlSeconds`, on every host whose policy
     * shares to the same list.
     */
    share: z
      .strictObject({
        list: z.string().regex(BAN_LIST_RE, `a ban list name: ${BAN_LIST_RULE}`),
        ttlSeconds: z
          .number()
          .int()
          .min(1)
          .max(365 * 86400)
          .default(3600),
        /**
         * Sources never shared as fleet bans (addresses or prefixes, IPv4/IPv6): a trap hit is
         * one SYN, and its source address can be forged, so list BGP peers, resolvers and
         * operators here. Sources the policy's own rules accept by `saddr` are exempt too.
         */
        exempt: z.array(Cidr).max(4096).default([]),
      })
      .optional(),
  }),
);

/** Port knocking (xtables-addons pknock, TCP mode). */
export const PortKnock = deferred(() =>
  z.strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9_]{0,15}$/, "must be 1-16 letters, digits or '_', starting with a letter"),
    /** Knock sequence, in order. */
    knockPorts: z.array(Port).min(2).max(8),
    protocol: z.enum(["tcp", "udp"]).default("tcp"),
    /** The port that opens for the knocking source. */
    port: Port,
    /** Maximum seconds between two knocks. */
    knockTimeoutSeconds: Seconds.default(10),
    /** How long the port stays open for that source. */
    openSeconds: Seconds.default(60),
  }),
);

/**
 * Single-packet authorisation (xtables-addons pknock UDP mode, "SPA"): a UDP packet to
 * `knockPort` whose payload is the HMAC-SHA256 of (source IPv4 address, minutes since the
 * epoch) under `openSecret` opens `port` to that source; one under `closeSecret` closes it.
 * The kernel cannot compute an HMAC: the knock is logged to NFLOG `logGroup` and dropped,
 * and the agent verifies it and adds the source to the rule's timeout set (docs/engine.md).
 */
export const SpaKnock = deferred(() =>
  z
    .strictObject({
      name: z
        .string()
        .regex(/^[A-Za-z][A-Za-z0-9_]{0,15}$/, "must be 1-16 letters, digits or '_', starting with a letter"),
      /** The UDP port the knock packets are sent to. */
      knockPort: Port,
      protocol: z.enum(["tcp", "udp"]).default("tcp"),
      /** The port that opens for the knocking source. */
      port: Port,
      openSecret: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces"),
      closeSecret: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces"),
      /** How long the port stays open for that source (pknock --autoclose, in seconds); 0 = until a close knock. */
      openSeconds: z
        .number()
        .int()
        .min(0)
        .max(365 * 86400)
        .default(14400),
      /** NFLOG group the knocks are logged to for the agent. */
      logGroup: z.number().int().min(0).max(65535).default(2),
    })
    .refine((k) => k.openSecret !== k.closeSecret, {
      message: "openSecret and closeSecret must differ (pknock refuses equal secrets too)",
      path: ["closeSecret"],
    }),
);

export const Protections = deferred(() =>
  z.strictObject({
    antiSpoofing: AntiSpoofing.optional(),
    icmpFlood: IcmpFlood.optional(),
    bogusPackets: BogusPackets.optional(),
    rstFlood: RstFlood.optional(),
    synFlood: SynFlood.optional(),
    portScanTrap: PortScanTrap.optional(),
    portKnock: z.array(PortKnock).max(32).optional(),
    spaKnock: z.array(SpaKnock).max(32).optional(),
  }),
);
export type Protections = z.infer<typeof Protections>;
