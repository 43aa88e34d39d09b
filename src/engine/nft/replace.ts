// The transaction shapes the agent needs most, built from the primitives.
//
// Full replace: `add table` + `delete table` + the new definition, in one transaction.
// `add table` makes the delete valid when the table does not exist yet, and deleting
// the table (rather than `flush table`) also drops named sets, maps, counters and
// quotas: measured on nft 1.0.6, `flush table` empties chains but NOT named sets.
// State the kernel holds (counter values, quota usage, set elements with counters)
// survives only if the caller reads it first and carries it in the definition.

import { Transaction } from "./transaction.ts";
import type {
  Chain,
  Counter,
  Elements,
  Family,
  NamedMap,
  NamedSet,
  Quota,
  Rule,
  SetElement,
  Table,
  TableRef,
} from "./transaction.ts";

/** Everything one Palisade table holds, as the compilers produce it. */
export interface TableDefinition {
  table: Table;
  counters?: Counter[];
  quotas?: Quota[];
  /** Sets and maps, with their elements. */
  sets?: (NamedSet | NamedMap)[];
  /** All chains, base and regular; they are created before any rule so jumps resolve. */
  chains: Chain[];
  rules: Rule[];
}

/** The operations that create a table's content, assuming the table is empty or absent. */
export function defineTable(def: TableDefinition, tx = new Transaction()): Transaction {
  tx.add(def.table);
  for (const c of def.counters ?? []) tx.add(c);
  for (const q of def.quotas ?? []) tx.add(q);
  // Verdict maps may name chains (`jump x`), so regular chains come before sets/maps.
  for (const c of def.chains) if (c.hook === undefined) tx.add(c);
  for (const s of def.sets ?? []) tx.add(s);
  for (const c of def.chains) if (c.hook !== undefined) tx.add(c);
  for (const r of def.rules) tx.add(r);
  return tx;
}

export interface ReplaceOptions {
  /** Palisade tables present now but absent from `defs`: deleted in the same transaction. */
  remove?: TableRef[];
}

/**
 * Replace Palisade's tables in ONE transaction. Works whether or not each table
 * exists; tables listed in `remove` must exist (read them from the kernel first).
 */
export function replaceTables(defs: TableDefinition[], opts: ReplaceOptions = {}): Transaction {
  const tx = new Transaction();
  for (const t of opts.remove ?? []) tx.delete({ kind: "table", family: t.family, name: t.name });
  for (const def of defs) {
    const ref = { kind: "table" as const, family: def.table.family, name: def.table.name };
    tx.add(ref);
    tx.delete(ref);
    defineTable(def, tx);
  }
  return tx;
}

/**
 * Rewrite one chain: (re)declare it, flush it, add its rules. For a base chain the
 * hook and priority must be unchanged (the kernel refuses to move a hook; that needs
 * replaceTables); the policy may change.
 */
export function replaceChain(chain: Chain, rules: Rule[], tx = new Transaction()): Transaction {
  tx.add(chain);
  tx.flush({ kind: "chain", family: chain.family, table: chain.table, name: chain.name });
  for (const r of rules) tx.add(r);
  return tx;
}

/** Empty a set/map and fill it again (elements may be empty). */
export function replaceElements(
  set: { kind: "set" | "map"; family: Family; table: string; name: string },
  elements: SetElement[],
  tx = new Transaction(),
): Transaction {
  tx.flush(set);
  if (elements.length > 0) tx.add(elementsOf(set, elements));
  return tx;
}

export function elementsOf(set: { family: Family; table: string; name: string }, elements: SetElement[]): Elements {
  return { kind: "element", family: set.family, table: set.table, set: set.name, elements };
}
