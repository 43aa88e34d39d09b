// Cumulative kernel counters -> deltas (crowdsec's shape: ship differences, let the
// receiver add them up). A value lower than the last reading means the kernel object
// started again from zero (table replaced without carry, reboot, counter reset): then
// everything it holds now is new, so the new value itself is the delta. A key not seen
// before is new as well. Nothing here reads the kernel; it is plain arithmetic.

export interface Cum {
  bytes: number;
  packets: number;
}

/** A reading: stable key -> cumulative value. */
export type Reading = Map<string, Cum>;

export function delta(prev: Cum | undefined, cur: Cum): Cum {
  if (!prev) return { bytes: cur.bytes, packets: cur.packets };
  if (cur.bytes < prev.bytes || cur.packets < prev.packets) return { bytes: cur.bytes, packets: cur.packets };
  return { bytes: cur.bytes - prev.bytes, packets: cur.packets - prev.packets };
}

/** Non-zero deltas of every key in `cur`. Keys only in `prev` are gone; their last values were already shipped. */
export function deltas(prev: Reading, cur: Reading): Reading {
  const out: Reading = new Map();
  for (const [k, v] of cur) {
    const d = delta(prev.get(k), v);
    if (d.bytes !== 0 || d.packets !== 0) out.set(k, d);
  }
  return out;
}

export function readingToJson(r: Reading): [string, number, number][] {
  return [...r].map(([k, v]) => [k, v.bytes, v.packets]);
}

export function readingFromJson(a: unknown): Reading {
  const out: Reading = new Map();
  if (!Array.isArray(a)) return out;
  for (const x of a) {
    if (Array.isArray(x) && typeof x[0] === "string" && typeof x[1] === "number" && typeof x[2] === "number")
      out.set(x[0], { bytes: x[1], packets: x[2] });
  }
  return out;
}

/**
 * The unattributed remainder of one accounting table and direction: total delta minus
 * the per-address deltas. readKernel lists the totals in an nft run before the one that
 * lists the set elements, so a reading can see an element a few packets ahead of its
 * total, never behind it; that negative remainder is kept (`carry`) and netted against
 * the next interval instead of being clamped, so the shipped sum telescopes to
 * total - per-address sum once traffic pauses.
 */
export function unattributed(totalDelta: Cum, addrDelta: Cum, carry: Cum): { emit: Cum; carry: Cum } {
  const b = carry.bytes + totalDelta.bytes - addrDelta.bytes;
  const p = carry.packets + totalDelta.packets - addrDelta.packets;
  return {
    emit: { bytes: Math.max(0, b), packets: Math.max(0, p) },
    carry: { bytes: Math.min(0, b), packets: Math.min(0, p) },
  };
}
