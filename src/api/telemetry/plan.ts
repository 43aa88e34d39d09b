// Which stored resolution answers which part of a time range. Pure arithmetic.
//
// [from, to) is split greedily, coarsest first: whole UTC days from accounting_day,
// the whole hours left at either edge from accounting_hour, whole minutes from
// accounting_minute, and sub-minute edges from the raw samples. Rollups are used only
// before `exactUntil` (the oldest minute still marked dirty: rollups.ts); the time after
// it is read from the raw samples. A series restricts the levels to its step or finer,
// so no segment straddles one of its buckets.

export type Level = "day" | "hour" | "minute" | "raw";
export interface Segment {
  level: Level;
  from: Date;
  to: Date;
}

export const UNIT_MS: Record<Exclude<Level, "raw">, number> = { day: 86_400_000, hour: 3_600_000, minute: 60_000 };
export const SOURCE: Record<Level, { table: string; time: string }> = {
  day: { table: "accounting_day", time: "bucket" },
  hour: { table: "accounting_hour", time: "bucket" },
  minute: { table: "accounting_minute", time: "bucket" },
  raw: { table: "accounting_samples", time: "at" },
};

export const floorTo = (t: number, unit: number) => Math.floor(t / unit) * unit;
export const ceilTo = (t: number, unit: number) => Math.ceil(t / unit) * unit;

function cover(a: number, b: number, levels: Level[], out: Segment[]): void {
  if (a >= b) return;
  const [level, ...finer] = levels;
  if (!level || level === "raw") {
    out.push({ level: "raw", from: new Date(a), to: new Date(b) });
    return;
  }
  const u = UNIT_MS[level];
  const lo = ceilTo(a, u);
  const hi = floorTo(b, u);
  if (lo >= hi) return cover(a, b, finer, out);
  cover(a, lo, finer, out);
  out.push({ level, from: new Date(lo), to: new Date(hi) });
  cover(hi, b, finer, out);
}

/** Segments covering [from, to) exactly; `coarsest` limits the levels (a series' step). */
export function planSegments(from: Date, to: Date, exactUntil: Date | null, coarsest: Exclude<Level, "raw"> = "day"): Segment[] {
  const all: Level[] = ["day", "hour", "minute", "raw"];
  const levels = all.slice(all.indexOf(coarsest));
  const a = from.getTime();
  const b = to.getTime();
  const split = exactUntil === null ? b : Math.min(Math.max(exactUntil.getTime(), a), b);
  const out: Segment[] = [];
  cover(a, split, levels, out);
  if (split < b) out.push({ level: "raw", from: new Date(split), to: new Date(b) });
  return out;
}
