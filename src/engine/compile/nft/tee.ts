// TEE -> `dup to <gateway>`. nft 1.0.6 accepts `dup to` only in tables of family ip or
// ip6 (in inet it says "unsupported family"), so clones live in their own tables,
// `table ip palisade_tee` / `table ip6 palisade_tee6`, in a base chain on the same hook
// as the policy chain, one priority step earlier. Consequence: a TEE clones what
// reaches that hook even if an earlier rule of the policy chain drops it; a TEE rule
// may only match on packet fields (no named sets, meters, recent lists or quotas,
// which live in the inet table).
import type { Chain as NftChain, Hook, Priority, Rule as NftRule, TableDefinition } from "../../nft/index.ts";
import type { Chain, Match } from "../../policy/index.ts";
import type { Ctx, Fam, TeeRule } from "./context.ts";
import { chainPlacement } from "./chains.ts";

export const TEE_TABLES: Record<Fam, { family: "ip" | "ip6"; name: string }> = {
  ipv4: { family: "ip", name: "palisade_tee" },
  ipv6: { family: "ip6", name: "palisade_tee6" },
};

/** Why a TEE rule's match cannot move to the ip/ip6 table, if it cannot. */
export function teeMatchProblem(m: Match | undefined): string | undefined {
  if (!m) return undefined;
  const refs = [m.saddr, m.daddr].some((v) => JSON.stringify(v ?? "").includes("@"));
  if (refs || m.meter || m.recent || m.quota)
    return "a TEE rule cannot use named sets, meters, recent lists or quotas (its clone runs in the separate ip/ip6 table)";
  return undefined;
}

function earlier(p: Priority): Priority {
  if (typeof p === "number") return p - 1;
  if (typeof p === "string") return { base: p, offset: -1 };
  return { base: p.base, offset: p.offset - 1 };
}

/** Collected TEE rules per policy chain -> table definitions for the ip/ip6 tee tables. */
export function teeTables(
  byChain: Map<string, { chain: Chain; rules: TeeRule[] }>,
  ctx: Ctx,
): Map<Fam, TableDefinition> {
  const defs = new Map<Fam, TableDefinition>();
  for (const [name, { chain, rules }] of byChain) {
    const placement = chainPlacement(chain, ctx, ["chains", name]);
    if (!placement || !chain.hook) {
      ctx.error(
        ["chains", name],
        "nft_tee_needs_base_chain",
        "TEE (nft `dup to`) needs a chain with a hook: its clone runs in a separate ip/ip6 table at that hook",
      );
      continue;
    }
    for (const fam of ["ipv4", "ipv6"] as const) {
      const mine = rules.filter((r) => r.fam === fam);
      if (mine.length === 0) continue;
      const t = TEE_TABLES[fam];
      const def = defs.get(fam) ?? { table: { kind: "table", family: t.family, name: t.name }, chains: [], rules: [] };
      const c: NftChain = {
        kind: "chain",
        family: t.family,
        table: t.name,
        name: `tee_${name}`,
        type: placement.type === "nat" ? "filter" : placement.type,
        hook: chain.hook as Hook,
        priority: earlier(placement.priority),
        comment: `TEE clones for chain ${name}`,
      };
      def.chains.push(c);
      for (const r of mine) {
        const rule: NftRule = {
          kind: "rule",
          family: t.family,
          table: t.name,
          chain: c.name,
          body: r.body,
          comment: r.comment,
        };
        def.rules.push(rule);
      }
      defs.set(fam, def);
    }
  }
  return defs;
}
