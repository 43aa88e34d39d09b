// One read of everything telemetry ships, from Palisade's tables (via the driver).
//
// Keys of the cumulative reading (raw kernel values; see collector.ts for the deltas):
//   a\t<table>\t<ip>\tsrc|dst   per-address accounting (sets acct_<table>_src/_dst)
//   t\t<table>                  the accounting table's total counter (acct_<table>_total):
//                               every packet the ACCOUNT rule saw, once
//   c\t<name>                   named counters (and quota2 --grow, which renders as one)
// Quotas are samples (limit, used), not deltas.

import type { DriverOptions, RulesetState } from "../../engine/driver/index.ts";
import { readPalisade } from "../kernel/read.ts";
import type { Reading } from "./delta.ts";

const ACCT = /^acct_(.+)_(src|dst|total)$/;

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
  takenAt: number;
}

export const accountingKey = (table: string, ip: string, dir: "src" | "dst") => `a\t${table}\t${ip}\t${dir}`;
export const counterKey = (name: string) => `c\t${name}`;

export const totalKey = (table: string) => `t\t${table}`;

/** Split an accounting key back into its parts. */
export function parseAccountingKey(k: string): { table: string; ip: string; dir: "src" | "dst" } | undefined {
  const p = k.split("\t");
  if (p[0] !== "a" || p.length !== 4) return undefined;
  return { table: p[1]!, ip: p[2]!, dir: p[3] as "src" | "dst" };
}

export function readingOf(st: RulesetState, now = Date.now()): KernelReading {
  const counters: Reading = new Map();
  for (const set of st.sets) {
    const m = ACCT.exec(set.name);
    if (!m || m[2] === "total" || !set.counter) continue;
    for (const e of set.elements) {
      counters.set(accountingKey(m[1]!, e.key, m[2] as "src" | "dst"), { bytes: e.bytes ?? 0, packets: e.packets ?? 0 });
    }
  }
  for (const c of st.counters) {
    const m = ACCT.exec(c.name);
    counters.set(m && m[2] === "total" ? totalKey(m[1]!) : counterKey(c.name), { bytes: c.bytes, packets: c.packets });
  }
  const quotas = st.quotas.map((q) => ({ name: q.name, mode: "bytes" as const, limit: q.bytes, used: q.used, grow: false, inverted: q.mode === "over" }));
  return { counters, quotas, takenAt: now };
}

export async function readKernel(opts: DriverOptions): Promise<KernelReading> {
  return readingOf(await readPalisade(opts));
}
