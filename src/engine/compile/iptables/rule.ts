// One policy rule -> the bodies of the iptables rules that express it in one family
// (several when a list must be split, none when the rule cannot match in the family).
import type { Path } from "../../diagnostics.ts";
import { normalizeAction, type Rule } from "../../policy/index.ts";
import { actionFamily, actionPieces } from "./action.ts";
import type { Fam, IptCtx, Table } from "./context.ts";
import { matchAlternatives, positiveProtocol } from "./match.ts";
import { SLOT, joinPieces, piece } from "./pieces.ts";
import { quoteText } from "./quote.ts";

/** A rule may split into this many iptables rules at most (lists multiply). */
export const MAX_EXPANSION = 4096;

export interface RuleSite {
  ctx: IptCtx;
  fam: Fam;
  table: Table;
  hook?: string;
  /** Policy chain name, for derived names. */
  chain: string;
  path: Path;
}

export function renderRule(rule: Rule, site: RuleSite): string[] {
  const a = normalizeAction(rule.action);
  const af = actionFamily(a, site.ctx.policy.sets);
  if (af && af !== site.fam) return [];
  const seed = JSON.stringify([site.chain, rule.match ?? null, rule.action]);
  const env = { ctx: site.ctx, fam: site.fam, table: site.table, hook: site.hook, seed, path: [...site.path, "match"] };
  const alts = matchAlternatives(rule.match, env);
  if (!alts) return [];
  if (alts.length > MAX_EXPANSION) {
    site.ctx.error(
      [...site.path, "match"],
      "iptables_rule_expansion",
      `this rule's lists multiply into ${alts.length} iptables rules (at most ${MAX_EXPANSION}); use named sets`,
    );
    return [];
  }
  const target = actionPieces(a, { ...env, proto: positiveProtocol(rule.match), actionPath: [...site.path, "action"] });
  const comment =
    rule.comment !== undefined
      ? [piece(SLOT.comment, `-m comment --comment ${quoteText(rule.comment, site.ctx, [...site.path, "comment"])}`)]
      : [];
  return alts.map((alt) => joinPieces([...alt, ...comment, ...target]));
}
