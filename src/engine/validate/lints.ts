// All lints (warnings) on a schema-valid policy. Warnings never refuse a policy.
import type { Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";
import { shadowWarnings } from "./lint-shadow.ts";
import { lockoutWarnings } from "./lint-lockout.ts";
import { tarpitWarnings } from "./lint-tarpit.ts";
import { miscWarnings } from "./lint-misc.ts";

export function lintWarnings(policy: Policy): Diagnostic[] {
  return [...shadowWarnings(policy), ...lockoutWarnings(policy), ...tarpitWarnings(policy), ...miscWarnings(policy)];
}
