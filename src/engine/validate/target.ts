// Whether a target (nftables, iptables-restore) can express every feature a policy uses.
// The compilers own that knowledge (src/engine/compile/support.ts); this is the one seam.
import type { Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";

// TODO(compile/support.ts): import { checkTargetSupport } from "../compile/support.ts" once
// the compiler engineers have committed it, and return checkTargetSupport(policy, target).
export function targetSupport(_policy: Policy, _target: "nftables" | "iptables"): Diagnostic[] {
  return [];
}
