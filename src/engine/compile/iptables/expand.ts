// Protection presets expand into plain chains and rules in engine/expand (owned
// elsewhere). Until expandPolicy exists, a policy that uses presets is refused for the
// iptables target rather than rendered without its protections.
import { error, type Diagnostic } from "../../diagnostics.ts";
import type { Policy } from "../../policy/index.ts";

export function expand(policy: Policy): { policy: Policy; errors: Diagnostic[] } {
  const errors = Object.entries(policy.protections)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => error(["protections", k], "iptables_preset_not_expanded", `protection preset ${k} cannot be rendered for iptables yet: the preset expander (engine/expand) is not available`));
  return { policy, errors };
}
