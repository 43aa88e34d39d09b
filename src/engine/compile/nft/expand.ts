// Protection presets are expanded into plain chains/rules/sets by engine/expand (owned
// elsewhere). Until it exists this is the identity, and policies with presets render
// their explicit rules only.
import type { Policy } from "../../policy/index.ts";

export function expand(policy: Policy): Policy {
  return policy;
}
