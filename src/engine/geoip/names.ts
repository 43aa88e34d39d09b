// Country sets (xt_geoip on nftables): names and shapes. Pure.
//
// A policy rule with `xt.geoip` tests `ip saddr @geo_v4_CC` / `ip6 saddr @geo_v6_CC`, one
// interval set per country and family in the policy table `inet palisade`. The compiler
// declares them empty; the agent fills them with the ranges the API sends (merged to
// intervals), so a change of the country data is element statements, never a new version.
// The sets carry `flags interval, timeout` although no element has a timeout: the kernel
// refuses `dynamic` on an interval set (EOPNOTSUPP on 6.18), and `timeout` is what marks a
// set as kernel-filled for the agent's incremental re-applies (elements kept, not flushed)
// and for drift checks (elements not compared), exactly as for the policy's other sets the
// kernel fills at run time.
import * as z from "zod";
import type { Family } from "../net/address.ts";

/** ISO 3166 alpha-2, as xt_geoip's --src-cc takes it (upper case here). */
export const COUNTRY_RE = /^[A-Z]{2}$/;
export const CountryCode = z.string().regex(COUNTRY_RE, "must be an ISO-3166 alpha-2 code like DE");

export const GEO_SET_PREFIX = "geo_";
export const GEO_SET_FLAGS = ["interval", "timeout"] as const;

export function geoSetName(family: Family, country: string): string {
  return `${GEO_SET_PREFIX}${family === "ipv4" ? "v4" : "v6"}_${country}`;
}

export function geoSetType(family: Family): "ipv4_addr" | "ipv6_addr" {
  return family === "ipv4" ? "ipv4_addr" : "ipv6_addr";
}

/** The country and family a policy-table set stands for, or undefined when it is another set. */
export function geoOfSet(name: string): { family: Family; country: string } | undefined {
  const m = /^geo_v([46])_([A-Z]{2})$/.exec(name);
  if (!m) return undefined;
  return { family: m[1] === "4" ? "ipv4" : "ipv6", country: m[2]! };
}
