// All semantic (refusing) checks on a schema-valid policy.
import type { Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";

export function semanticErrors(_policy: Policy): Diagnostic[] {
  return [];
}
