// validatePolicy: schema (zod) -> semantic errors -> lints (warnings) -> optional target
// support check. Errors refuse a policy; warnings never do.
import { Policy } from "../policy/index.ts";
import { error, sortDiagnostics, type Diagnostic } from "../diagnostics.ts";
import { translateZodIssues } from "./zod-issues.ts";
import { semanticErrors } from "./semantic.ts";
import { lintWarnings } from "./lints.ts";
import { targetSupport } from "./target.ts";
import { limitErrors } from "./limits.ts";
import { withRuleCache } from "./model.ts";
import { expandPolicy } from "../expand/index.ts";
import type { TargetCapabilities } from "../compile/hitcount.ts";

export type Target = "nftables" | "iptables";
export interface ValidateOptions {
  target?: Target;
  /** The host the policy is for, as its agent reported it: target limits that depend on the kernel. */
  capabilities?: TargetCapabilities;
  /**
   * Run the lints (default true). Lints only ever add warnings, never refuse a policy: a
   * caller that drops the warnings (the agent, which the API already showed them to) skips
   * their cost (about 100 ms for 10k rules).
   */
  lints?: boolean;
}
export interface ValidationResult {
  ok: boolean;
  /** The parsed policy (defaults filled in) when the schema accepted it, even if semantic errors remain. */
  policy?: Policy;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

export function validatePolicy(doc: unknown, opts: ValidateOptions = {}): ValidationResult {
  try {
    return withRuleCache(() => run(doc, opts));
  } catch (e) {
    // A validator bug must not become a 500 or a crash of the CLI: report it as a refusal.
    const msg = e instanceof Error ? e.message : String(e);
    return {
      ok: false,
      errors: [error([], "internal_error", `the validator failed on this document (${msg}); please report it`)],
      warnings: [],
    };
  }
}

function run(doc: unknown, opts: ValidateOptions): ValidationResult {
  const parsed = Policy.safeParse(doc);
  if (!parsed.success) {
    return { ok: false, errors: sortDiagnostics(translateZodIssues(parsed.error.issues, doc)), warnings: [] };
  }
  const policy = parsed.data;
  // Oversized documents stop here: the other checks assume sane totals.
  const limits = limitErrors(policy);
  if (limits.length > 0) return { ok: false, policy, errors: sortDiagnostics(limits), warnings: [] };
  const found = [...semanticErrors(policy), ...(opts.lints === false ? [] : lintWarnings(policy))];
  if (!found.some((d) => d.severity === "error")) found.push(...expansionErrors(policy));
  if (opts.target) found.push(...targetSupport(policy, opts.target, opts.capabilities));
  const errors = sortDiagnostics(found.filter((d) => d.severity === "error"));
  const warnings = sortDiagnostics(found.filter((d) => d.severity === "warning"));
  return { ok: errors.length === 0, policy, errors, warnings };
}

/**
 * Safety net: the preset expansion of a valid policy must itself be valid. A failure here is
 * a bug in expand/, reported against the presets rather than silently compiled.
 */
function expansionErrors(policy: Policy): Diagnostic[] {
  if (Object.values(policy.protections).every((v) => v === undefined)) return [];
  const bad = semanticErrors(expandPolicy(policy)).filter((d) => d.severity === "error");
  return bad.map((d) =>
    error(
      ["protections"],
      "preset_expansion_invalid",
      `the protection presets expand into an invalid rule at ${d.path} (${d.code}: ${d.message}); please report it`,
    ),
  );
}
