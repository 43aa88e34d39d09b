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
// Races with the ingest: marks are read without a lock and deleted only at the end of
// the run, and only those whose hit count is still the one read. An ingest's DO UPDATE
// bumps the count, so a mark whose minute got samples the run may not have seen stays
// for the next run; one that arrives after the delete inserts the mark anew. Either way
// every committed sample is covered by a later run. The ingest never waits on a run's
// recomputation (it did when runs took their marks FOR UPDATE: every ingest of a marked
// minute, the current one included, queued behind the whole run and held its pool
// connection meanwhile, which stalled the fleet ingest, bench/fleet-ingest.ts); at most
// on the final delete. Runs themselves are serialised by an advisory lock.
//
// Derived with each level, in the same transaction (rollupLevel): the fleet tables
// (per address over all hosts: hour, day, month) that the fleet top-N reads sorted
// (top.ts), and the table totals (per host over all addresses: minute, hour, day) that
// a table's series reads.
//
// Queries (queries.ts) use the rollups only for time before the oldest remaining mark,
// so an answer never mixes a stale rollup with the raw rows that changed it.
import type { Db, Prisma } from "../db/client.ts";
import { floorAt, nextAt, type BucketLevel } from "./plan.ts";
import { horizon, type Retention } from "./retention.ts";

/** Serialises rollup runs (and reconcile runs, reconcile.ts) across replicas. */
export const ROLLUP_LOCK_KEY = 0x70616c72; // "palr"
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

/** A level, what it is recomputed from, and the derived tables kept with it. */
interface LevelSpec {
  target: Target;
  source: string;
  time: string;
  /** Per (table, address, bucket) over all hosts: kept equal to the sum of `target`'s rows. */
  fleet?: string;
  /** Per (host, table, bucket) over all addresses. */
  totals?: string;
  /**
   * The source's key starts (host_id, time): a bucket's rows are one index range, so each
   * marked bucket is aggregated on its own. The rollup levels' keys put table_name and
   * address before the bucket, so their buckets are read with one join instead.
   */
  keyedByTime?: boolean;
}
const LEVELS = {
  minute: {
    target: "accounting_minute",
    source: "accounting_samples",
    time: "at",
    totals: "accounting_table_minute",
    keyedByTime: true,
  },
  hour: {
    target: "accounting_hour",
    source: "accounting_minute",
    time: "bucket",
    fleet: "accounting_fleet_hour",
    totals: "accounting_table_hour",
  },
  day: {
    target: "accounting_day",
    source: "accounting_hour",
    time: "bucket",
    fleet: "accounting_fleet_day",
    totals: "accounting_table_day",
  },
  month: { target: "accounting_month", source: "accounting_day", time: "bucket", fleet: "accounting_fleet_month" },
} as const satisfies Record<BucketLevel, LevelSpec>;

const COUNTERS = ["src_bytes", "src_packets", "dst_bytes", "dst_packets"] as const;

/**
 * Recomputes whole buckets [start, end) of a level from the level below, upserting, and
 * keeps its fleet and totals tables in step in the same transaction. The recomputed rows
 * go to a temporary table first (rollup_new, created by runRollup), so the source is
 * aggregated once: the fleet table gets the difference between each recomputed row and
 * the stored one (zero on a rerun: exactly-once without a ledger), then the per-host rows
 * are upserted, then the per-host table totals of the recomputed buckets (whole buckets,
 * so their sums are the complete totals).
 */
async function rollupLevel(tx: Prisma.TransactionClient, spec: LevelSpec, b: Buckets): Promise<number> {
  if (b.hosts.length === 0) return 0;
  const { target, source, time } = spec;
  await analyzeUnanalyzed(tx, [source, target]);
  await tx.$executeRawUnsafe(`TRUNCATE rollup_new`);
  // Bucket ends come from JS (calendar months in UTC), not from interval arithmetic in
  // the session's time zone.
  await tx.$executeRawUnsafe(
    spec.keyedByTime
      ? // One aggregate per (host, bucket), run per marked bucket (a LATERAL subquery with
        // GROUP BY is never flattened into a join): each reads its bucket's rows through
        // the (host_id, at) key of the one partition it needs. As a join, the planner
        // hashed the marks and scanned the whole day's partition every run: at 100 hosts
        // x 1,000 addresses 5.7M rows (17 s) for 82 marked minutes, growing all day.
        `INSERT INTO rollup_new (host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
         SELECT d.h, x.table_name, x.address, d.b, x.sb, x.sp, x.db, x.dp
         FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS d(h, b, e)
         CROSS JOIN LATERAL (
           SELECT s.table_name, s.address, sum(s.src_bytes)::bigint AS sb, sum(s.src_packets)::bigint AS sp,
                  sum(s.dst_bytes)::bigint AS db, sum(s.dst_packets)::bigint AS dp
           FROM ${source} s WHERE s.host_id = d.h AND s.${time} >= d.b AND s.${time} < d.e
           GROUP BY s.table_name, s.address) x`
      : `INSERT INTO rollup_new (host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
         SELECT s.host_id, s.table_name, s.address, d.b, ${SUMS.replaceAll("sum(", "sum(s.")}
         FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS d(h, b, e)
         JOIN ${source} s ON s.host_id = d.h AND s.${time} >= d.b AND s.${time} < d.e
         GROUP BY s.host_id, s.table_name, s.address, d.b`,
    b.hosts,
    b.starts,
    b.ends,
  );
  if (spec.fleet) {
    // Statistics of this run's rows, so the join below probes the target's primary key
    // instead of hashing the whole target table.
    await tx.$executeRawUnsafe(`ANALYZE rollup_new`);
    const delta = COUNTERS.map((c) => `sum(n.${c} - coalesce(o.${c}, 0))::bigint`).join(", ");
    await tx.$executeRawUnsafe(
      `INSERT INTO ${spec.fleet} AS f (table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
       SELECT n.table_name, n.address, n.bucket, ${delta}
       FROM rollup_new n LEFT JOIN ${target} o
         ON o.host_id = n.host_id AND o.table_name = n.table_name AND o.address = n.address AND o.bucket = n.bucket
       GROUP BY n.table_name, n.address, n.bucket
       ON CONFLICT (table_name, address, bucket) DO UPDATE SET ${COUNTERS.map((c) => `${c} = f.${c} + EXCLUDED.${c}`).join(", ")}`,
    );
  }
  await tx.$executeRawUnsafe(
    `INSERT INTO ${target} (host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets FROM rollup_new
     ${UPSERT}`,
  );
  if (spec.totals) {
    await tx.$executeRawUnsafe(
      `INSERT INTO ${spec.totals} (host_id, table_name, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
       SELECT host_id, table_name, bucket, ${SUMS} FROM rollup_new GROUP BY host_id, table_name, bucket
       ON CONFLICT (host_id, table_name, bucket) DO UPDATE SET ${COUNTERS.map((c) => `${c} = EXCLUDED.${c}`).join(", ")}`,
    );
  }
  return b.hosts.length;
}

/**
 * ANALYZEs every table (or leaf partition) of `tables` that holds rows but has no column
 * statistics yet. Without them the planner takes each equality of the fleet join below as
 * selective and probes the target through whichever index is smallest: through
 * (table_name, bucket), one probe per recomputed row reads every host's row of that
 * bucket (host_id and address as a filter), quadratic in the fleet (a run at 100 hosts x
 * 1,000 addresses spent over 60 s there; with statistics it probes the primary key, 1.3 s).
 * A fresh database has none until autovacuum gets to it (never, where autovacuum is off),
 * and each day's new partitions start without. Once there, autovacuum keeps them fresh;
 * stale statistics from a smaller table still favour the primary key. Cheap when nothing
 * is missing: one catalog query.
 */
export async function analyzeUnanalyzed(tx: Prisma.TransactionClient, tables: readonly string[]): Promise<string[]> {
  // The candidates are listed first (MATERIALIZED): pg_relation_size takes a lock on each
  // relation it sizes, so it must never see another table, one that may be locked.
  const rows = await tx.$queryRawUnsafe<{ rel: string }[]>(
    `WITH rels AS MATERIALIZED (
       SELECT c.oid, c.relname, c.relnamespace
       FROM unnest($1::text[]) AS t(name)
       JOIN pg_class p ON p.oid = t.name::regclass
       JOIN pg_class c ON c.oid = p.oid OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = p.oid)
       WHERE c.relkind = 'r')
     SELECT r.oid::regclass::text AS rel FROM rels r
     WHERE NOT EXISTS (SELECT 1 FROM pg_stats s WHERE s.schemaname = r.relnamespace::regnamespace::name AND s.tablename = r.relname)
       AND pg_relation_size(r.oid) > 0`,
    tables,
  );
  // Leaf partitions only: analyzing a partitioned parent would sample every partition again.
  for (const { rel } of rows) await tx.$executeRawUnsafe(`ANALYZE ${rel}`);
  return rows.map((r) => r.rel);
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
  return {
    hosts: v.map((x) => x.h),
    starts: v.map((x) => new Date(x.b)),
    ends: v.map((x) => new Date(nextAt(x.b, level))),
  };
}

/** One rollup run over at most `maxMarks` dirty minutes. */
export async function runRollup(
  db: Db,
  retention: Retention,
  opts: { maxMarks?: number; now?: Date } = {},
): Promise<RollupResult> {
  const now = opts.now ?? new Date();
  return db.$transaction(
    async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${ROLLUP_LOCK_KEY})`);
      const marks = await tx.$queryRawUnsafe<{ host_id: string; bucket: Date; hits: number }[]>(
        `SELECT host_id::text AS host_id, bucket, hits FROM telemetry_dirty ORDER BY bucket LIMIT $1`,
        opts.maxMarks ?? DEFAULT_MARKS_PER_RUN,
      );
      const minutes = distinctBuckets(marks, "minute", horizon(now, retention.rawDays));
      const hours = distinctBuckets(marks, "hour", horizon(now, retention.minuteDays));
      const days = distinctBuckets(marks, "day", horizon(now, retention.hourDays));
      const months = distinctBuckets(marks, "month", horizon(now, retention.dayDays));
      if (marks.length > 0) {
        await tx.$executeRawUnsafe(
          `CREATE TEMPORARY TABLE IF NOT EXISTS rollup_new (host_id uuid, table_name text, address inet, bucket timestamptz(3),
             src_bytes bigint, src_packets bigint, dst_bytes bigint, dst_packets bigint) ON COMMIT DROP`,
        );
      }
      const r: RollupResult = {
        minutes: await rollupLevel(tx, LEVELS.minute, minutes),
        hours: await rollupLevel(tx, LEVELS.hour, hours),
        days: await rollupLevel(tx, LEVELS.day, days),
        months: await rollupLevel(tx, LEVELS.month, months),
        remaining: 0,
      };
      if (marks.length > 0) {
        // Last, so an ingest bumping one of these marks waits (if at all) only for the commit.
        await tx.$executeRawUnsafe(
          `DELETE FROM telemetry_dirty t USING unnest($1::uuid[], $2::timestamptz[], $3::int[]) AS d(h, b, n)
           WHERE t.host_id = d.h AND t.bucket = d.b AND t.hits = d.n`,
          marks.map((m) => m.host_id),
          marks.map((m) => m.bucket),
          marks.map((m) => m.hits),
        );
      }
      const [left] = await tx.$queryRawUnsafe<{ n: bigint }[]>(`SELECT count(*) AS n FROM telemetry_dirty`);
      r.remaining = Number(left?.n ?? 0);
      return r;
    },
    { timeout: 120_000 },
  );
}

/** Runs until no mark is left that this run could take (bounded by maxRuns). */
export async function rollupAll(
  db: Db,
  retention: Retention,
  opts: { maxMarks?: number; maxRuns?: number; now?: Date } = {},
): Promise<RollupResult> {
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
    ? await db.$queryRawUnsafe<{ b: Date | null }[]>(
        `SELECT min(bucket) AS b FROM telemetry_dirty WHERE host_id = $1::uuid`,
        hostId,
      )
    : await db.$queryRawUnsafe<{ b: Date | null }[]>(`SELECT min(bucket) AS b FROM telemetry_dirty`);
  return row?.b ?? null;
}
