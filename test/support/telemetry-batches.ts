// Shared helpers of the telemetry integration tests: hosts, batches, raw sums.
import type { Db } from "../../src/api/db/client.ts";
import type { IncomingBatch } from "../../src/api/telemetry/batch.ts";

export async function makeHost(db: Db, name: string): Promise<string> {
  const h = await db.host.create({ data: { name } });
  return h.id;
}

export type Row = {
  table: string;
  ip: string;
  srcBytes: number;
  srcPackets: number;
  dstBytes: number;
  dstPackets: number;
};

export function batch(
  epoch: string,
  seq: number,
  takenAt: number,
  accounting: Row[],
  extra: Partial<IncomingBatch> = {},
): IncomingBatch {
  return { epoch, seq, takenAtUnixMs: takenAt, accounting, quotas: [], counters: [], logs: [], ...extra };
}

/** Deterministic pseudo-random numbers (mulberry32), so a failure reproduces. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sums per (table, ip) of what batches carried: the expected API totals. */
export function expectedTotals(batches: IncomingBatch[], table: string): Map<string, [number, number, number, number]> {
  const m = new Map<string, [number, number, number, number]>();
  for (const b of batches) {
    for (const r of (b.accounting ?? []) as Row[]) {
      if (r.table !== table) continue;
      const cur = m.get(r.ip) ?? [0, 0, 0, 0];
      m.set(r.ip, [cur[0] + r.srcBytes, cur[1] + r.srcPackets, cur[2] + r.dstBytes, cur[3] + r.dstPackets]);
    }
  }
  return m;
}
