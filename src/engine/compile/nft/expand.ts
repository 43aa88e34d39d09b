// Protection presets become plain chains/rules/sets (engine/expand) before compiling, so
// the render shows every rule a preset adds. A policy without presets is used as it is
// (expanding copies the whole document, which costs seconds for a 1M-address set).
import { expandPolicy } from "../../expand/index.ts";
import type { Policy } from "../../policy/index.ts";

export function expand(policy: Policy): Policy {
  const any = Object.values(policy.protections).some((v) => v !== undefined && !(Array.isArray(v) && v.length === 0));
  return any ? expandPolicy(policy) : policy;
}
