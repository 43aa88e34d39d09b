// The chains of one family, table by table, and their text for `iptables-restore --noflush`.
//
// Palisade never flushes a builtin chain or changes its policy. Per builtin chain it uses
// (filter INPUT, nat PREROUTING, ...) it owns one entry chain PALISADE-<CHAIN>, reached by a
// single jump inserted at position 1 of the builtin chain; the entry chain holds the
// failsafe, the forwarding rules, then a jump to each of the policy's base chains on that
// hook (PAL-<name>, declaration order). A base chain with `policy: drop` ends in an explicit
// DROP rule: Palisade's verdict is final, as in nftables, and a foreign rule later in the
// builtin chain cannot widen it. `policy: accept` (or none) returns to the builtin chain.
// Under --noflush a `:CHAIN - [0:0]` line flushes an existing user chain, so each apply
// rewrites exactly Palisade's chains and nothing else.
import { TABLE_HOOKS, type Policy } from "../../policy/index.ts";
import { FAMS, TABLES, type Fam, type IptCtx, type Table } from "./context.ts";
import { failsafeRules } from "./failsafe.ts";
import { forwardingRules } from "./forwarding.ts";
import { builtinChain, chainName, entryChain } from "./names.ts";
import { renderRule } from "./rule.ts";

export const POLICY_DROP_COMMENT = "palisade: policy drop";

interface TableBuild {
  /** Chains to declare (flush), in order. */
  chains: string[];
  /** `-A CHAIN body` lines, in order. */
  rules: string[];
  /** Builtin chains that jump to their entry chain. */
  entries: string[];
}

function tableOf(builds: Map<Table, TableBuild>, t: Table): TableBuild {
  let b = builds.get(t);
  if (!b) {
    b = { chains: [], rules: [], entries: [] };
    builds.set(t, b);
  }
  return b;
}

export function buildFamily(policy: Policy, fam: Fam, ctx: IptCtx): Map<Table, TableBuild> {
  const builds = new Map<Table, TableBuild>();
  const fwd = forwardingRules(policy, fam, ctx);
  const baseChains = new Map<string, string[]>();
  for (const [name, chain] of Object.entries(policy.chains)) {
    if (!chain.hook) continue;
    if (!TABLE_HOOKS[chain.table].includes(chain.hook)) {
      ctx.error(
        ["chains", name, "hook"],
        "iptables_hook_table",
        `table ${chain.table} has no ${builtinChain(chain.hook)} chain in iptables (it has ${TABLE_HOOKS[chain.table].map(builtinChain).join(", ")})`,
      );
      continue;
    }
    const key = `${chain.table}/${chain.hook}`;
    baseChains.set(key, [...(baseChains.get(key) ?? []), name]);
  }
  for (const table of TABLES) {
    for (const hook of TABLE_HOOKS[table]) {
      const key = `${table}/${hook}`;
      const bases = baseChains.get(key) ?? [];
      const mine = fwd.filter((r) => r.table === table && r.hook === hook);
      if (bases.length === 0 && !mine.some((r) => r.creates)) continue;
      const b = tableOf(builds, table);
      const entry = entryChain(hook);
      b.chains.push(entry);
      b.entries.push(builtinChain(hook));
      const bodies = [
        ...failsafeRules(policy, hook, table, fam, ctx.options.failsafe),
        ...mine.map((r) => r.body),
        ...bases.map((n) => `-j ${chainName(n)}`),
      ];
      for (const body of bodies) b.rules.push(`-A ${entry} ${body}`);
    }
  }
  for (const [name, chain] of Object.entries(policy.chains)) {
    if (chain.hook && !TABLE_HOOKS[chain.table].includes(chain.hook)) continue;
    const b = tableOf(builds, chain.table);
    const kernel = chainName(name);
    b.chains.push(kernel);
    chain.rules.forEach((rule, i) => {
      const site = { ctx, fam, table: chain.table, hook: chain.hook, chain: name, path: ["chains", name, "rules", i] };
      for (const body of renderRule(rule, site)) b.rules.push(`-A ${kernel} ${body}`);
    });
    if (chain.hook && chain.policy === "drop")
      b.rules.push(`-A ${kernel} -m comment --comment "${POLICY_DROP_COMMENT}" -j DROP`);
  }
  return builds;
}

const FAMILY_WORD: Record<Fam, string> = { ipv4: "IPv4, iptables-restore", ipv6: "IPv6, ip6tables-restore" };

/** The restore text of one family, given what is installed already. */
export function familyText(policy: Policy, fam: Fam, ctx: IptCtx): string {
  const builds = buildFamily(policy, fam, ctx);
  const installed = ctx.options.installed?.[fam];
  const lines = [
    `# Palisade ruleset (${FAMILY_WORD[fam]} --noflush). Generated; do not edit.`,
    "# Only chains named PAL-* and PALISADE-* are flushed and rewritten; builtin chains keep their rules and policy.",
  ];
  for (const table of TABLES) {
    const b = builds.get(table);
    const stale = (installed?.chains[table] ?? []).filter((c) => !b?.chains.includes(c)).sort();
    if (!b && stale.length === 0) continue;
    lines.push(`*${table}`);
    for (const c of [...(b?.chains ?? []), ...stale]) lines.push(`:${c} - [0:0]`);
    const jumped = installed?.jumps[table] ?? [];
    for (const c of stale) {
      const builtin = c.startsWith("PALISADE-") ? c.slice("PALISADE-".length) : undefined;
      if (builtin && jumped.includes(builtin)) lines.push(`-D ${builtin} -j ${c}`);
    }
    for (const c of stale) lines.push(`-X ${c}`);
    lines.push(...(b?.rules ?? []));
    for (const builtin of b?.entries ?? []) {
      if (!jumped.includes(builtin)) lines.push(`-I ${builtin} 1 -j ${entryChain(builtin)}`);
    }
    lines.push("COMMIT");
  }
  return lines.join("\n") + "\n";
}

export { FAMS };
