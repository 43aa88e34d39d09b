// A read-only view of a parsed policy that the checks share: every rule with its path and
// normalised action, the jump graph, and the hooks each chain can run at.
import { normalizeAction, type ActionObject, type Chain, type Match, type Policy, type Rule } from "../policy/index.ts";
import type { Path } from "../diagnostics.ts";

export type Hook = NonNullable<Chain["hook"]>;

export interface RuleRef {
  chainName: string;
  chain: Chain;
  index: number;
  rule: Rule;
  action: ActionObject;
  match: Match;
  path: Path;
}

// Every check walks the rules (about fifteen walks per validation): within one
// validatePolicy call (withRuleCache) a policy's refs are built once. Only there: a policy
// object is not guaranteed unchanged between calls (the importer builds one in place).
let cache: WeakMap<Policy, readonly RuleRef[]> | undefined;

/** Run `fn` (one validation, which changes no policy) with rulesOf's results kept. */
export function withRuleCache<T>(fn: () => T): T {
  const outer = cache;
  cache ??= new WeakMap();
  try {
    return fn();
  } finally {
    cache = outer;
  }
}

export function rulesOf(policy: Policy): readonly RuleRef[] {
  const hit = cache?.get(policy);
  if (hit) return hit;
  const out: RuleRef[] = [];
  for (const [chainName, chain] of sortedEntries(policy.chains)) {
    chain.rules.forEach((rule, index) => {
      out.push({
        chainName,
        chain,
        index,
        rule,
        action: normalizeAction(rule.action),
        match: rule.match ?? {},
        path: ["chains", chainName, "rules", index],
      });
    });
  }
  cache?.set(policy, out);
  return out;
}

export function sortedEntries<T>(rec: Record<string, T>): Array<[string, T]> {
  return Object.entries(rec).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** jump/goto targets of a chain that exist as chains (missing ones are reported elsewhere). */
export function jumpTargets(policy: Policy, chain: Chain): string[] {
  const out: string[] = [];
  for (const rule of chain.rules) {
    const a = normalizeAction(rule.action);
    if ((a.type === "jump" || a.type === "goto") && Object.hasOwn(policy.chains, a.chain)) out.push(a.chain);
  }
  return out;
}

/**
 * The hooks each chain runs at: a base chain at its own hook, a user chain at the hooks of
 * every chain that jumps to it (transitively, same table only). Unreached user chains get none.
 */
export function chainHooks(policy: Policy): Map<string, Set<Hook>> {
  const hooks = new Map<string, Set<Hook>>();
  for (const name of Object.keys(policy.chains)) hooks.set(name, new Set());
  const work: string[] = [];
  for (const [name, chain] of sortedEntries(policy.chains)) {
    if (chain.hook) hooks.get(name)!.add(chain.hook), work.push(name);
  }
  while (work.length > 0) {
    const name = work.pop()!;
    const chain = policy.chains[name]!;
    const from = hooks.get(name)!;
    for (const target of jumpTargets(policy, chain)) {
      const t = policy.chains[target]!;
      if (t.hook || t.table !== chain.table) continue;
      const to = hooks.get(target)!;
      const before = to.size;
      for (const h of from) to.add(h);
      if (to.size !== before) work.push(target);
    }
  }
  return hooks;
}

/** The match values as a flat list, whatever single/list form the user wrote. */
export function asList<T>(v: T | T[]): T[] {
  return Array.isArray(v) ? v : [v];
}

/**
 * What a hook check's message adds after "at the X hook": nothing for a base chain (the hook is
 * its own), ` (chain "NAME" is reached from there)` for a user chain, whose hooks are its callers'.
 */
export function reachedFrom(r: RuleRef): string {
  return r.chain.hook ? "" : ` (chain "${r.chainName}" is reached from there)`;
}
