// Accounting rollups: raw samples -> accounting_minute -> accounting_hour -> accounting_day
// -> accounting_month (calendar months, UTC).
//
// The ingest marks every (host, minute) it wrote samples for in telemetry_dirty. A run
// takes a bounded set of marks, deletes them and, in the same transaction, recomputes
// each marked minute from the raw samples, then the hours, days and months containing
// them from the level below — whole buckets, written with upsert, so a rerun (or a second run
// over the same marks) writes the same values: idempotent. Late batches (an agent's
// spool after an outage) simply mark old minutes dirty again.
//
// Races with the ingest: a mark is taken FOR UPDATE SKIP LOCKED, so one an in-flight
// ingest holds (its DO UPDATE row-locks it) is left for the next run; an ingest that
// arrives after the mark was deleted inserts it anew. Either way every committed sample
// is covered by a later run. Runs themselves are serialised by an advisory lock.
//
// Queries (queries.ts) use the rollups only for time before the oldest remaining mark,
// so an answer never mixes a stale rollup with the raw rows that changed it.
import type { Db, Prisma } from "../db/client.ts";
import { floorAt, nextAt, type BucketLevel } from "./plan.ts";
import { horizon, type Retention } from "./retention.ts";

const LOCK_KEY = 0x70616c72; // "palr"
export const DEFAULT_MARKS_PER_RUN = 2000;

const SUMS = `sum(src_bytes)::bigint, sum(src_packets)::bigint, sum(dst_bytes)::bigint, sum(dst_packets)::bigint`;
const UPSERT = `ON CONFLICT (host_id, table_name, address, bucket) DO UPDATE SET
  src_bytes = EXCLUDED.src_bytes, src_packets = EXCLUDED.src_packets, dst_bytes = EXCLUDED.dst_bytes, dst_packets = EXCLUDED.dst_packets`;

export interface RollupResult {
  minutes: number;
  hours: number;
  days: number;
  months: number;
  /** Marks still waiting (more than one run's worth, or held by an in-flight ingest). */
  remaining: number;
}

type Target = "accounting_minute" | "accounting_hour" | "accounting_day" | "accounting_month";

/** Recomputes whole buckets [start, end) of `target` from `source`, upserting. */
async function rollupLevel(tx: Prisma.TransactionClient, target: Target, source: string, time: string, b: Buckets): Promise<number> {
  if (b.hosts.length === 0) return 0;
  // Bucket ends come from JS (calendar months in UTC), not from interval arithmetic in
  // the session's time zone.
  await tx.$executeRawUnsafe(
    `INSERT INTO ${target} (host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT s.host_id, s.table_name, s.address, d.b, ${SUMS.replaceAll("sum(", "sum(s.")}
     FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS d(h, b, e)
     JOIN ${source} s ON s.host_id = d.h AND s.${time} >= d.b AND s.${time} < d.e
     GROUP BY s.host_id, s.table_name, s.address, d.b
     ${UPSERT}`,
    b.hosts, b.starts, b.ends,
  );
  return b.hosts.length;
}

interface Buckets {
  hosts: string[];
  starts: Date[];
  ends: Date[];
}

function distinctBuckets(marks: { host_id: string; bucket: Date }[], level: BucketLevel, notBefore: Date): Buckets {
  const seen = new Map<string, { h: string; b: number }>();
  for (const m of marks) {
    const b = floorAt(m.bucket.getTime(), level);
    // A bucket starting before the finer level's retention would be recomputed from partial data.
    if (b < notBefore.getTime()) continue;
    seen.set(`${m.host_id}|${b}`, { h: m.host_id, b });
  }
  const v = [...seen.values()];
  return { hosts: v.map((x) => x.h), starts: v.map((x) => new Date(x.b)), ends: v.map((x) => new Date(nextAt(x.b, level))) };
}

/** One rollup run over at most `maxMarks` dirty minutes. */
export async function runRollup(db: Db, retention: Retention, opts: { maxMarks?: number; now?: Date } = {}): Promise<RollupResult> {
  const now = opts.now ?? new Date();
  return db.$transaction(
    async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
      const marks = await tx.$queryRawUnsafe<{ host_id: string; bucket: Date }[]>(
        `SELECT host_id::text AS host_id, bucket FROM telemetry_dirty ORDER BY bucket LIMIT $1 FOR UPDATE SKIP LOCKED`,
        opts.maxMarks ?? DEFAULT_MARKS_PER_RUN,
      );
      if (marks.length > 0) {
        await tx.$executeRawUnsafe(
          `DELETE FROM telemetry_dirty t USING unnest($1::uuid[], $2::timestamptz[]) AS d(h, b) WHERE t.host_id = d.h AND t.bucket = d.b`,
          marks.map((m) => m.host_id), marks.map((m) => m.bucket),
        );
      }
      const minutes = distinctBuckets(marks, "minute", horizon(now, retention.rawDays));
      const hours = distinctBuckets(marks, "hour", horizon(now, retention.minuteDays));
      const days = distinctBuckets(marks, "day", horizon(now, retention.hourDays));
      const months = distinctBuckets(marks, "month", horizon(now, retention.dayDays));
      const r: RollupResult = {
        minutes: await rollupLevel(tx, "accounting_minute", "accounting_samples", "at", minutes),
        hours: await rollupLevel(tx, "accounting_hour", "accounting_minute", "bucket", hours),
        days: await rollupLevel(tx, "accounting_day", "accounting_hour", "bucket", days),
        months: await rollupLevel(tx, "accounting_month", "accounting_day", "bucket", months),
        remaining: 0,
      };
      const [left] = await tx.$queryRawUnsafe<{ n: bigint }[]>(`SELECT count(*) AS n FROM telemetry_dirty`);
      r.remaining = Number(left?.n ?? 0);
      return r;
    },
    { timeout: 120_000 },
  );
}

/** Runs until no mark is left that this run could take (bounded by maxRuns). */
export async function rollupAll(db: Db, retention: Retention, opts: { maxMarks?: number; maxRuns?: number; now?: Date } = {}): Promise<RollupResult> {
  const total: RollupResult = { minutes: 0, hours: 0, days: 0, months: 0, remaining: 0 };
  for (let i = 0; i < (opts.maxRuns ?? 1000); i++) {
    const r = await runRollup(db, retention, opts);
    total.minutes += r.minutes;
    total.hours += r.hours;
    total.days += r.days;
    total.months += r.months;
    total.remaining = r.remaining;
    if (r.minutes === 0 && r.hours === 0 && r.days === 0 && r.months === 0) break;
  }
  return total;
}

/** Oldest dirty minute (optionally of one host): rollups are exact only before it. */
export async function rollupHorizon(db: Db | Prisma.TransactionClient, hostId?: string): Promise<Date | null> {
  const [row] = hostId
    ? await db.$queryRawUnsafe<{ b: Date | null }[]>(`SELECT min(bucket) AS b FROM telemetry_dirty WHERE host_id = $1::uuid`, hostId)
    : await db.$queryRawUnsafe<{ b: Date | null }[]>(`SELECT min(bucket) AS b FROM telemetry_dirty`);
  return row?.b ?? null;
}
