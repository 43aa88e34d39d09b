// How a quota's two `grow`s combine. quota2 decides --grow per rule; the policy says it once
// per quota (`quotas.NAME.grow`: every rule grows) or per rule (`match.quota.grow`: this rule
// fills a budget the others take from, the manual's bytebucket). A rule grows if either says so.
import { error, warning, type Diagnostic } from "../diagnostics.ts";
import { quotaRuleFills, quotaRuleGrows, type Policy } from "../policy/index.ts";
import { rulesOf, sortedEntries } from "./model.ts";

export function quotaGrowthProblems(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  /** Per quota without `grow`: do all its rules grow? */
  const allFill = new Map<string, boolean>();
  for (const r of rulesOf(policy)) {
    const q = r.match.quota;
    const def = q ? policy.quotas[q.name] : undefined;
    if (!q || !def) continue; // an undeclared quota is a reference error
    const at = [...r.path, "match", "quota"];
    if (def.grow && q.grow === false)
      out.push(
        error(
          [...at, "grow"],
          "quota_grow_conflict",
          `quota ${q.name} grows in every rule (quotas.${q.name}.grow) but this rule says grow: false; for a bucket that some rules fill and others take from, remove grow from quotas.${q.name}, give it a limit (its initial content, 0 for empty) and set grow: true on the rules that fill it`,
        ),
      );
    if (quotaRuleGrows(def, q) && q.invert)
      out.push(
        warning(
          [...at, "invert"],
          "quota_invert_with_grow",
          `invert has no effect on a rule that grows a quota (${q.name} counts up here and always matches)`,
        ),
      );
    if (!def.grow) allFill.set(q.name, (allFill.get(q.name) ?? true) && quotaRuleFills(def, q));
  }
  for (const [name, every] of sortedEntries(Object.fromEntries(allFill)))
    if (every)
      out.push(
        warning(
          ["quotas", name],
          "quota_grows_in_every_rule",
          `every rule that uses quota ${name} grows it, so nothing takes from it: declare it a growing counter (quotas.${name}.grow: true, limit as its start value) and drop grow from the rules`,
        ),
      );
  return out;
}
