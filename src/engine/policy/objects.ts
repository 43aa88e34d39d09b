// Named objects a policy declares once and rules refer to by name.
import * as z from "zod";
import { Cidr, Comment, Port, Seconds, deferred } from "./primitives.ts";
import { parsePrefix } from "../net/address.ts";

/** Sets of tuples (ipset's hash:ip,port and hash:net,port): an address and a "protocol:port", e.g. "10.0.0.0/8,tcp:22". */
export const TUPLE_SET_TYPES = ["ipv4_addr,port", "ipv6_addr,port"] as const;
export const SET_TYPES = [
  "ipv4_addr",
  "ipv6_addr",
  "inet_service",
  "ether_addr",
  "ifname",
  "mark",
  ...TUPLE_SET_TYPES,
] as const;
export type TupleSetType = (typeof TUPLE_SET_TYPES)[number];
/** Protocols a tuple set's port field names (ipset's `proto:port`; a port without one is tcp). */
export const TUPLE_PORT_PROTOCOLS = ["tcp", "udp", "sctp", "udplite"] as const;

/** The fields of a tuple set type, in order (undefined: not a tuple set). */
export function tupleFields(type: string): ("ipv4_addr" | "ipv6_addr" | "port")[] | undefined {
  if (type === "ipv4_addr,port") return ["ipv4_addr", "port"];
  if (type === "ipv6_addr,port") return ["ipv6_addr", "port"];
  return undefined;
}

/** The most elements one set holds, and the largest `size` (maxelem) a set may declare. */
export const MAX_SET_ELEMENTS = 2_000_000;
export const MAX_SET_SIZE = 16_000_000;

/**
 * Address/port sets: static elements, intervals (CIDR), timeouts, and dynamic (filled by rules).
 * A tuple set (type "ipv4_addr,port", "ipv6_addr,port") holds elements "ADDRESS,PROTO:PORT"
 * ("10.0.0.0/8,tcp:22", "2001:db8::1,udp:53"; prefixes need interval) and is matched with
 * `match.tupleSet`, which names the direction of each field.
 */
export const SetDef = deferred(() =>
  z.strictObject({
    type: z.enum(SET_TYPES),
    elements: z
      .array(z.union([z.string().max(64), Port]))
      .max(MAX_SET_ELEMENTS)
      .default([]),
    /** Holds prefixes/ranges; required for CIDR elements. */
    interval: z.boolean().optional(),
    /** Default lifetime of an element; elements expire by themselves. */
    timeoutSeconds: Seconds.optional(),
    /** Rules may add elements at runtime (`recent --set`, meters). */
    dynamic: z.boolean().optional(),
    /** Per-element packet/byte counters. */
    counters: z.boolean().optional(),
    /** Maximum number of elements the kernel will hold; defaults to elements + 65536 for dynamic sets. */
    size: z.number().int().min(1).max(MAX_SET_SIZE).optional(),
    comment: Comment.optional(),
  }),
);
export type SetDef = z.infer<typeof SetDef>;

export const CounterDef = deferred(() => z.strictObject({ comment: Comment.optional() }));

/**
 * quota2: a named byte or packet budget (down-counting) or an up-counting counter (`--grow`).
 * A budget some of whose rules grow (`match.quota.grow`) is a bucket: those rules fill it,
 * the others take from it (the manual's bytebucket).
 */
export const QuotaDef = deferred(() =>
  z
    .strictObject({
      mode: z.enum(["bytes", "packets"]).default("bytes"),
      /** Initial budget (a bucket's initial content); required unless `grow`. */
      limit: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
      /** Every rule that uses the quota grows it (a rule may not say `grow: false`). */
      grow: z.boolean().optional(),
      comment: Comment.optional(),
    })
    .refine((q) => q.grow || q.limit !== undefined, {
      message: "a quota needs a limit unless it grows (grow: true)",
      path: ["limit"],
    }),
);
export type QuotaDef = z.infer<typeof QuotaDef>;

/**
 * ACCOUNT table: per-address counters for every address of a prefix: IPv4 /8 to /32 (or
 * 0.0.0.0/0, the one-slot total) or IPv6 /8 to /128. `aggregate` counts per sub-prefix of
 * that length instead of per address (e.g. 64: one row per /64 of an IPv6 prefix).
 */
export const AccountingDef = deferred(() =>
  z
    .strictObject({
      prefix: Cidr.superRefine((s, ctx) => {
        const p = parsePrefix(s);
        if (!p) return;
        if (p.family === "ipv6" && p.length < 8)
          ctx.addIssue({
            code: "custom",
            message: "ACCOUNT prefixes must be /8 or longer (IPv6: no one-slot ::/0 table)",
          });
        else if (p.family === "ipv4" && p.length !== 0 && p.length < 8)
          ctx.addIssue({
            code: "custom",
            message: "ACCOUNT prefixes must be /8 or longer (or 0.0.0.0/0 for the one-slot total)",
          });
        else if (p.length === 0 && p.address !== "0.0.0.0")
          ctx.addIssue({ code: "custom", message: "a /0 ACCOUNT prefix must be written 0.0.0.0/0" });
      }),
      /** Count per sub-prefix of this length (the prefix's length to 32/128) instead of per address. */
      aggregate: z.number().int().min(1).max(128).optional(),
      comment: Comment.optional(),
    })
    .superRefine((d, ctx) => {
      const p = parsePrefix(d.prefix);
      if (!p || d.aggregate === undefined) return;
      const max = p.family === "ipv4" ? 32 : 128;
      if (p.length === 0)
        ctx.addIssue({
          code: "custom",
          path: ["aggregate"],
          message: "ACCOUNT aggregate does not apply to the one-slot 0.0.0.0/0 table",
        });
      else if (d.aggregate < p.length || d.aggregate > max)
        ctx.addIssue({
          code: "custom",
          path: ["aggregate"],
          message: `ACCOUNT aggregate must be between the prefix length and the address length (${p.length} to ${max} for ${d.prefix})`,
        });
    }),
);
export type AccountingDef = z.infer<typeof AccountingDef>;
