// Protection presets become plain chains/rules/sets (engine/expand) before compiling, so
// the render shows every rule a preset adds. A policy without presets is used as it is
// (expanding copies the whole document, which costs seconds for a 1M-address set).
import { expandPolicy } from "../../expand/index.ts";
import { normalizeAction, type Policy } from "../../policy/index.ts";
import { moveAntiSpoofing } from "./anti-spoofing.ts";

export function expand(policy: Policy): Policy {
  const any = Object.values(policy.protections).some((v) => v !== undefined && !(Array.isArray(v) && v.length === 0));
  return any ? moveAntiSpoofing(expandPolicy(policy), policy) : policy;
}

/** How many of a chain's first rules jump to chains the expansion added (not in `original`). */
export function leadingPresetJumps(rules: Policy["chains"][string]["rules"], original: Policy): number {
  let n = 0;
  for (const r of rules) {
    const a = normalizeAction(r.action);
    if (a.type !== "jump" || Object.hasOwn(original.chains, a.chain)) break;
    n++;
  }
  return n;
}

/**
 * A JSON pointer into the expanded policy, as a pointer into the document the user wrote:
 * rule indexes shift back by the preset jumps the expansion put first, and anything in
 * a chain the expansion created belongs to `/protections`.
 */
export function toUserPointer(pointer: string, original: Policy, expanded: Policy): string {
  const m = /^\/chains\/([^/]+)(\/rules\/(\d+))?(.*)$/.exec(pointer);
  if (!m) return pointer;
  const name = m[1]!.replace(/~1/g, "/").replace(/~0/g, "~");
  if (!Object.hasOwn(original.chains, name)) return "/protections";
  if (m[3] === undefined) return pointer;
  const index = Number(m[3]) - leadingPresetJumps(expanded.chains[name]?.rules ?? [], original);
  return index < 0 ? "/protections" : `/chains/${m[1]}/rules/${index}${m[4]}`;
}
