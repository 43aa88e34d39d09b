// Snapshots of Palisade's own tables as nft text, for the agent's commit-confirmed
// rollback: one `nft list ruleset`, of which only Palisade's table blocks are kept
// (listing.ts). One run, not `list tables` + `list table` per table: nft 1.0.6 fetches
// every rule even for `list tables` (~120 ms for a 10k-rule table), so that listing cost
// as much again as the snapshot itself. The listing includes counter values, quota usage and set
// elements with their counters and remaining timeouts, and nft reads it back as-is
// (measured on 1.0.6), so a restore puts the kernel's state back too.

import { NftError } from "./errors.ts";
import { apply, type ApplyOptions, type ApplyResult } from "./apply.ts";
import { runNft, type DriverOptions } from "./nft.ts";
import { palisadeListing, type KernelObjects } from "./listing.ts";
import { listPalisadeTables, objectArgs, type TableState } from "./read.ts";

export interface Snapshot {
  /** Palisade tables present when the snapshot was taken, sorted. */
  tables: TableState[];
  /** Their definitions as nft text; "" when there were none. */
  text: string;
  takenAt: string;
  /**
   * Names of the objects in those tables when the snapshot was taken, for the incremental
   * plan (optional: absent when the listing could not be read with certainty).
   */
  objects?: KernelObjects;
}

export async function snapshot(opts: DriverOptions = {}): Promise<Snapshot> {
  const { stdout } = await runNft(["list", "ruleset"], opts);
  const l = palisadeListing(stdout);
  return {
    tables: l.tables,
    text: l.text,
    takenAt: new Date().toISOString(),
    ...(l.objects ? { objects: l.objects } : {}),
  };
}

/**
 * The text that makes the kernel's Palisade tables equal to the snapshot: every
 * Palisade table present now or in the snapshot is deleted (after an `add`, so the
 * delete never fails), then the snapshot is loaded, all in one transaction.
 */
export function restoreText(snap: Snapshot, current: TableState[]): string {
  const names = new Map<string, TableState>();
  for (const t of [...current, ...snap.tables]) names.set(`${t.family} ${t.name}`, t);
  const lines: string[] = [];
  for (const t of names.values()) {
    const [fam, name] = objectArgs(t.family, t.name);
    lines.push(`add table ${fam} ${name}`, `delete table ${fam} ${name}`);
  }
  return lines.join("\n") + (lines.length ? "\n" : "") + snap.text;
}

/** Put the snapshot back atomically (foreign tables untouched). */
export async function restore(snap: Snapshot, opts: ApplyOptions = {}): Promise<ApplyResult> {
  if (snap.text.length > 0 && snap.tables.length === 0) {
    throw new NftError("invalid_argument", "snapshot has text but lists no tables");
  }
  const current = await listPalisadeTables(opts);
  return apply(restoreText(snap, current), opts);
}
