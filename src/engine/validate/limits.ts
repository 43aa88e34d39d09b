// Whole-document bounds the per-field schema cannot express (it bounds each list, not
// their sum). Checked first: the other checks assume a document of sane size.
import { error, type Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";

export const MAX_CHAINS = 4096;
export const MAX_TOTAL_RULES = 200_000;
export const MAX_SETS = 4096;
export const MAX_TOTAL_SET_ELEMENTS = 4_000_000;

export function limitErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const chains = Object.values(policy.chains);
  if (chains.length > MAX_CHAINS)
    out.push(
      error(["chains"], "too_many_chains", `the policy has ${chains.length} chains; at most ${MAX_CHAINS} are allowed`),
    );
  const rules = chains.reduce((n, c) => n + c.rules.length, 0);
  if (rules > MAX_TOTAL_RULES)
    out.push(
      error(
        ["chains"],
        "too_many_rules",
        `the policy has ${rules} rules in all; at most ${MAX_TOTAL_RULES} are allowed (use sets for long address or port lists)`,
      ),
    );
  const sets = Object.values(policy.sets);
  if (sets.length > MAX_SETS)
    out.push(error(["sets"], "too_many_sets", `the policy has ${sets.length} sets; at most ${MAX_SETS} are allowed`));
  const elements = sets.reduce((n, s) => n + s.elements.length, 0);
  if (elements > MAX_TOTAL_SET_ELEMENTS)
    out.push(
      error(
        ["sets"],
        "too_many_set_elements",
        `the sets hold ${elements} elements in all; at most ${MAX_TOTAL_SET_ELEMENTS} are allowed`,
      ),
    );
  for (const key of ["counters", "quotas", "accounting"] as const) {
    const n = Object.keys(policy[key]).length;
    if (n > MAX_SETS)
      out.push(error([key], "too_many_objects", `the policy declares ${n} ${key}; at most ${MAX_SETS} are allowed`));
  }
  return out;
}
