// Accounting rollups: raw samples -> accounting_minute -> accounting_hour -> accounting_day.
//
// The ingest marks every (host, minute) it wrote samples for in telemetry_dirty. A run
// takes a bounded set of marks, deletes them and, in the same transaction, recomputes
// each marked minute from the raw samples, then the hours and days containing them from
// the level below — whole buckets, written with upsert, so a rerun (or a second run
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
  /** Marks still waiting (more than one run's worth, or held by an in-flight ingest). */
  remaining: number;
}

async function rollupLevel(tx: Prisma.TransactionClient, target: "accounting_minute" | "accounting_hour" | "accounting_day", source: string, time: string, unit: "minute" | "hour" | "day", hosts: string[], buckets: Date[]): Promise<number> {
  if (hosts.length === 0) return 0;
  await tx.$executeRawUnsafe(
    `INSERT INTO ${target} (host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT s.host_id, s.table_name, s.address, d.b, ${SUMS.replaceAll("sum(", "sum(s.")}
     FROM unnest($1::uuid[], $2::timestamptz[]) AS d(h, b)
     JOIN ${source} s ON s.host_id = d.h AND s.${time} >= d.b AND s.${time} < d.b + interval '1 ${unit}'
     GROUP BY s.host_id, s.table_name, s.address, d.b
     ${UPSERT}`,
    hosts, buckets,
  );
  return hosts.length;
}

function distinctBuckets(marks: { host_id: string; bucket: Date }[], trunc: (d: Date) => Date, notBefore: Date): { hosts: string[]; buckets: Date[] } {
  const seen = new Map<string, { h: string; b: Date }>();
  for (const m of marks) {
    const b = trunc(m.bucket);
    // A bucket starting before the finer level's retention would be recomputed from partial data.
    if (b < notBefore) continue;
    seen.set(`${m.host_id}|${b.getTime()}`, { h: m.host_id, b });
  }
  const v = [...seen.values()];
  return { hosts: v.map((x) => x.h), buckets: v.map((x) => x.b) };
}

const truncHour = (d: Date) => new Date(Math.floor(d.getTime() / 3600_000) * 3600_000);
const truncDay = (d: Date) => new Date(Math.floor(d.getTime() / 86_400_000) * 86_400_000);

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
      const minutes = distinctBuckets(marks, (d) => d, horizon(now, retention.rawDays));
      const hours = distinctBuckets(marks, truncHour, horizon(now, retention.minuteDays));
      const days = distinctBuckets(marks, truncDay, horizon(now, retention.hourDays));
      const r: RollupResult = {
        minutes: await rollupLevel(tx, "accounting_minute", "accounting_samples", "at", "minute", minutes.hosts, minutes.buckets),
        hours: await rollupLevel(tx, "accounting_hour", "accounting_minute", "bucket", "hour", hours.hosts, hours.buckets),
        days: await rollupLevel(tx, "accounting_day", "accounting_hour", "bucket", "day", days.hosts, days.buckets),
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
  const total: RollupResult = { minutes: 0, hours: 0, days: 0, remaining: 0 };
  for (let i = 0; i < (opts.maxRuns ?? 1000); i++) {
    const r = await runRollup(db, retention, opts);
    total.minutes += r.minutes;
    total.hours += r.hours;
    total.days += r.days;
    total.remaining = r.remaining;
    if (r.minutes === 0 && r.hours === 0 && r.days === 0) break;
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
