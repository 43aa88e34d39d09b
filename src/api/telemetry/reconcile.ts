// Reconcile: recompute a bounded, recent window of every rollup from the level below and
// repair what differs. The rollups (rollups.ts) are exact by construction, but they are
// kept incrementally: the fleet tables as differences, every level only where a mark
// says so. Anything outside that path leaves a difference for good: a replica of an
// earlier version writing per-host rows without the fleet tables, a bug, a manual edit,
// a restore. This job finds and repairs such drift in the window instead.
//
// Per level, coarser last (so a repaired minute feeds its hour): the rows the rollup
// would write for every whole bucket of the window are computed into a temporary table;
// a stored row that differs or is missing is upserted, a stored row with nothing under
// it is deleted. Then the fleet rows (per address over hosts) and the table totals (per
// host over addresses) of the same buckets are recomputed from the per-host rows.
//
// What is skipped, and why:
// - a (host, bucket) with a dirty mark: the rollup will recompute it, and until then its
//   rows legitimately lag the raw samples (queries read raw there). The marks are read
//   after the recomputation (READ COMMITTED): an ingest committing in between adds its
//   mark, so its bucket is skipped too; marks only go away in a rollup, which waits;
// - buckets starting before the retention horizon of the level below (it no longer
//   holds all of them), as the rollup does.
// Each level is repaired in its own transaction under the rollup's advisory lock, so no
// rollup runs while a level is repaired, and a rollup waits for one level at most.
import type { Db, Prisma } from "../db/client.ts";
import { ceilAt, floorAt, nextAt, type BucketLevel } from "./plan.ts";
import { horizon, type Retention } from "./retention.ts";
import { analyzeUnanalyzed, ROLLUP_LOCK_KEY } from "./rollups.ts";

export const DEFAULT_RECONCILE_HOURS = 6;

const COUNTERS = ["src_bytes", "src_packets", "dst_bytes", "dst_packets"] as const;
const SUMS = COUNTERS.map((c) => `sum(${c})::bigint AS ${c}`).join(", ");
const VALUES = COUNTERS.join(", ");
const EPOCH = `TIMESTAMPTZ '1970-01-01 00:00:00+00'`;

/** The bucket of `level` containing `col` (UTC calendar months), as SQL. */
const bucketOf = (level: BucketLevel, col: string) =>
  level === "month"
    ? `(date_trunc('month', ${col} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')`
    : `date_bin('1 ${level}'::interval, ${col}, ${EPOCH})`;

const LEVELS: {
  level: BucketLevel;
  target: string;
  source: string;
  time: string;
  fleet?: string;
  totals?: string;
  /** Days the level below keeps (what the rollup would recompute from). */
  sourceDays: (r: Retention) => number;
}[] = [
  {
    level: "minute",
    target: "accounting_minute",
    source: "accounting_samples",
    time: "at",
    totals: "accounting_table_minute",
    sourceDays: (r) => r.rawDays,
  },
  {
    level: "hour",
    target: "accounting_hour",
    source: "accounting_minute",
    time: "bucket",
    fleet: "accounting_fleet_hour",
    totals: "accounting_table_hour",
    sourceDays: (r) => r.minuteDays,
  },
  {
    level: "day",
    target: "accounting_day",
    source: "accounting_hour",
    time: "bucket",
    fleet: "accounting_fleet_day",
    totals: "accounting_table_day",
    sourceDays: (r) => r.hourDays,
  },
  {
    level: "month",
    target: "accounting_month",
    source: "accounting_day",
    time: "bucket",
    fleet: "accounting_fleet_month",
    sourceDays: (r) => r.dayDays,
  },
];

export interface ReconcileResult {
  /** The window asked for; each level covers its whole buckets overlapping it. */
  from: Date;
  to: Date;
  /** Rows written (differing or missing) and deleted (nothing under them), per table. */
  repaired: Record<string, { written: number; deleted: number }>;
}

/**
 * Makes `target`'s rows with bucket in [lo, hi) equal to reconcile_new's, keyed by `keys`;
 * rows of a (host, bucket) in reconcile_dirty are left alone when `dirty` is set.
 */
async function repair(
  tx: Prisma.TransactionClient,
  target: string,
  keys: string[],
  lo: Date,
  hi: Date,
  dirty: boolean,
): Promise<{ written: number; deleted: number }> {
  const on = keys.map((k) => `o.${k} = n.${k}`).join(" AND ");
  const notDirty = (t: string) =>
    dirty
      ? `AND NOT EXISTS (SELECT 1 FROM reconcile_dirty d WHERE d.host_id = ${t}.host_id AND d.b = ${t}.bucket)`
      : "";
  const [w] = await tx.$queryRawUnsafe<{ n: number }[]>(
    `WITH w AS (
       INSERT INTO ${target} AS t (${keys.join(", ")}, ${VALUES})
       SELECT ${keys.map((k) => `n.${k}`).join(", ")}, ${COUNTERS.map((c) => `n.${c}`).join(", ")}
       FROM reconcile_new n LEFT JOIN ${target} o ON ${on}
       WHERE (o.${COUNTERS[0]}, o.${COUNTERS[1]}, o.${COUNTERS[2]}, o.${COUNTERS[3]})
             IS DISTINCT FROM (n.${COUNTERS[0]}, n.${COUNTERS[1]}, n.${COUNTERS[2]}, n.${COUNTERS[3]}) ${notDirty("n")}
       ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${COUNTERS.map((c) => `${c} = EXCLUDED.${c}`).join(", ")}
       RETURNING 1)
     SELECT count(*)::int AS n FROM w`,
  );
  const deleted = await tx.$executeRawUnsafe(
    `DELETE FROM ${target} o WHERE o.bucket >= $1::timestamptz AND o.bucket < $2::timestamptz
       AND NOT EXISTS (SELECT 1 FROM reconcile_new n WHERE ${on}) ${notDirty("o")}`,
    lo,
    hi,
  );
  return { written: w?.n ?? 0, deleted };
}

/** Fills reconcile_new from `sql` (a SELECT with the target's columns). */
async function fill(tx: Prisma.TransactionClient, sql: string, params: unknown[]): Promise<void> {
  await tx.$executeRawUnsafe(`DROP TABLE IF EXISTS reconcile_new`);
  await tx.$executeRawUnsafe(`CREATE TEMPORARY TABLE reconcile_new ON COMMIT DROP AS ${sql}`, ...params);
  await tx.$executeRawUnsafe(`ANALYZE reconcile_new`);
}

/**
 * Recomputes every rollup's buckets overlapping the last `hours` (whole buckets: the
 * current day and month included) and repairs differences. Idempotent: a second run
 * repairs nothing.
 */
export async function reconcileRollups(
  db: Db,
  retention: Retention,
  opts: { hours?: number; now?: Date } = {},
): Promise<ReconcileResult> {
  const now = opts.now ?? new Date();
  const to = new Date(now.getTime() + 60_000); // the current minute, whole
  const from = new Date(now.getTime() - (opts.hours ?? DEFAULT_RECONCILE_HOURS) * 3_600_000);
  const repaired: ReconcileResult["repaired"] = {};
  // One transaction per level, each under the rollup's lock: rollups wait for one level's
  // repair at most, not all four (a rollup between two levels leaves each level and the
  // ones derived from it consistent, which is all the next level's recomputation reads).
  for (const l of LEVELS) {
    const notBefore = horizon(now, l.sourceDays(retention)).getTime();
    const lo = new Date(ceilAt(Math.max(floorAt(from.getTime(), l.level), notBefore), l.level));
    const hi = new Date(nextAt(to.getTime() - 1, l.level));
    if (lo >= hi) continue;
    await db.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${ROLLUP_LOCK_KEY})`);
        // The repair joins against the target: without statistics the planner probes it badly (rollups.ts).
        await analyzeUnanalyzed(
          tx,
          [l.source, l.target, l.fleet, l.totals].filter((t): t is string => t !== undefined),
        );
        // Per-host rows, from the level below.
        await fill(
          tx,
          `SELECT host_id, table_name, address, ${bucketOf(l.level, l.time)} AS bucket, ${SUMS}
           FROM ${l.source} WHERE ${l.time} >= $1::timestamptz AND ${l.time} < $2::timestamptz
           GROUP BY host_id, table_name, address, 4`,
          [lo, hi],
        );
        // Read after the recomputation (see the header): an ingest that committed since adds its mark.
        await tx.$executeRawUnsafe(`DROP TABLE IF EXISTS reconcile_dirty`);
        await tx.$executeRawUnsafe(
          `CREATE TEMPORARY TABLE reconcile_dirty ON COMMIT DROP AS
           SELECT DISTINCT host_id, ${bucketOf(l.level, "bucket")} AS b FROM telemetry_dirty`,
        );
        repaired[l.target] = await repair(tx, l.target, ["host_id", "table_name", "address", "bucket"], lo, hi, true);
        // The derived tables always equal the per-host rows' sums (rollups.ts keeps them so in the same transaction).
        const derived: Array<[table: string | undefined, keys: string[]]> = [
          [l.fleet, ["table_name", "address", "bucket"]],
          [l.totals, ["host_id", "table_name", "bucket"]],
        ];
        for (const [table, keys] of derived) {
          if (!table) continue;
          const cols = keys.join(", ");
          await fill(
            tx,
            `SELECT ${cols}, ${SUMS} FROM ${l.target}
             WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz GROUP BY ${cols}`,
            [lo, hi],
          );
          repaired[table] = await repair(tx, table, keys, lo, hi, false);
        }
      },
      { timeout: 300_000 },
    );
  }
  return { from, to, repaired };
}

/** Rows repaired in all (0 when nothing had drifted). */
export const repairedRows = (r: ReconcileResult) =>
  Object.values(r.repaired).reduce((a, x) => a + x.written + x.deleted, 0);
