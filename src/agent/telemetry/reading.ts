// One read of everything telemetry ships, from Palisade's tables (via the driver).
//
// Keys of the cumulative reading (raw kernel values; see collector.ts for the deltas):
//   a\t<table>\t<ip>\tsrc|dst   per-address accounting (sets acct_<table>_src/_dst), IPv4 or
//                               IPv6; "<network>/<n>" for an aggregated table (its sets'
//                               comment "aggregate /n": one element per /n)
//   d\t<table>\tsrc|dst         a direction's total (acct_<table>_srctotal/_dsttotal): the
//                               packets that direction's set was meant to see
//   t\t<table>                  acct_<table>_total: the one-slot (0.0.0.0/0) table's total;
//                               or, in `legacyTotals`, the single total of a table applied
//                               before per-direction totals existed (every packet the
//                               ACCOUNT rule saw), until its next apply
//   c\t<name>                   named counters
// Quotas are samples (limit, used), not deltas: the kernel's quota objects, and the
// counters of growing quotas (quota_<name>_grow_<mode>), reported as quotas with
// grow: true, used = the counter's bytes or packets (by mode) and limit 0.

import {
  parseAccountingName,
  parseAggregateComment,
  parseGrowCounterName,
  type CounterState,
  type Driver,
  type RulesetState,
} from "../../engine/index.ts";
import { readPalisade } from "../kernel/read.ts";
import type { Reading } from "./delta.ts";

export interface QuotaSample {
  name: string;
  mode: "bytes" | "packets";
  limit: number;
  used: number;
  grow: boolean;
  /** "over" quotas match once spent (quota2 `!`). */
  inverted: boolean;
}

export interface KernelReading {
  counters: Reading;
  quotas: QuotaSample[];
  /** Tables whose `t` key is a single total next to per-address sets (the layout before per-direction totals). */
  legacyTotals: Set<string>;
  takenAt: number;
  /** What the tables held (readKernel's: it picks the next reading's first run by it). */
  shape?: ReadingShape;
}

/** Rules and set elements at a reading. */
export interface ReadingShape {
  /** Rules of Palisade's tables. */
  rules: number;
  /** Rules of the other tables, as the last terse listing counted them (it prints them too). */
  foreignRules: number;
  /** Elements of Palisade's sets. */
  elements: number;
}

export type Direction = "src" | "dst";

export const accountingKey = (table: string, ip: string, dir: Direction) => `a\t${table}\t${ip}\t${dir}`;
export const counterKey = (name: string) => `c\t${name}`;
export const totalKey = (table: string) => `t\t${table}`;
export const directionTotalKey = (table: string, dir: Direction) => `d\t${table}\t${dir}`;

/** Split an accounting key back into its parts. */
export function parseAccountingKey(k: string): { table: string; ip: string; dir: Direction } | undefined {
  const p = k.split("\t");
  if (p[0] !== "a" || p.length !== 4) return undefined;
  return { table: p[1]!, ip: p[2]!, dir: p[3] as Direction };
}

/** Split a direction-total key back into its parts. */
export function parseDirectionTotalKey(k: string): { table: string; dir: Direction } | undefined {
  const p = k.split("\t");
  if (p[0] !== "d" || p.length !== 3) return undefined;
  return { table: p[1]!, dir: p[2] as Direction };
}

export function readingOf(st: RulesetState, now = Date.now()): KernelReading {
  const counters: Reading = new Map();
  const setTables = new Set<string>();
  for (const set of st.sets) {
    const a = parseAccountingName(set.name);
    if (!a || (a.object !== "src" && a.object !== "dst") || !set.counter) continue;
    setTables.add(a.table);
    const aggregate = parseAggregateComment(set.comment);
    for (const e of set.elements) {
      const ip = aggregate === undefined ? e.key : `${e.key}/${aggregate}`;
      counters.set(accountingKey(a.table, ip, a.object), { bytes: e.bytes ?? 0, packets: e.packets ?? 0 });
    }
  }
  const legacyTotals = new Set<string>();
  const grow: QuotaSample[] = [];
  for (const c of st.counters) {
    const g = parseGrowCounterName(c.name);
    if (g) {
      grow.push({
        name: g.quota,
        mode: g.mode,
        limit: 0,
        used: g.mode === "packets" ? c.packets : c.bytes,
        grow: true,
        inverted: false,
      });
      continue;
    }
    const a = parseAccountingName(c.name);
    const v = { bytes: c.bytes, packets: c.packets };
    if (a?.object === "total") {
      counters.set(totalKey(a.table), v);
      if (setTables.has(a.table)) legacyTotals.add(a.table);
    } else if (a?.object === "srctotal" || a?.object === "dsttotal") {
      counters.set(directionTotalKey(a.table, a.object === "srctotal" ? "src" : "dst"), v);
    } else {
      counters.set(counterKey(c.name), v);
    }
  }
  const quotas: QuotaSample[] = st.quotas.map((q) => ({
    name: q.name,
    mode: "bytes" as const,
    limit: q.bytes,
    used: q.used,
    grow: false,
    inverted: q.mode === "over",
  }));
  quotas.push(...grow);
  return { counters, quotas, legacyTotals, takenAt: now };
}

/**
 * One reading, counter objects first. nft lists a table's set elements before its
 * counter objects (NFT_MSG_GETSETELEM, then NFT_MSG_GETOBJ), so within one listing a
 * packet that arrives in between counts in a direction's total but not yet in its
 * element: a remainder that is not there, shipped as unattributed and never taken back.
 * Listing the counters in an earlier nft run turns the race around: the elements can
 * only be ahead of the totals, and the collector nets that negative remainder against
 * the next interval (delta.ts, `unattributed`), so the sums stay exact.
 */
export async function readKernel(driver: Driver, last?: ReadingShape): Promise<KernelReading> {
  const first = await tablesAndCounters(driver, last);
  const st = await readPalisade(driver, first.tables);
  st.counters = first.counters;
  const shape: ReadingShape = {
    rules: st.rules.length,
    foreignRules: first.otherRules ?? last?.foreignRules ?? 0,
    elements: st.sets.reduce((n, s) => n + s.elements.length, 0),
  };
  return { ...readingOf(st), shape };
}

/**
 * The first run: Palisade's tables and their counters. nft 1.0.6 fetches every rule and set
 * element of the ruleset for `list tables` and for `list counters` (65k accounting
 * elements: ~0.45 CPU-s each) without printing them; a terse `list ruleset` fetches no
 * element but prints every rule (~24 µs a rule against ~2 x 8.5 µs fetched, and ~2 x 7 µs
 * an element: bench/periodic-reads.ts). So the terse listing when the last reading held at
 * least half as many elements as rules, the other tables' rules counted, or when there was none.
 */
async function tablesAndCounters(
  driver: Driver,
  last: ReadingShape | undefined,
): Promise<Pick<RulesetState, "tables" | "counters" | "otherRules">> {
  if (!last || last.elements * 2 >= last.rules + last.foreignRules) return driver.readWithoutElements();
  const tables = await driver.listTables();
  const counters: CounterState[] = [];
  for (const t of tables) counters.push(...(await driver.readCounters(t.family, t.name)));
  return { tables, counters };
}
