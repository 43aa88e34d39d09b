// Everything the kernel holds in Palisade's tables, read through the engine's driver
// (the only code that runs nft). One `nft -j list table` per Palisade table: foreign
// tables are never even listed.

import type { Driver, RulesetState, TableState } from "../../engine/index.ts";

export function emptyState(): RulesetState {
  return { tables: [], chains: [], rules: [], sets: [], counters: [], quotas: [], ctHelpers: [] };
}

/** `tables`: Palisade's tables as the caller just listed them (telemetry), else listed here. */
export async function readPalisade(driver: Driver, tables?: TableState[]): Promise<RulesetState> {
  const st = emptyState();
  for (const t of tables ?? (await driver.listTables())) {
    const one = await driver.readTable(t.family, t.name);
    st.tables.push(...one.tables);
    st.chains.push(...one.chains);
    st.rules.push(...one.rules);
    st.sets.push(...one.sets);
    st.counters.push(...one.counters);
    st.quotas.push(...one.quotas);
    st.ctHelpers.push(...one.ctHelpers);
  }
  return st;
}
