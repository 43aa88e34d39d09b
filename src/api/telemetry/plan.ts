// Which stored resolution answers which part of a time range. Pure arithmetic (UTC).
//
// [from, to) is walked left to right; at each point the coarsest bucket that starts
// there, ends within the range and is still retained is taken: whole calendar months
// from accounting_month, whole days from accounting_day, hours, minutes, and the
// sub-minute edges from the raw samples. Rollups are used only before `exactUntil` (the
// oldest minute still marked dirty: rollups.ts); the time after it is read from the raw
// samples. A series restricts the levels to its step or finer, so no segment straddles
// one of its buckets.
//
// Retention: each level only holds data from its horizon on (`Availability`, from
// retention.ts). Where a range edge falls before the horizon of the level that would
// serve it, that edge is widened to the whole bucket of the finest level that still
// holds data there (the range's first day, or month, is then counted whole), and time
// before the coarsest level's horizon is not covered at all. The plan says which range
// it really covers (`from`, `to`), and the API answers say it too. A series cannot be
// widened past its step: it starts where its step (or finer) is still retained.

export type Level = "month" | "day" | "hour" | "minute" | "raw";
export type BucketLevel = Exclude<Level, "raw">;
export interface Segment {
  level: Level;
  from: Date;
  to: Date;
}
export interface Plan {
  segments: Segment[];
  /** The range the segments really cover (widened or clamped by retention). */
  from: Date;
  to: Date;
}
/** Start of the oldest bucket each level still holds (complete) data for. */
export type Availability = Record<Level, Date>;

/** Fixed-length units; months are calendar months (see floorAt/nextAt). */
export const UNIT_MS: Record<Exclude<BucketLevel, "month">, number> = {
  day: 86_400_000,
  hour: 3_600_000,
  minute: 60_000,
};
export const SOURCE: Record<Level, { table: string; time: string }> = {
  month: { table: "accounting_month", time: "bucket" },
  day: { table: "accounting_day", time: "bucket" },
  hour: { table: "accounting_hour", time: "bucket" },
  minute: { table: "accounting_minute", time: "bucket" },
  raw: { table: "accounting_samples", time: "at" },
};

export const floorTo = (t: number, unit: number) => Math.floor(t / unit) * unit;
export const ceilTo = (t: number, unit: number) => Math.ceil(t / unit) * unit;

/** Start of the bucket of `level` containing t (UTC). */
export function floorAt(t: number, level: BucketLevel): number {
  if (level !== "month") return floorTo(t, UNIT_MS[level]);
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}
/** Start of the bucket of `level` after the one starting at (or containing) t. */
export function nextAt(t: number, level: BucketLevel): number {
  if (level !== "month") return floorTo(t, UNIT_MS[level]) + UNIT_MS[level];
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}
export const ceilAt = (t: number, level: BucketLevel) => (floorAt(t, level) === t ? t : nextAt(t, level));

/** Nothing expired: every level holds everything (pure tests, no retention). */
export const ALL_AVAILABLE: Availability = {
  month: new Date(-8.64e15),
  day: new Date(-8.64e15),
  hour: new Date(-8.64e15),
  minute: new Date(-8.64e15),
  raw: new Date(-8.64e15),
};

/** Is the bucket of `level` containing t retained? (Raw: is t itself.) */
const holds = (level: Level, t: number, avail: Availability) =>
  (level === "raw" ? t : floorAt(t, level)) >= avail[level].getTime();

/**
 * Segments covering [from, to) — or the widened/clamped range the returned `from`/`to`
 * name — each read from a level that still holds it. `coarsest` limits the levels (a
 * series' step); a series passes `widen: false` and is then only narrowed.
 */
export function planSegments(
  from: Date,
  to: Date,
  exactUntil: Date | null,
  opts: { coarsest?: BucketLevel; avail?: Availability; widen?: boolean } = {},
): Plan {
  const avail = opts.avail ?? ALL_AVAILABLE;
  const widen = opts.widen !== false;
  // Bucket levels allowed, coarsest first; raw is always allowed.
  const buckets = (["month", "day", "hour", "minute"] as const).slice(
    ["month", "day", "hour", "minute"].indexOf(opts.coarsest ?? "month"),
  );
  const finestHolding = (t: number) => [...buckets].reverse().find((l) => holds(l, t, avail));
  let a = from.getTime();
  let b = to.getTime();
  // Rollups only before the oldest dirty minute; never later than raw's horizon, since
  // after the split only raw is read (and a mark that old means the finer rollups are final).
  const split = Math.max(exactUntil === null ? b : exactUntil.getTime(), avail.raw.getTime());

  // The start: if raw no longer holds it, the finest level that still holds its bucket
  // serves it, whole (widened); before every level's horizon nothing is left (clamped).
  if (!holds("raw", a, avail)) {
    const ok = finestHolding(a);
    if (ok === undefined) a = Math.max(a, avail[buckets[0]!].getTime());
    else a = widen ? floorAt(a, ok) : ceilAt(a, ok);
  }
  if (a >= b) return { segments: [], from: new Date(b), to: new Date(b) };

  const out: Segment[] = [];
  const push = (level: Level, f: number, t: number) => {
    const last = out[out.length - 1];
    if (last && last.level === level && last.to.getTime() === f) last.to = new Date(t);
    else out.push({ level, from: new Date(f), to: new Date(t) });
  };
  let t = a;
  while (t < b) {
    if (t >= split) {
      push("raw", t, b);
      break;
    }
    const limit = Math.min(b, split);
    // The coarsest retained bucket starting at t that ends within the range.
    const fit = buckets.find((l) => floorAt(t, l) === t && nextAt(t, l) <= limit && holds(l, t, avail));
    if (fit) {
      const n = nextAt(t, fit);
      push(fit, t, n);
      t = n;
    } else if (holds("raw", t, avail)) {
      // A sub-minute part: raw up to the next minute (or the end).
      const n = Math.min(limit, ceilAt(t + 1, "minute"));
      push("raw", t, n);
      t = n;
    } else {
      // The end falls inside a bucket whose finer levels are expired: take it whole
      // (t is aligned to it: t only ever advances by buckets of retained levels).
      const ok = finestHolding(t);
      if (ok === undefined || !widen) {
        b = t;
        break;
      }
      b = nextAt(t, ok);
      push(ok, t, b);
      t = b;
    }
  }
  return { segments: out, from: new Date(a), to: new Date(b) };
}
