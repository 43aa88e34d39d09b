// The driver as one typed value: what the agent's applier needs from the kernel. The
// real one (nftDriver) runs nft through the functions of this directory; tests of the
// agent's decisions (which plan, when to carry, when to roll back) can pass an in-memory
// one instead (test/support/fake-driver.ts, itself checked against nftDriver by
// test/kernel/driver-contract.test.ts). Kernel behaviour is proven with the real one.

import type { Family } from "../nft/names.ts";
import { apply, check } from "./apply.ts";
import type { DriverOptions } from "./nft.ts";
import {
  listPalisadeTables,
  readCounters,
  readQuotas,
  readSet,
  readTable,
  readWithoutElements,
  type CounterState,
  type ReadOptions,
  type QuotaState,
  type RulesetState,
  type SetState,
  type TableState,
} from "./read.ts";
import { resetCounter, resetQuota } from "./reset.ts";
import { restore, snapshot, type Snapshot } from "./snapshot.ts";

export interface Driver {
  /** `nft -c`: the kernel validates the text and changes nothing. Throws NftError. */
  check(text: string): Promise<void>;
  /** One atomic transaction: all of it or nothing. Throws NftError. */
  apply(text: string): Promise<void>;
  /** Palisade's tables as text that apply() (through restore) reads back, values included. */
  snapshot(): Promise<Snapshot>;
  /** Make Palisade's tables equal the snapshot, atomically. */
  restore(snap: Snapshot): Promise<void>;
  /** Palisade's own tables, sorted by family then name. */
  listTables(): Promise<TableState[]>;
  readTable(family: Family, table: string, read?: ReadOptions): Promise<RulesetState>;
  readSet(family: Family, table: string, name: string, kind?: "set" | "map", read?: ReadOptions): Promise<SetState>;
  /** Palisade's tables, every set without its elements: one listing whatever the sets hold. */
  readWithoutElements(read?: ReadOptions): Promise<RulesetState>;
  readCounters(family: Family, table: string): Promise<CounterState[]>;
  readQuotas(family: Family, table: string): Promise<QuotaState[]>;
  /** Zero a named counter / quota; returns the values it had (atomic read-and-zero). */
  resetCounter(family: Family, table: string, name: string): Promise<CounterState>;
  resetQuota(family: Family, table: string, name: string): Promise<QuotaState>;
}

/** The real driver: nft on this host, or in `opts.netns`. */
export function nftDriver(opts: DriverOptions = {}): Driver & { readonly options: DriverOptions } {
  return {
    options: opts,
    check: async (text) => void (await check(text, opts)),
    apply: async (text) => void (await apply(text, opts)),
    snapshot: () => snapshot(opts),
    restore: async (snap) => void (await restore(snap, opts)),
    listTables: () => listPalisadeTables(opts),
    readTable: (family, table, read = {}) => readTable(family, table, { ...read, ...opts }),
    readSet: (family, table, name, kind = "set", read = {}) => readSet(family, table, name, { ...read, ...opts, kind }),
    readWithoutElements: (read = {}) => readWithoutElements({ ...read, ...opts }),
    readCounters: (family, table) => readCounters(family, table, opts),
    readQuotas: (family, table) => readQuotas(family, table, opts),
    resetCounter: (family, table, name) => resetCounter(family, table, name, opts),
    resetQuota: (family, table, name) => resetQuota(family, table, name, opts),
  };
}

/** A Driver as is; DriverOptions (the older way to name a kernel) as the nft driver for them. */
export function asDriver(d: Driver | DriverOptions): Driver {
  return typeof (d as Driver).apply === "function" ? (d as Driver) : nftDriver(d as DriverOptions);
}
