// All lints (warnings) on a schema-valid policy.
import type { Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";

export function lintWarnings(_policy: Policy): Diagnostic[] {
  return [];
}
