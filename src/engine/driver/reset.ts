// Zeroing counters and quotas. nft's `reset` prints the values it zeroed, in one
// atomic step, so reading and resetting cannot lose packets counted in between: the
// returned values are exactly what the kernel held. Only Palisade's tables.
// (nft 1.0.6 has no reset for per-element set counters; those are carried by deltas.)

import { family as checkFamily } from "../nft/names.ts";
import type { Family } from "../nft/names.ts";
import { NftError } from "./errors.ts";
import { runNft, type DriverOptions } from "./nft.ts";
import { objectArgs, parseRuleset, type CounterState, type QuotaState } from "./read.ts";

const PALISADE_NAME = /^palisade[A-Za-z0-9_]{0,55}$/;

function palisadeArgs(fam: Family, table: string, name?: string): string[] {
  checkFamily(fam);
  if (!PALISADE_NAME.test(table)) {
    throw new NftError(
      "foreign_table",
      `table ${JSON.stringify(table)} is not a Palisade table; the driver only resets palisade* tables`,
      { table },
    );
  }
  return objectArgs(fam, table, name);
}

async function resetJson(args: string[], opts: DriverOptions) {
  const { stdout } = await runNft(["-j", "reset", ...args], opts);
  return parseRuleset(stdout);
}

/** Zero every named counter of the table; returns the values they had. */
export async function resetCounters(fam: Family, table: string, opts: DriverOptions = {}): Promise<CounterState[]> {
  return (await resetJson(["counters", "table", ...palisadeArgs(fam, table)], opts)).counters;
}

/** Zero the used bytes of every named quota of the table; returns the values they had. */
export async function resetQuotas(fam: Family, table: string, opts: DriverOptions = {}): Promise<QuotaState[]> {
  return (await resetJson(["quotas", "table", ...palisadeArgs(fam, table)], opts)).quotas;
}

export async function resetCounter(
  fam: Family,
  table: string,
  name: string,
  opts: DriverOptions = {},
): Promise<CounterState> {
  const c = (await resetJson(["counter", ...palisadeArgs(fam, table, name)], opts)).counters.find(
    (x) => x.name === name,
  );
  if (!c) throw new NftError("unexpected_output", `nft reset counter printed no counter ${name}`);
  return c;
}

export async function resetQuota(
  fam: Family,
  table: string,
  name: string,
  opts: DriverOptions = {},
): Promise<QuotaState> {
  const q = (await resetJson(["quota", ...palisadeArgs(fam, table, name)], opts)).quotas.find((x) => x.name === name);
  if (!q) throw new NftError("unexpected_output", `nft reset quota printed no quota ${name}`);
  return q;
}
