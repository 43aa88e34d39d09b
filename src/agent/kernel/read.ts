// Everything the kernel holds in Palisade's tables, read through the engine's driver
// (the only code that runs nft). One `nft -j list table` per Palisade table: foreign
// tables are never even listed. The drift detector reads differently (readForDrift).

import {
  NftError,
  type Driver,
  type ReadOptions,
  type RulesetState,
  type SetState,
  type TableState,
} from "../../engine/index.ts";
import { tableKey } from "./statements.ts";

export function emptyState(): RulesetState {
  return { tables: [], chains: [], rules: [], sets: [], counters: [], quotas: [], ctHelpers: [] };
}

/** `tables`: Palisade's tables as the caller just listed them (telemetry), else listed here. */
export async function readPalisade(
  driver: Driver,
  tables?: TableState[],
  read: ReadOptions = {},
): Promise<RulesetState> {
  const st = emptyState();
  for (const t of tables ?? (await driver.listTables())) {
    appendState(st, await driver.readTable(t.family, t.name, read));
  }
  return st;
}

/** Add `one`'s objects (one table's) to `st`. */
export function appendState(st: RulesetState, one: RulesetState): void {
  st.tables.push(...one.tables);
  st.chains.push(...one.chains);
  st.rules.push(...one.rules);
  st.sets.push(...one.sets);
  st.counters.push(...one.counters);
  st.quotas.push(...one.quotas);
  st.ctHelpers.push(...one.ctHelpers);
}

/**
 * Past this many sets to read one by one, each table is read whole (its kernel-filled sets'
 * elements too). A `list set` costs an nft spawn, ~5-20 ms; a table whose accounting set holds
 * 60k elements ~0.9 s whole: many policies name more than a handful of sets.
 */
export const MAX_SET_READS = 64;

const setKey = (s: SetState) => `${tableKey(s.family, s.table)} ${s.kind} ${s.name}`;

/**
 * What the drift detector compares: Palisade's tables in one listing without elements
 * (Driver.readWithoutElements: a 65k-element accounting set costs it nothing), then the
 * elements of each set drift compares, each set alone. `dynamic`: "family table kind name"
 * of the kernel-filled sets, whose elements are never compared, so never read.
 */
export async function readForDrift(
  driver: Driver,
  read: ReadOptions & { dynamic: ReadonlySet<string> },
): Promise<RulesetState> {
  const how: ReadOptions = { numericProtocols: read.numericProtocols === true };
  const terse = await driver.readWithoutElements(how);
  if (terse.sets.filter((s) => !read.dynamic.has(setKey(s))).length > MAX_SET_READS)
    return readPalisade(driver, terse.tables, how);
  const sets: SetState[] = [];
  for (const s of terse.sets) {
    if (read.dynamic.has(setKey(s))) {
      sets.push(s);
      continue;
    }
    // A set deleted between the two reads is read as missing, as one listing would have it.
    const one = await driver.readSet(s.family, s.table, s.name, s.kind, how).catch((e: unknown) => {
      if (e instanceof NftError && e.code === "not_found") return undefined;
      throw e;
    });
    if (one) sets.push(one);
  }
  return { ...terse, sets };
}
