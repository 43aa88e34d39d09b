// Which kernel features (nft/kernel-features.ts) a policy's nftables rendering needs (by a
// rule's action or a key of its match), and the rules that need them: what the API checks
// against the features a host's agent reported before it deploys a version there. Works on a stored document as well as on a
// validated policy (a chain without `rules` has none), so a deploy does not re-validate.
import { KERNEL_FEATURES, type KernelFeature, type KernelFeatureName } from "../nft/kernel-features.ts";
import { normalizeAction, type Policy } from "../policy/index.ts";
import { sortedEntries } from "./model.ts";

export interface KernelFeatureUse {
  feature: KernelFeatureName;
  /** JSON pointers of the rules that need it (/chains/NAME/rules/INDEX), in chain-name order. */
  rules: string[];
}

const pointer = (...parts: (string | number)[]) =>
  parts.map((p) => `/${String(p).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");

/** The features the policy needs, by name, each with its rules; features no rule needs are left out. */
export function kernelFeatureUses(policy: Policy): KernelFeatureUse[] {
  const found = new Map<KernelFeatureName, string[]>();
  for (const [chainName, chain] of sortedEntries(policy.chains ?? {})) {
    (chain.rules ?? []).forEach((rule, index) => {
      const action = normalizeAction(rule.action).type;
      const matches = rule.match ?? {};
      for (const [feature, f] of Object.entries(KERNEL_FEATURES) as [KernelFeatureName, KernelFeature][]) {
        const needs =
          f.actions.includes(action) || f.matches.some((m) => (matches as Record<string, unknown>)[m] !== undefined);
        if (!needs) continue;
        if (!found.has(feature)) found.set(feature, []);
        found.get(feature)!.push(pointer("chains", chainName, "rules", index));
      }
    });
  }
  return [...found.keys()].sort().map((feature) => ({ feature, rules: found.get(feature)! }));
}
