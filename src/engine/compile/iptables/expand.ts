// Protection presets expand into plain chains and rules (engine/expand), which this
// compiler renders like any other; the render shows every rule a preset adds.
import type { Diagnostic } from "../../diagnostics.ts";
import { expandPolicy } from "../../expand/index.ts";
import type { Policy } from "../../policy/index.ts";

export function expand(policy: Policy): { policy: Policy; errors: Diagnostic[] } {
  return { policy: expandPolicy(policy), errors: [] };
}
