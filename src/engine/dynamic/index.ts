// The policy's dynamic sets as an operator sees them (docs/dynamic-sets.md): which kernel
// sets the compiler made dynamic (port-scan trap, SYN-flood, recent lists and their
// hit-count sets, meters), what made each one, and the nft text that lifts one element.
// Only sets in the policy's table with the `timeout` flag, named as the compiler names them,
// that a rule of the table writes from the packet path (`update @set`/`add @set`) qualify:
// their elements are packet-path state that expires by itself, so lifting one early is
// safe. (The kernel does not report the `dynamic` flag back in `nft -j`, measured on 6.x.)
// Declared sets, connlimit sets (connection lists, no timeout) and every other table are
// refused with `not_dynamic_set`. Pure.
import { IDENTIFIER_RE } from "../nft/names.ts";
import { parseBanAddress } from "../bans/address.ts";

/** The policy's table (compile/nft/context.ts renders everything into it). */
export const DYNAMIC_TABLE = { family: "inet", name: "palisade" } as const;

export type DynamicOwner = "portScanTrap" | "synFlood" | "recent" | "recent hitcount" | "meter";

/** What the kernel says about a set (driver/read.ts SetState, narrowed). */
export interface SetShape {
  family: string;
  table: string;
  name: string;
  type: string[];
  flags: string[];
}

/** A set the policy made dynamic, with address elements: listable and editable. `rules`: the table's rules (nft -j expressions). */
export function isDynamicSet(s: SetShape, rules: { expr: unknown[] }[]): boolean {
  return (
    s.family === DYNAMIC_TABLE.family &&
    s.table === DYNAMIC_TABLE.name &&
    s.flags.includes("timeout") &&
    rules.some((r) => ruleWritesSet(r.expr, s.name)) &&
    s.type.length === 1 &&
    (s.type[0] === "ipv4_addr" || s.type[0] === "ipv6_addr") &&
    ownerOf(s.name) !== undefined
  );
}

/** What made a set, from the names the compiler gives (expand/, compile/nft/recent.ts). */
export function ownerOf(name: string): DynamicOwner | undefined {
  if (!IDENTIFIER_RE.test(name)) return undefined;
  if (/^recent_protect_portscan_v[46]$/.test(name)) return "portScanTrap";
  if (/^recent_protect_synflood_/.test(name) || /^meter_protect_synflood_v[46]$/.test(name)) return "synFlood";
  if (/^recent_.+_hc\d+_\d+s(_dst)?_v[46]_(blocked|\d+)$/.test(name)) return "recent hitcount";
  if (/^recent_.+_v[46]$/.test(name)) return "recent";
  if (/^meter_.+_v[46]$/.test(name)) return "meter";
  return undefined;
}

export type DynamicRequestError = { code: "invalid_set_name" | "malformed_address"; message: string };

/** Check a lift request before anything reaches the kernel: a set name and one address of its family. */
export function checkLift(
  set: string,
  address: string,
): { ok: true; address: string; family: "ipv4" | "ipv6" } | { ok: false; error: DynamicRequestError } {
  if (!IDENTIFIER_RE.test(set) || ownerOf(set) === undefined)
    return {
      ok: false,
      error: {
        code: "invalid_set_name",
        message: `"${set}" is not a dynamic set of the policy (recent_*, meter_* sets of the port-scan trap, SYN-flood, recent lists and meters)`,
      },
    };
  const a = parseBanAddress(address);
  if (!a.ok || !a.value.single)
    return {
      ok: false,
      error: { code: "malformed_address", message: `"${address}" is not a single IPv4 or IPv6 address` },
    };
  return { ok: true, address: a.value.text, family: a.value.family };
}

/**
 * Lift one element: `add` (a no-op when present, else created with the set's timeout) then
 * `delete`, so lifting an element that expired a moment ago is no error.
 */
export function liftText(set: string, address: string): string {
  const t = `inet ${DYNAMIC_TABLE.name} ${set}`;
  return `add element ${t} { ${address} }\ndelete element ${t} { ${address} }\n`;
}

/** Does this rule (nft -j expressions) add to or update the set from the packet path? */
export function ruleWritesSet(expr: unknown[], set: string): boolean {
  return JSON.stringify(expr).includes(`"set":"@${set}"`);
}

/** Does this rule (nft -j expressions) name the set? */
export function ruleUsesSet(expr: unknown[], set: string): boolean {
  return JSON.stringify(expr).includes(`"@${set}"`);
}
