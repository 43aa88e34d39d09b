// Everything the kernel holds in Palisade's tables, read through the engine's driver
// (the only code that runs nft). One `nft -j list table` per Palisade table: foreign
// tables are never even listed.

import {
  driver as kernel,
  type Driver,
  type DriverOptions,
  type RulesetState,
  type TableState,
} from "../../engine/index.ts";

export function emptyState(): RulesetState {
  return { tables: [], chains: [], rules: [], sets: [], counters: [], quotas: [] };
}

/**
 * `from`: a Driver, or DriverOptions for the nft driver (telemetry still passes options).
 * `tables`: Palisade's tables as the caller just listed them (telemetry), else listed here.
 */
export async function readPalisade(from: Driver | DriverOptions, tables?: TableState[]): Promise<RulesetState> {
  const driver = kernel.asDriver(from);
  const st = emptyState();
  for (const t of tables ?? (await driver.listTables())) {
    const one = await driver.readTable(t.family, t.name);
    st.tables.push(...one.tables);
    st.chains.push(...one.chains);
    st.rules.push(...one.rules);
    st.sets.push(...one.sets);
    st.counters.push(...one.counters);
    st.quotas.push(...one.quotas);
  }
  return st;
}
