// Carrying kernel state across a full replace (re-applying never resets the
// accounting, quota or counter state the kernel holds). A replace deletes and
// recreates Palisade's tables, so the agent reads the kernel first (driver.readTable)
// and passes that state here; the new definitions then start from the kernel's
// values, all inside the same atomic transaction. This is the only carry in Palisade:
// the agent's fallback when the kernel refuses its incremental apply (a set changed
// type, a base chain its hook or priority) is carryReplace() below.
//
// - named counters: packets/bytes carried (unless the definition sets its own);
// - named quotas: `used` carried (the kernel reports it capped at the budget);
// - dynamic sets (accounting, bans, recent lists): every kernel element is carried,
//   with its per-element counter and its remaining lifetime as its timeout;
// - static sets with counters: counters carried for the keys the definition keeps.
// Nothing is carried into a set whose data type changed. A carried set can still be
// too small for what it held: the kernel then refuses with NftError "set_full".

import { replaceTables, type TableDefinition } from "./replace.ts";
import type { Family, NamedMap, NamedSet, SetElement, TableRef, Transaction } from "./transaction.ts";

/** The parts of the kernel's state carry() reads; driver.RulesetState has this shape. */
export interface CarriedState {
  counters: { family: Family; table: string; name: string; packets: number; bytes: number }[];
  quotas: { family: Family; table: string; name: string; used: number }[];
  sets: {
    family: Family;
    table: string;
    name: string;
    type: string[];
    elements: { key: string; value?: string; packets?: number; bytes?: number; expires?: number; comment?: string }[];
  }[];
}

const k = (family: string, table: string, name: string) => `${family} ${table} ${name}`;

function carrySet(set: NamedSet | NamedMap, kernel: CarriedState["sets"][number] | undefined): NamedSet | NamedMap {
  if (!kernel || set.type === undefined) return set;
  const types = Array.isArray(set.type) ? set.type : [set.type];
  if (types.join(" . ") !== kernel.type.join(" . ")) return set;
  const byKey = new Map(kernel.elements.map((e) => [e.key, e]));
  const counted = (e: SetElement): SetElement => {
    const ke = byKey.get(e.key);
    if (!set.counter || e.counter || !ke || ke.packets === undefined || ke.bytes === undefined) return e;
    return { ...e, counter: { packets: ke.packets, bytes: ke.bytes } };
  };
  const own = (set.elements ?? []).map(counted);
  if (!set.flags?.includes("dynamic")) return own.length ? { ...set, elements: own } : set;
  const seen = new Set(own.map((e) => e.key));
  const hasTimeout = set.flags.includes("timeout");
  const carried: SetElement[] = [];
  for (const ke of kernel.elements) {
    if (seen.has(ke.key)) continue;
    const e: SetElement = { key: ke.key };
    if (ke.value !== undefined) e.value = ke.value;
    if (set.counter && ke.packets !== undefined && ke.bytes !== undefined)
      e.counter = { packets: ke.packets, bytes: ke.bytes };
    // nft prints whole seconds left; an element about to expire keeps one more second.
    if (hasTimeout && ke.expires !== undefined) e.timeout = Math.max(1, ke.expires);
    if (ke.comment) e.comment = ke.comment;
    carried.push(e);
  }
  const elements = [...own, ...carried];
  return elements.length ? { ...set, elements } : set;
}

/** New definitions whose counters, quotas and sets start from the kernel's state. */
export function carryState(defs: TableDefinition[], state: CarriedState): TableDefinition[] {
  const counters = new Map(state.counters.map((c) => [k(c.family, c.table, c.name), c]));
  const quotas = new Map(state.quotas.map((q) => [k(q.family, q.table, q.name), q]));
  const sets = new Map(state.sets.map((s) => [k(s.family, s.table, s.name), s]));
  return defs.map((def) => ({
    ...def,
    counters: def.counters?.map((c) => {
      const kc = counters.get(k(c.family, c.table, c.name));
      return kc && c.packets === undefined && c.bytes === undefined
        ? { ...c, packets: kc.packets, bytes: kc.bytes }
        : c;
    }),
    quotas: def.quotas?.map((q) => {
      const kq = quotas.get(k(q.family, q.table, q.name));
      return kq && q.used === undefined ? { ...q, used: kq.used } : q;
    }),
    sets: def.sets?.map((s) => carrySet(s, sets.get(k(s.family, s.table, s.name)))),
  }));
}

/**
 * The whole fallback transaction: Palisade's tables replaced by `defs` with the kernel's
 * values carried in, and the kernel's other Palisade tables (ones `defs` no longer has)
 * deleted, in one transaction. `state.tables` = the Palisade tables the kernel holds now.
 */
export function carryReplace(
  defs: TableDefinition[],
  state: CarriedState & { tables: { family: Family; name: string }[] },
): Transaction {
  const wanted = new Set(defs.map((d) => `${d.table.family} ${d.table.name}`));
  const remove: TableRef[] = state.tables
    .filter((t) => !wanted.has(`${t.family} ${t.name}`))
    .map((t) => ({ family: t.family, name: t.name }));
  return replaceTables(carryState(defs, state), { remove });
}
