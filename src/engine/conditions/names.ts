// Operator conditions (xt_condition's named on/off flags) as nft sets. Pure.
//
// A policy rule with `xt.condition: NAME` becomes `meta nfproto @condition_NAME` in the
// policy table `inet palisade`: the set (type nf_proto, flags dynamic) holds
// { ipv4, ipv6 } while the condition is on for the host and nothing while it is off, so
// a flip is one element statement and never touches a rule. `dynamic` keeps its
// elements through the agent's incremental re-applies and out of drift checks, as for
// every set the kernel changes at run time. A condition the API does not know is off,
// as in xt_condition, where a name with no /proc entry matches nothing.
import * as z from "zod";

/** xt_condition's name rule (its /proc file name), the policy schema's too. */
export const CONDITION_NAME_RE = /^[A-Za-z0-9_]{1,27}$/;
export const CONDITION_NAME_RULE = "1-27 letters, digits or '_'";
export const ConditionName = z.string().regex(CONDITION_NAME_RE, `must be ${CONDITION_NAME_RULE}`);

export const CONDITION_SET_PREFIX = "condition_";
/** Every family a packet of an inet table has: the set's elements while the condition is on. */
export const CONDITION_ON_ELEMENTS = ["ipv4", "ipv6"] as const;
export const CONDITION_SET_TYPE = "nf_proto";

export function conditionSetName(name: string): string {
  return `${CONDITION_SET_PREFIX}${name}`;
}

/** The condition a policy-table set stands for, or undefined when it is another set. */
export function conditionOfSet(setName: string): string | undefined {
  if (!setName.startsWith(CONDITION_SET_PREFIX)) return undefined;
  const n = setName.slice(CONDITION_SET_PREFIX.length);
  return CONDITION_NAME_RE.test(n) ? n : undefined;
}

/**
 * One transaction that makes the condition sets of `family table` hold `on` (names) and
 * nothing else; `sets` are the condition sets the table has. Idempotent whatever the kernel
 * holds: an on set gets `add` (a no-op when present), an off set `flush set`.
 */
export function conditionSyncText(family: string, table: string, sets: string[], on: ReadonlySet<string>): string {
  const out: string[] = [];
  for (const s of [...sets].sort()) {
    const name = conditionOfSet(s);
    if (name === undefined) continue;
    if (on.has(name)) out.push(`add element ${family} ${table} ${s} { ${CONDITION_ON_ELEMENTS.join(", ")} }`);
    else out.push(`flush set ${family} ${table} ${s}`);
  }
  return out.length ? out.join("\n") + "\n" : "";
}
