// Everything the kernel holds in Palisade's tables, read through the engine's driver
// (the only code that runs nft). One `nft -j list table` per Palisade table: foreign
// tables are never even listed.

import { listPalisadeTables, readTable, type DriverOptions, type RulesetState } from "../../engine/driver/index.ts";

export function emptyState(): RulesetState {
  return { tables: [], chains: [], rules: [], sets: [], counters: [], quotas: [] };
}

export async function readPalisade(opts: DriverOptions): Promise<RulesetState> {
  const st = emptyState();
  for (const t of await listPalisadeTables(opts)) {
    const one = await readTable(t.family, t.name, opts);
    st.tables.push(...one.tables);
    st.chains.push(...one.chains);
    st.rules.push(...one.rules);
    st.sets.push(...one.sets);
    st.counters.push(...one.counters);
    st.quotas.push(...one.quotas);
  }
  return st;
}
