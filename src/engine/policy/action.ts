// What a rule does with a matching packet. Exactly one action per rule, as in iptables
// (one target per rule). Terminating verdicts end evaluation; the others (log, counter,
// account, mark, ...) let the packet continue to the next rule.
import * as z from "zod";
import { addressNotAfter } from "../net/address.ts";
import { Address, Cidr, Name, Port, U32, deferred, logPrefix } from "./primitives.ts";

/**
 * The kernel's conntrack helpers by the name CT --helper and nft's `ct helper` type take
 * (case matters), with the protocols each registers: measured on 6.18 with nft 1.0.6 and
 * iptables-restore 1.8.9, an unknown name or another protocol is refused (ENOENT). H.323
 * is two helpers, RAS (udp) and Q.931 (tcp); "h323" is no helper name.
 */
export const CT_HELPERS = {
  ftp: ["tcp"],
  tftp: ["udp"],
  sip: ["udp", "tcp"],
  irc: ["tcp"],
  pptp: ["tcp"],
  RAS: ["udp"],
  "Q.931": ["tcp"],
  amanda: ["udp"],
  snmp: ["udp"],
  "netbios-ns": ["udp"],
  sane: ["tcp"],
} as const satisfies Record<string, readonly ("tcp" | "udp")[]>;
export type CtHelperName = keyof typeof CT_HELPERS;

export const LOG_LEVELS = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"] as const;
export const REJECT_WITH = [
  "icmp-port-unreachable",
  "icmp-host-unreachable",
  "icmp-net-unreachable",
  "icmp-proto-unreachable",
  "icmp-net-prohibited",
  "icmp-host-prohibited",
  "icmp-admin-prohibited",
  "tcp-reset",
] as const;

/** Target spelled as a bare word in YAML: `action: accept`. */
export const SimpleAction = z.enum(["accept", "drop", "return", "notrack"]);

export const NatTo = z
  .strictObject({
    address: Address.optional(),
    /** The last address of a range address..addressLast (`--to-source A-B`): same family, not below address. */
    addressLast: Address.optional(),
    /** Port or "low-high" range on the new destination/source. */
    port: z.union([Port, z.string().regex(/^\d{1,5}-\d{1,5}$/)]).optional(),
  })
  .refine(
    (t) => t.addressLast === undefined || (t.address !== undefined && addressNotAfter(t.address, t.addressLast)),
    {
      message: "addressLast needs address, of its family and not below it",
      path: ["addressLast"],
    },
  );

/** True when a and b are addresses of one family with a <= b. */
/**
 * One action object, built when a rule first uses its type: the discriminated union below
 * finds an option by its `type` alone, so the option tells it that without being built
 * (a policy names a few of the ~40 types; building all ~200 zod objects cost a render
 * more than the rest of the action schema).
 */
export function actionType<S extends z.ZodType>(type: string, build: () => S): z.ZodLazy<S> {
  const schema = deferred(() => {
    const built = build();
    // The union routes by `type` before building; the built object must say the same.
    const literal = built._zod.propValues?.type;
    if (literal?.size !== 1 || !literal.has(type))
      throw new Error(
        `actionType(${type}): the built schema's type is ${literal ? [...literal].map(String).join(", ") : "not a literal"}`,
      );
    return built;
  });
  schema._zod.propValues = { type: new Set([type]) };
  return schema;
}

export const ActionObject = deferred(() =>
  z.discriminatedUnion("type", [
    actionType("accept", () => z.strictObject({ type: z.literal("accept") })),
    actionType("drop", () => z.strictObject({ type: z.literal("drop") })),
    actionType("return", () => z.strictObject({ type: z.literal("return") })),
    actionType("notrack", () => z.strictObject({ type: z.literal("notrack") })),
    /**
     * CT --helper NAME (nft `ct helper set`): attach a conntrack helper to the new connection
     * this packet starts, so the related connections it announces (FTP data, TFTP, SIP media)
     * are expected. raw prerouting/output only; the rule must match the helper's protocol.
     */
    actionType("ctHelper", () =>
      z.strictObject({
        type: z.literal("ctHelper"),
        helper: z.enum(Object.keys(CT_HELPERS) as [CtHelperName, ...CtHelperName[]]),
      }),
    ),
    actionType("reject", () => z.strictObject({ type: z.literal("reject"), with: z.enum(REJECT_WITH).optional() })),
    actionType("jump", () => z.strictObject({ type: z.literal("jump"), chain: Name })),
    actionType("goto", () => z.strictObject({ type: z.literal("goto"), chain: Name })),
    actionType("log", () =>
      z.strictObject({
        type: z.literal("log"),
        prefix: logPrefix(127).optional(),
        /** Syslog level of the kernel-log copy; giving one keeps that copy (nftables). */
        level: z.enum(LOG_LEVELS).optional(),
        /** NFLOG group the event goes to (the agent reads it and ships it to the API); default 2 on nftables. */
        group: z.number().int().min(0).max(65535).optional(),
        /** Also write the packet to the kernel log (dmesg/journal), besides the NFLOG event (nftables). */
        kernelLog: z.boolean().optional(),
      }),
    ),
    actionType("counter", () => z.strictObject({ type: z.literal("counter"), name: Name })),
    actionType("mark", () =>
      z.strictObject({
        type: z.literal("mark"),
        /** Written under mask: mark = (mark & ~mask) | value. */
        value: U32,
        mask: U32.optional(),
        /** Bits flipped afterwards (MARK --xor-mark; kube-proxy's --set-xmark 0x4000/0x0). */
        xor: U32.optional(),
      }),
    ),
    actionType("connmark", () =>
      z.strictObject({
        type: z.literal("connmark"),
        /** set: write `value` into the connection mark; save: packet mark -> ct mark; restore: ct mark -> packet mark. */
        op: z.enum(["set", "save", "restore"]),
        value: U32.optional(),
        /**
         * set: only these bits of the connection mark change (to value's). save: only these bits
         * of the packet mark are copied, and the connection mark's other bits become 0
         * (CONNMARK --save-mark --nfmask M --ctmask 0xffffffff). restore: likewise from the
         * connection mark to the packet mark (--restore-mark --ctmask M --nfmask 0xffffffff).
         */
        mask: U32.optional(),
        /**
         * save/restore: only these bits of the destination (the connection mark for save, the
         * packet mark for restore) change, its other bits are kept: destination = (destination &
         * ~destMask) ^ (source & mask), as xt_CONNMARK computes (--ctmask of save, --nfmask of
         * restore). Left out: every bit changes (all ones).
         */
        destMask: U32.optional(),
      }),
    ),
    /** xtables-addons ACCOUNT: per-address src/dst bytes and packets in a named accounting table. */
    actionType("account", () => z.strictObject({ type: z.literal("account"), table: Name })),
    /** xtables-addons LOGMARK: log nfmark and ctmark. */
    actionType("logmark", () =>
      z.strictObject({
        type: z.literal("logmark"),
        prefix: logPrefix(29).optional(),
        level: z.number().int().min(0).max(8).optional(),
        group: z.number().int().min(0).max(65535).optional(),
      }),
    ),
    /** xtables-addons IPMARK: mark = ((addr >> shift) & andMask) | orMask. */
    actionType("ipmark", () =>
      z.strictObject({
        type: z.literal("ipmark"),
        addr: z.enum(["src", "dst"]),
        shift: z.number().int().min(0).max(127).optional(),
        andMask: U32.optional(),
        orMask: U32.optional(),
      }),
    ),
    /** xtables-addons TEE: clone the packet to a gateway on the local segment. */
    actionType("tee", () => z.strictObject({ type: z.literal("tee"), gateway: Address })),
    /** `-j SET --add-set/--del-set NAME src|dst` (nft `add/delete @set { ip saddr }`): a declared dynamic address set. */
    actionType("setUpdate", () =>
      z.strictObject({
        type: z.literal("setUpdate"),
        op: z.enum(["add", "delete"]),
        set: Name,
        key: z.enum(["saddr", "daddr"]).default("saddr"),
      }),
    ),
    actionType("rawsnat", () => z.strictObject({ type: z.literal("rawsnat"), to: Cidr })),
    actionType("rawdnat", () => z.strictObject({ type: z.literal("rawdnat"), to: Cidr })),
    actionType("checksumFill", () => z.strictObject({ type: z.literal("checksumFill") })),
    /** TCPMSS: rewrite the MSS option of TCP SYNs to `mss`, or clamp it to the route's path MTU ("pmtu"). */
    actionType("tcpmss", () =>
      z.strictObject({
        type: z.literal("tcpmss"),
        mss: z.union([z.literal("pmtu"), z.number().int().min(1).max(65535)]),
      }),
    ),
    /**
     * TOS (IPv4 TOS byte / IPv6 traffic class: DSCP and ECN): new = (old & ~mask) ^ value, as
     * `-j TOS --set-tos value/mask`; mask defaults to 0xff (set the whole byte). mangle only.
     */
    actionType("tos", () =>
      z
        .strictObject({
          type: z.literal("tos"),
          value: z.number().int().min(0).max(255),
          mask: z.number().int().min(0).max(255).optional(),
        })
        .refine((a) => a.value !== 0 || a.mask !== 0, {
          message: "value 0 with mask 0 changes nothing; drop the rule",
          path: ["mask"],
        }),
    ),
    /**
     * TTL (IPv4) / hop limit (IPv6), by the rule's family, as xt_HL's `-j TTL` / `-j HL`: set
     * it to `set` (0-255), or raise it by `inc` / lower it by `dec` (1-255: the kernel refuses
     * 0), saturating at 255 and 0. Exactly one of the three. mangle only.
     */
    actionType("ttl", () =>
      z
        .strictObject({
          type: z.literal("ttl"),
          set: z.number().int().min(0).max(255).optional(),
          inc: z.number().int().min(1).max(255).optional(),
          dec: z.number().int().min(1).max(255).optional(),
        })
        .refine((a) => [a.set, a.inc, a.dec].filter((x) => x !== undefined).length === 1, {
          message: "give exactly one of set, inc, dec",
        }),
    ),
    /**
     * NFQUEUE: hand the packet to userspace queue `num`, or spread flows over queues num..to
     * (by hash; fanout: by CPU). A verdict: with no listener the packet is dropped, or with
     * bypass accepted (it leaves this hook's chain, as the listener's accept would).
     */
    actionType("queue", () =>
      z
        .strictObject({
          type: z.literal("queue"),
          num: z.number().int().min(0).max(65535),
          to: z.number().int().min(0).max(65535).optional(),
          bypass: z.boolean().optional(),
          fanout: z.boolean().optional(),
        })
        .refine((a) => a.to === undefined || a.to > a.num, { message: "to must be above num", path: ["to"] })
        // The kernel counts the queues in 16 bits: 0..65535 (65536 queues) wraps to none (EINVAL).
        .refine((a) => a.to === undefined || a.to - a.num <= 65534, {
          message: "a range of queues holds at most 65535 queues (to - num at most 65534)",
          path: ["to"],
        })
        .refine((a) => !a.fanout || a.to !== undefined, {
          message: "fanout spreads over a range of queues: give to",
          path: ["fanout"],
        }),
    ),
    /**
     * TPROXY (mangle prerouting, TCP or UDP): hand the packet to a local socket listening on
     * `port` (0: the packet's destination port) at `address` (absent: the receiving
     * interface's first address) with IP_TRANSPARENT, without changing its header, and
     * accept it with packet mark = (packet mark & ~mask) ^ mark (`--tproxy-mark mark/mask`, mask all ones
     * when only the value is given); policy routing of that mark delivers it locally. No such
     * socket: the packet is dropped, as xt_TPROXY drops it.
     */
    actionType("tproxy", () =>
      z.strictObject({
        type: z.literal("tproxy"),
        port: z.number().int().min(0).max(65535),
        address: Address.optional(),
        mark: U32.optional(),
        mask: U32.optional(),
      }),
    ),
    actionType("tarpit", () => z.strictObject({ type: z.literal("tarpit") })),
    actionType("delude", () => z.strictObject({ type: z.literal("delude") })),
    actionType("chaos", () =>
      z.strictObject({ type: z.literal("chaos"), mode: z.enum(["delude", "tarpit"]).optional() }),
    ),
    actionType("steal", () => z.strictObject({ type: z.literal("steal") })),
    actionType("sysrq", () => z.strictObject({ type: z.literal("sysrq") })),
    actionType("dhcpmac", () =>
      z.strictObject({
        type: z.literal("dhcpmac"),
        setMac: z
          .string()
          .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}(\/\d{1,2})?$/i, "must be a MAC address aa:bb:cc:dd:ee:ff[/bits]")
          .refine(
            (s) => !s.includes("/") || (Number(s.split("/")[1]) >= 1 && Number(s.split("/")[1]) <= 48),
            "the prefix length must be 1-48 bits",
          ),
      }),
    ),
    /** ECHO and MIRROR send traffic back to its source: always refused (see validate/safety). */
    actionType("echo", () => z.strictObject({ type: z.literal("echo") })),
    actionType("mirror", () => z.strictObject({ type: z.literal("mirror") })),
    actionType("masquerade", () => z.strictObject({ type: z.literal("masquerade"), port: NatTo.shape.port })),
    actionType("snat", () => z.strictObject({ type: z.literal("snat"), to: NatTo })),
    actionType("dnat", () => z.strictObject({ type: z.literal("dnat"), to: NatTo })),
    actionType("redirect", () => z.strictObject({ type: z.literal("redirect"), port: NatTo.shape.port })),
    /** NETMAP: 1:1 prefix translation of the source (postrouting) or destination (prerouting). */
    actionType("netmap", () => z.strictObject({ type: z.literal("netmap"), to: Cidr })),
  ]),
);
export type ActionObject = z.infer<typeof ActionObject>;
export type ActionType = ActionObject["type"];

export const Action = z.union([SimpleAction, ActionObject]);
export type Action = z.infer<typeof Action>;

/** `accept` and `{type: "accept"}` mean the same thing; code works on the object form. */
export function normalizeAction(a: Action): ActionObject {
  return typeof a === "string" ? { type: a } : a;
}

export const TERMINATING: ReadonlySet<ActionType> = new Set<ActionType>([
  "accept",
  "drop",
  "return",
  "reject",
  "goto",
  "queue",
  "tproxy",
  "tarpit",
  "delude",
  "chaos",
  "steal",
  "sysrq",
  "echo",
  "mirror",
  "masquerade",
  "snat",
  "dnat",
  "redirect",
  "netmap",
]);
