// The agent's nft text for country sets. Pure.
import type { Family } from "../net/address.ts";
import { geoSetName } from "./names.ts";

/** Elements per `add element` line: keeps lines short for nft's parser whatever the set's size. */
const CHUNK = 1024;

export interface GeoSetChange {
  family: Family;
  country: string;
  /** Replace the set's elements (flush, then add). */
  full: boolean;
  add: readonly string[];
  del: readonly string[];
}

/**
 * One transaction for every change: a full one flushes the set and adds every element, a
 * delta deletes then adds (the deleted intervals are exactly the kernel's, so a delete and an
 * add of an overlapping new interval in one transaction are accepted).
 */
export function geoSyncText(fam: string, table: string, changes: readonly GeoSetChange[]): string {
  const out: string[] = [];
  const lines = (verb: string, set: string, els: readonly string[]) => {
    for (let i = 0; i < els.length; i += CHUNK)
      out.push(`${verb} element ${fam} ${table} ${set} { ${els.slice(i, i + CHUNK).join(", ")} }`);
  };
  for (const c of changes) {
    const set = geoSetName(c.family, c.country);
    if (c.full) out.push(`flush set ${fam} ${table} ${set}`);
    else lines("delete", set, c.del);
    lines("add", set, c.add);
  }
  return out.length ? out.join("\n") + "\n" : "";
}
