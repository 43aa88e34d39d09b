// Building blocks of the policy schema: names, addresses, ports, rates, free text.
// Strings that end up in rendered rules are constrained here, at the door, so no
// compiler ever sees a value that could break out of its token.
import * as z from "zod";
import { parsePrefix, zoneIdProblem } from "../net/address.ts";

/**
 * A schema built on its first use instead of when this module loads (`palisade render`
 * starts in tens of milliseconds, and most of a policy's sections and match keys are
 * absent from most policies: building their ~1,000 zod objects up front was half the
 * top level of the render bundle). Parses, errors, types and the JSON Schema are those of
 * the built schema. Only for schemas that are neither optional nor defaulted themselves
 * (wrap the result in `.optional()` / `.default()` instead): the object and optional
 * schemas around it ask whether the value may be absent, and are told "no" without
 * building it; the build checks that this is true.
 */
export function deferred<T extends z.ZodType>(build: () => T): z.ZodLazy<T> {
  const schema = z.lazy(() => {
    const built = build();
    if (built._zod.optin !== undefined || built._zod.optout !== undefined)
      throw new Error("deferred(): the schema must not be optional or defaulted itself");
    return built;
  });
  // What z.lazy would read from the built schema (undefined for a schema that is not
  // optional), set here so that reading it does not build the schema.
  schema._zod.optin = undefined;
  schema._zod.optout = undefined;
  return schema;
}

/** Identifiers of chains, sets, counters, quotas, accounting tables. */
export const NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
export const Name = z
  .string()
  .regex(NAME_RE, "must start with a letter and contain only letters, digits and '_' (at most 32 characters)");
export type Name = z.infer<typeof Name>;

/**
 * Free text carried into the rendered rules (comments, log prefixes). Printable ASCII only,
 * and never a double quote or backslash: nft strings have no escape for them, and a quote
 * is exactly what an injection would need.
 */
export const SAFE_TEXT_RE = /^[\x20-\x7e]*$/;
export function freeText(max: number) {
  return z
    .string()
    .max(max, `must be at most ${max} characters`)
    .regex(SAFE_TEXT_RE, "must be printable ASCII without control characters")
    .refine((s) => !/["\\]/.test(s), 'must not contain a double quote (") or a backslash');
}
export const Comment = freeText(128);

/**
 * Interface name as the kernel accepts it (dev_valid_name: 1-15 bytes for IFNAMSIZ 16 with
 * the NUL, no '/', ':' or whitespace, not "." or ".."), with an optional trailing '*'
 * wildcard (nft `iifname "eth*"`, iptables `eth+`). Aliases like eth0:1 are not devices:
 * a rule naming one would load and never match.
 */
export const Interface = z
  .string()
  .regex(
    /^[A-Za-z0-9_.@-]{1,15}\*?$/,
    "must be an interface name: 1-15 of letters, digits, '_', '.', '@', '-' (no ':', '/' or spaces), optionally ending in '*'",
  )
  .refine((s) => s !== "." && s !== "..", 'must not be "." or ".." (the kernel refuses those names)');

/** A log prefix: leave it out for none; an empty one is refused rather than rendered as "". */
export function logPrefix(max: number) {
  return freeText(max).min(1, "must not be empty (leave the prefix out for none)");
}

/** The refusal of an address: the zone id's own reason (fe80::1%eth0), else `generic`. */
const addressError = (generic: string) => (iss: { input?: unknown }) =>
  (typeof iss.input === "string" ? zoneIdProblem(iss.input) : undefined) ?? generic;

export const Address = z.string().refine((s) => !s.includes("/") && parsePrefix(s) !== null, {
  error: addressError("must be an IPv4 or IPv6 address"),
});
export const Cidr = z
  .string()
  .refine((s) => parsePrefix(s) !== null, { error: addressError("must be an IPv4/IPv6 address or prefix (CIDR)") });
/** An address, a prefix, or a reference to a named address set ("@name"). */
export const AddressItem = z
  .string()
  .refine((s) => (s.startsWith("@") ? NAME_RE.test(s.slice(1)) : parsePrefix(s) !== null), {
    error: addressError("must be an address, a CIDR prefix or '@setname'"),
  });
export const AddressList = z.union([AddressItem, z.array(AddressItem).min(1).max(4096)]);

export const Port = z.number().int().min(0).max(65535);
/** 22, "1000-2000", or a list of those. */
export const PortItem = z.union([
  Port,
  z
    .string()
    .regex(/^\d{1,5}-\d{1,5}$/, 'must be a port or a range "low-high"')
    .refine((s) => {
      const [lo, hi] = s.split("-").map(Number) as [number, number];
      return lo <= hi && hi <= 65535;
    }, "range must be low-high with low <= high <= 65535"),
]);
export const PortList = z.union([PortItem, z.array(PortItem).min(1).max(4096)]);

export const Protocol = z.enum([
  "tcp",
  "udp",
  "icmp",
  "icmpv6",
  "sctp",
  "udplite",
  "dccp",
  "gre",
  "esp",
  "ah",
  // Protocols without ports that router scripts allow or drop (multicast, routing, VRRP, tunnels).
  "igmp",
  "ipip",
  "ipv6",
  "ospf",
  "pim",
  "vrrp",
  "l2tp",
]);
/** IANA numbers of the protocols rendered as numbers (no /etc/protocols lookup on the host). */
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  igmp: 2,
  ipip: 4,
  ipv6: 41,
  ospf: 89,
  pim: 103,
  vrrp: 112,
  l2tp: 115,
};

export const RATE_UNITS = ["second", "minute", "hour", "day"] as const;
/** "60/second", "5/minute". */
export const Rate = z
  .string()
  .regex(/^[1-9]\d{0,8}\/(second|minute|hour|day)$/, 'must be "N/second", "N/minute", "N/hour" or "N/day"');
export function parseRate(rate: string): { count: number; per: (typeof RATE_UNITS)[number] } {
  const [count, per] = rate.split("/") as [string, (typeof RATE_UNITS)[number]];
  return { count: Number(count), per };
}

export const Seconds = z
  .number()
  .int()
  .min(1)
  .max(365 * 86400);
export const U32 = z.number().int().min(0).max(0xffffffff);

/** A match value, or `{ not: value }` for its negation (iptables' `!`). */
export function negatable<T extends z.ZodTypeAny>(schema: T) {
  return z.union([schema, z.strictObject({ not: schema })]);
}
export type Negatable<T> = T | { not: T };
export function isNegated<T>(v: Negatable<T>): v is { not: T } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && "not" in v;
}
export function unwrap<T>(v: Negatable<T>): { value: T; negated: boolean } {
  return isNegated(v) ? { value: v.not, negated: true } : { value: v, negated: false };
}
