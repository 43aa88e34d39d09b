// iptables evaluates a rule's -m matches in the order they were given, and a stateful
// match (a token bucket, a recent list, a quota, an nth counter) only sees the packets that
// passed the matches before it. The policy has no order inside a rule: both compilers put
// the stateful matches after every other one, in one fixed order (compile/nft/match.ts).
// When a line lists them differently, the import changes which packets spend the state:
// say so in the report instead of changing it silently.
import type { Options } from "./rule-draft.ts";

/** Where each stateful module sits in the compiled rule; other modules are 0 (first). */
const RANK: Record<string, number> = {
  limit: 1,
  hashlimit: 2,
  recent: 3,
  quota: 4,
  quota2: 4,
  statistic: 5,
  psd: 6,
  connlimit: 7,
};

/** Modules that change no state: their place among matches without state does not matter. */
const NO_EFFECT = new Set(["comment"]);

interface Loaded {
  name: string;
  opts: Options;
}

/** A stateful module that only reads (recent --rcheck, statistic random) spends nothing. */
function readsOnly(m: Loaded): boolean {
  if (m.name === "recent") return !m.opts.has("--set") && !m.opts.has("--update") && !m.opts.has("--remove");
  if (m.name === "statistic") return m.opts.get("--mode")?.value === "random";
  return false;
}

/**
 * A warning for the report when the compiled rule evaluates a stateful match at another
 * place than the line did (undefined when the orders agree, as in nearly every real rule).
 */
export function matchOrderWarning(modules: readonly Loaded[]): string | undefined {
  const live = modules.filter((m) => !NO_EFFECT.has(m.name));
  for (let i = 0; i < live.length; i++) {
    const a = live[i]!;
    const ra = RANK[a.name] ?? 0;
    if (ra === 0) continue;
    for (let j = i + 1; j < live.length; j++) {
      const b = live[j]!;
      const rb = RANK[b.name] ?? 0;
      if (rb >= ra) continue;
      // Both read-only or stateless: moving one past the other changes no state.
      if (rb === 0 && readsOnly(a)) continue;
      // The hit-count idiom (compile/hitcount.ts): the count still sees every packet that
      // reaches the rule; it is the limit, tested before the hit count, that sees too many.
      if (a.name === "recent" && b.name === "limit" && Number(a.opts.get("--hitcount")?.value ?? 0) > 1)
        return (
          "warning: -m recent comes before -m limit on this line; the policy tests the limit before the hit count, " +
          "so every packet that reaches the rule spends a token, not only those at the hit count, and the rule " +
          "matches fewer packets than in iptables. To keep iptables' meaning, jump to a chain of your own that " +
          "holds the -m limit and the target"
        );
      return (
        `warning: -m ${a.name} comes before -m ${b.name} on this line; the policy evaluates ${a.name} after ` +
        `${b.name} (stateful matches go last), so its state now sees only packets that also match -m ${b.name}. ` +
        `Move -m ${a.name} after -m ${b.name} in the source if that was not meant`
      );
    }
  }
  return undefined;
}

/**
 * The stateful modules a line lists before its `-m limit`, when that is the line's only
 * disorder: the limit is the last module (comments aside), there is one limit, and the
 * other modules keep their order in the policy. Such a line is imported faithfully by
 * moving the limit (with the action) into a chain of its own that the rule jumps to: the
 * limit then sees exactly the packets that passed every other match (iptables.ts).
 * Undefined when the line is in order or has another disorder (the warning stays).
 */
export function statefulBeforeLastLimit(modules: readonly Loaded[]): string[] | undefined {
  const live = modules.filter((m) => !NO_EFFECT.has(m.name));
  const last = live.at(-1);
  if (last?.name !== "limit" || live.filter((m) => m.name === "limit").length !== 1) return undefined;
  const rest = live.slice(0, -1);
  if (matchOrderWarning(live) === undefined || matchOrderWarning(rest) !== undefined) return undefined;
  return [...new Set(rest.filter((m) => (RANK[m.name] ?? 0) > RANK.limit!).map((m) => m.name))];
}
