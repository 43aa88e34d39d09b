// Query benchmark (issues 5 and 15): fleet top-10 talkers over 24 h, 30 d and 365 d and a
// table's series over the same ranges, over >= 10 million stored accounting rows, p50/p95,
// through the functions the REST routes call (src/api/telemetry/queries.ts: topTalkers,
// series; Prisma client, planner, rollups). Each is measured beside the old path of the
// same question (`path: "scan"`: GROUP BY over every row of the range) in the same rounds,
// and the answers are checked equal; plus a naive GROUP BY over the raw samples and over
// the minute table for the day.
//
// A dedicated database (palisade_bench_query_<pid>) is created, migrated with the
// project's migrator, filled with SQL (generate_series, INSERT ... SELECT, in chunks,
// progress on stderr), VACUUM ANALYZEd, queried, and dropped in `finally` (and on
// SIGINT/SIGTERM). Data: one accounting table "lan" over 10.20.0.0/16 (65,536 addresses)
// on BENCH_HOSTS hosts, plus each table's unattributed remainder row (0.0.0.0/0):
//   raw samples     the last BENCH_RAW_HOURS, BENCH_SAMPLES_PER_MIN samples per active address-minute
//   accounting_minute  rollup of the raw samples where they exist; generated before that,
//                   back to BENCH_MINUTE_DAYS whole days (daily partitions from partitions.ts)
//   accounting_hour rollup of the minutes back to BENCH_MINUTE_DAYS; generated before that,
//                   back to BENCH_HOUR_DAYS (BENCH_HOUR_ADDRS addresses per host-hour)
//   accounting_day  rollup of the hours back to BENCH_HOUR_DAYS; generated before that,
//                   back to BENCH_YEAR_DAYS (BENCH_DAY_ADDRS addresses per host-day)
//   accounting_month rollup of all the day rows into calendar months (UTC), as rollups.ts does
//   accounting_fleet_* / accounting_table_*  the derived rollups (sums over hosts / over
//                   addresses) of the levels above, as the migration's backfill does
// Per host and minute BENCH_MINUTE_ADDRS addresses talk, each for BENCH_BLOCK_MIN
// consecutive minutes, drawn from the day's live eighth of the /16 (which eighth rotates
// every 46 days, so a year touches all 65,536); bytes are heavy-tailed per address.
// The last minute and the current one are left marked dirty (telemetry_dirty), as between
// two rollup runs, so the planner reads them from the raw samples.
//
// Run: node --import tsx bench/query.ts   (or npm run bench -- bench/query.ts)
// Env (defaults): BENCH_HOSTS=2 BENCH_MINUTE_ADDRS=120 BENCH_BLOCK_MIN=10 BENCH_RAW_HOURS=48
//   BENCH_SAMPLES_PER_MIN=3 BENCH_MINUTE_DAYS=14 BENCH_HOUR_DAYS=35 BENCH_HOUR_ADDRS=720
//   BENCH_YEAR_DAYS=365 BENCH_DAY_ADDRS=6144 BENCH_RUNS=20 BENCH_WARMUP=2 BENCH_MIN_RUNS=5
//   BENCH_QUERY_BUDGET_S=40 (per query: fewer runs, never under BENCH_MIN_RUNS, when slow)
//   BENCH_EXPLAIN_MS=1000 (EXPLAIN ANALYZE to stderr for a query whose p50 is above; "all")
import { randomUUID } from "node:crypto";
import pg from "pg";
import { createDb, type Db } from "../src/api/db/client.ts";
import { migrate } from "../src/api/db/migrate.ts";
import { ensurePartitions } from "../src/api/telemetry/partitions.ts";
import { series, topTalkers } from "../src/api/telemetry/queries.ts";
import type { TopStats } from "../src/api/telemetry/top.ts";
import { dropDatabase, testDatabaseUrl } from "../test/support/db.ts";
import { note, step } from "./lib/progress.ts";
import { int, machine, max, min, ms, NOISE_NOTE, p50, p95, ratio, table } from "./lib/stats.ts";

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer`);
  return v;
};
const HOSTS = env("BENCH_HOSTS", 2);
const MINUTE_ADDRS = env("BENCH_MINUTE_ADDRS", 120);
const BLOCK_MIN = env("BENCH_BLOCK_MIN", 10);
const RAW_HOURS = env("BENCH_RAW_HOURS", 48);
const SAMPLES_PER_MIN = env("BENCH_SAMPLES_PER_MIN", 3);
const MINUTE_DAYS = env("BENCH_MINUTE_DAYS", 14);
const HOUR_DAYS = env("BENCH_HOUR_DAYS", 35);
const HOUR_ADDRS = env("BENCH_HOUR_ADDRS", 720);
const YEAR_DAYS = env("BENCH_YEAR_DAYS", 365);
const DAY_ADDRS = env("BENCH_DAY_ADDRS", 6144);
const RUNS = env("BENCH_RUNS", 20);
const WARMUP = env("BENCH_WARMUP", 2);
const MIN_RUNS = env("BENCH_MIN_RUNS", 5);
const QUERY_BUDGET_MS = env("BENCH_QUERY_BUDGET_S", 40) * 1000;
const TOP_KS = (process.env.BENCH_TOP_KS ?? "")
  .split(",")
  .filter((x) => x.trim() !== "")
  .map((x) => {
    const k = Number(x);
    if (!Number.isInteger(k) || k < 1) throw new Error("BENCH_TOP_KS: comma-separated positive integers");
    return k;
  });
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
const EXPLAIN_ALL = process.env.BENCH_EXPLAIN === "all" || process.env.BENCH_EXPLAIN_MS === "all";
const EXPLAIN_MS = EXPLAIN_ALL ? 0 : env("BENCH_EXPLAIN_MS", 1000);

const LIVE = 8192; // addresses of the /16 that can talk on a given day (one eighth)
if (HOSTS < 1 || HOSTS > 64) throw new Error("BENCH_HOSTS: 1..64");
for (const [n, v] of [
  ["BENCH_MINUTE_ADDRS", MINUTE_ADDRS],
  ["BENCH_HOUR_ADDRS", HOUR_ADDRS],
  ["BENCH_DAY_ADDRS", DAY_ADDRS],
] as const) {
  if (v < 1 || v > LIVE) throw new Error(`${n}: 1..${LIVE}`);
}
if (![1, 2, 3, 6].includes(SAMPLES_PER_MIN))
  throw new Error("BENCH_SAMPLES_PER_MIN: 1, 2, 3 or 6 (10 s agent interval)");
if (BLOCK_MIN < 1 || 60 % BLOCK_MIN !== 0) throw new Error("BENCH_BLOCK_MIN must divide 60");
if (!(RAW_HOURS >= 25 && RAW_HOURS <= MINUTE_DAYS * 24 && MINUTE_DAYS <= HOUR_DAYS && HOUR_DAYS < YEAR_DAYS)) {
  throw new Error(
    "need 25 <= BENCH_RAW_HOURS <= 24*MINUTE_DAYS, MINUTE_DAYS <= HOUR_DAYS < YEAR_DAYS (the day's top-10 is checked against the raw samples)",
  );
}

const MIN_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const TABLE = "lan";

// ---- data generation (SQL) --------------------------------------------------------------

// Address of live index j (0..8191) of host h on day index d (days since 1970): one eighth
// of the /16 per host, rotating every 46 days.
const addr = (j: string, day: string) => `('10.20.0.0'::inet + ((${j}) * 8 + ((${day}) / 46 + hs.h) % 8))`;
// Heavy-tailed per-address weights (a permutation of the /16 ranks the addresses).
const srcBase = (i: string) => `(4000000 / (1 + (((${i}) - '10.20.0.0'::inet) * 40503 % 65536) / 16))`;
const dstBase = (i: string) => `(2000000 / (1 + (((${i}) - '10.20.0.0'::inet) * 9973 % 65536) / 16))`;
const HOSTS_CTE = `hs AS (SELECT id, (ord - 1)::bigint AS h FROM unnest($3::uuid[]) WITH ORDINALITY AS u(id, ord))`;
const EPOCH = `TIMESTAMPTZ '1970-01-01 00:00:00+00'`;
const COLS = `host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets`;
const SUMS = `sum(src_bytes)::bigint, sum(src_packets)::bigint, sum(dst_bytes)::bigint, sum(dst_packets)::bigint`;

/** Raw samples for minutes [$1, $2), none at or after $4 (now). */
const RAW_SQL = `
WITH ${HOSTS_CTE},
mins AS (SELECT t, (extract(epoch FROM t)::bigint / 60) AS mi FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 minute', interval '1 minute') AS t),
act AS (
  SELECT mins.t, mins.mi, hs.id, ${addr(`(k * ${Math.floor(LIVE / MINUTE_ADDRS)} + (mins.mi / ${BLOCK_MIN}) * 37 + hs.h * 1001) % ${LIVE}`, "mins.mi / 1440")} AS a
  FROM mins CROSS JOIN hs CROSS JOIN generate_series(0, ${MINUTE_ADDRS - 1}) AS k
),
rows AS (
  SELECT act.t + q * interval '${60 / SAMPLES_PER_MIN} seconds' AS at, act.id, act.a,
         ${srcBase("act.a")} + (act.mi * 7 + q * 13 + (act.a - '10.20.0.0'::inet) * 31) % 1000 AS sb,
         ${dstBase("act.a")} + (act.mi * 3 + q * 17 + (act.a - '10.20.0.0'::inet) * 29) % 1000 AS db
  FROM act CROSS JOIN generate_series(0, ${SAMPLES_PER_MIN - 1}) AS q
  UNION ALL
  SELECT t, hs.id, '0.0.0.0/0'::inet, 1500 + (extract(epoch FROM t)::bigint / 10) % 500, 700 + (extract(epoch FROM t)::bigint / 10) % 300
  FROM generate_series($1::timestamptz, $2::timestamptz - interval '10 seconds', interval '10 seconds') AS t CROSS JOIN hs
)
INSERT INTO accounting_samples (at, host_id, table_name, address, src_bytes, src_packets, dst_bytes, dst_packets)
SELECT at, id, '${TABLE}', a, sb, sb / 700 + 1, db, db / 700 + 1 FROM rows WHERE at < $4 ORDER BY at`;

/** Minute rows generated directly for [$1, $2) (before the raw samples). */
const MINUTE_SQL = `
WITH ${HOSTS_CTE},
mins AS (SELECT t, (extract(epoch FROM t)::bigint / 60) AS mi FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 minute', interval '1 minute') AS t),
rows AS (
  SELECT mins.t, hs.id, x.a,
         ${SAMPLES_PER_MIN} * ${srcBase("x.a")} + (mins.mi * 7 + (x.a - '10.20.0.0'::inet) * 31) % 3000 AS sb,
         ${SAMPLES_PER_MIN} * ${dstBase("x.a")} + (mins.mi * 3 + (x.a - '10.20.0.0'::inet) * 29) % 3000 AS db
  FROM mins CROSS JOIN hs CROSS JOIN generate_series(0, ${MINUTE_ADDRS - 1}) AS k
  CROSS JOIN LATERAL (SELECT ${addr(`(k * ${Math.floor(LIVE / MINUTE_ADDRS)} + (mins.mi / ${BLOCK_MIN}) * 37 + hs.h * 1001) % ${LIVE}`, "mins.mi / 1440")} AS a) x
  UNION ALL
  SELECT t, hs.id, '0.0.0.0/0'::inet, 6 * 1750, 6 * 850
  FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 minute', interval '1 minute') AS t CROSS JOIN hs
)
INSERT INTO accounting_minute (${COLS})
SELECT id, '${TABLE}', a, t, sb, sb / 700 + 1, db, db / 700 + 1 FROM rows ORDER BY t`;

/** Hour rows generated directly for [$1, $2) (before the minute rollups). */
const HOUR_FACTOR = BLOCK_MIN * SAMPLES_PER_MIN;
const HOUR_SQL = `
WITH ${HOSTS_CTE},
hrs AS (SELECT t, (extract(epoch FROM t)::bigint / 3600) AS hi FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') AS t),
rows AS (
  SELECT hrs.t, hs.id, x.a,
         ${HOUR_FACTOR} * ${srcBase("x.a")} + (hrs.hi * 7 + (x.a - '10.20.0.0'::inet) * 31) % 30000 AS sb,
         ${HOUR_FACTOR} * ${dstBase("x.a")} + (hrs.hi * 3 + (x.a - '10.20.0.0'::inet) * 29) % 30000 AS db
  FROM hrs CROSS JOIN hs CROSS JOIN generate_series(0, ${HOUR_ADDRS - 1}) AS k
  CROSS JOIN LATERAL (SELECT ${addr(`(k * ${Math.floor(LIVE / HOUR_ADDRS)} + hrs.hi * ${37 * (60 / BLOCK_MIN)} + hs.h * 1001) % ${LIVE}`, "hrs.hi / 24")} AS a) x
  UNION ALL
  SELECT t, hs.id, '0.0.0.0/0'::inet, 360 * 1750, 360 * 850
  FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') AS t CROSS JOIN hs
)
INSERT INTO accounting_hour (${COLS})
SELECT id, '${TABLE}', a, t, sb, sb / 700 + 1, db, db / 700 + 1 FROM rows ORDER BY t`;

/** Day rows generated directly for [$1, $2) (before the hour rollups). */
const DAY_FACTOR = Math.max(1, Math.round((MINUTE_ADDRS * 1440 * SAMPLES_PER_MIN) / LIVE));
const DAY_SQL = `
WITH ${HOSTS_CTE},
days AS (SELECT t, (extract(epoch FROM t)::bigint / 86400) AS di FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 day', interval '1 day') AS t),
rows AS (
  SELECT days.t, hs.id, x.a,
         ${DAY_FACTOR} * ${srcBase("x.a")} + (days.di * 7 + (x.a - '10.20.0.0'::inet) * 31) % 100000 AS sb,
         ${DAY_FACTOR} * ${dstBase("x.a")} + (days.di * 3 + (x.a - '10.20.0.0'::inet) * 29) % 100000 AS db
  FROM days CROSS JOIN hs CROSS JOIN generate_series(0, ${DAY_ADDRS - 1}) AS k
  CROSS JOIN LATERAL (SELECT ${addr(`(k * ${Math.floor(LIVE / DAY_ADDRS)} + days.di * 1237 + hs.h * 1001) % ${LIVE}`, "days.di")} AS a) x
  UNION ALL
  SELECT t, hs.id, '0.0.0.0/0'::inet, 8640 * 1750, 8640 * 850
  FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 day', interval '1 day') AS t CROSS JOIN hs
)
INSERT INTO accounting_day (${COLS})
SELECT id, '${TABLE}', a, t, sb, sb / 700 + 1, db, db / 700 + 1 FROM rows ORDER BY t`;

/** A rollup level computed from the one below for [$1, $2), as rollups.ts does (whole buckets). */
const rollupSql = (target: string, source: string, time: string, unit: string) => `
INSERT INTO ${target} (${COLS})
SELECT host_id, table_name, address, date_bin('1 ${unit}', ${time}, ${EPOCH}) AS b, ${SUMS}
FROM ${source} WHERE ${time} >= $1 AND ${time} < $2
GROUP BY host_id, table_name, address, b ORDER BY b`;

/** Calendar months (UTC) from the day rows of [$1, $2) ($1, $2 month starts), as rollups.ts does. */
const MONTH_SQL = `
INSERT INTO accounting_month (${COLS})
SELECT host_id, table_name, address, date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS b, ${SUMS}
FROM accounting_day WHERE bucket >= $1 AND bucket < $2
GROUP BY host_id, table_name, address, b ORDER BY b`;

/** The derived rollups (rollups.ts keeps them at ingest/rollup time), from the per-host rows of [$1, $2). */
const fleetSql = (level: string) => `
INSERT INTO accounting_fleet_${level} (table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
SELECT table_name, address, bucket, ${SUMS} FROM accounting_${level} WHERE bucket >= $1 AND bucket < $2
GROUP BY table_name, address, bucket ORDER BY bucket`;
const totalsSql = (level: string) => `
INSERT INTO accounting_table_${level} (host_id, table_name, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
SELECT host_id, table_name, bucket, ${SUMS} FROM accounting_${level} WHERE bucket >= $1 AND bucket < $2
GROUP BY host_id, table_name, bucket ORDER BY bucket`;

interface Chunked {
  table: string;
  how: string;
  sql: string;
  from: number;
  to: number;
  chunkMs: number;
  params: (from: Date, to: Date) => unknown[];
}

// ---- measuring ---------------------------------------------------------------------------

interface Query {
  name: string;
  /** The old path of the same question, measured in the same rounds (the baseline). */
  base?: string;
  reads: string;
  run: (db: Db) => Promise<unknown>;
  times: number[];
  warm: number[];
  target: number;
  result?: unknown;
}

/** A Prisma client whose $queryRawUnsafe calls are recorded (to EXPLAIN the same SQL). */
function recording(db: Db, calls: { sql: string; params: unknown[] }[]): Db {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "$queryRawUnsafe") {
        return (sql: string, ...params: unknown[]) => {
          calls.push({ sql, params });
          return target.$queryRawUnsafe(sql, ...params);
        };
      }
      const v: unknown = Reflect.get(target, prop);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

// ---- main --------------------------------------------------------------------------------

const started = performance.now();
const machineLine = machine();
// BENCH_DB=NAME keeps the database for re-runs: generated once, reused (and never dropped)
// while it holds a finished generation (table bench_meta); queries then end at its `now`.
const KEEP = process.env.BENCH_DB;
if (KEEP !== undefined && !/^palisade_bench_[a-z0-9_]+$/.test(KEEP))
  throw new Error("BENCH_DB must match palisade_bench_[a-z0-9_]+");
const name = KEEP ?? `palisade_bench_query_${process.pid}`;
const url = testDatabaseUrl(name);
let dropped = KEEP !== undefined;
const drop = async () => {
  if (dropped) return;
  dropped = true;
  await dropDatabase(name);
  note(`dropped database ${name}`);
};
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    note(`${sig}: dropping ${name}`);
    drop().finally(() => process.exit(130));
  });
}

/** A kept database's finished generation: its `now` and hosts (the data is relative to them). */
async function kept(): Promise<{ now: Date; hostIds: string[]; generated: Record<string, number> } | undefined> {
  if (!KEEP) return undefined;
  const c = new pg.Client({ connectionString: testDatabaseUrl("postgres") });
  await c.connect();
  const exists = (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [KEEP])).rowCount;
  await c.end();
  if (!exists) return undefined;
  const k = new pg.Client({ connectionString: url });
  await k.connect();
  try {
    const r = await k.query<{ meta: { now: string; hostIds: string[]; generated: Record<string, number> } }>(
      "SELECT meta FROM bench_meta",
    );
    const m = r.rows[0]?.meta;
    return m ? { now: new Date(m.now), hostIds: m.hostIds, generated: m.generated } : undefined;
  } catch {
    return undefined; // a generation that did not finish: regenerate into a fresh database
  } finally {
    await k.end();
  }
}
const reuse = await kept();
if (KEEP && !reuse) await dropDatabase(KEEP);
const now = reuse?.now ?? new Date();
const T0 = Math.floor(now.getTime() / MIN_MS) * MIN_MS; // current minute
const D0 = Math.floor(now.getTime() / DAY_MS) * DAY_MS; // today 00:00 UTC
const rawFrom = T0 - RAW_HOURS * HOUR_MS;
const minuteFrom = D0 - MINUTE_DAYS * DAY_MS;
const hourFrom = D0 - HOUR_DAYS * DAY_MS;
const dayFrom = D0 - YEAR_DAYS * DAY_MS;
const hostIds = reuse?.hostIds ?? Array.from({ length: HOSTS }, () => randomUUID());
const generated: Record<string, number> = {
  accounting_samples: 0,
  accounting_minute: 0,
  accounting_hour: 0,
  accounting_day: 0,
  accounting_month: 0,
  accounting_fleet_hour: 0,
  accounting_fleet_day: 0,
  accounting_fleet_month: 0,
  accounting_table_minute: 0,
  accounting_table_hour: 0,
  accounting_table_day: 0,
};
/** The per-host rows a query reads (the derived fleet/table-total rollups are extra storage, not "stored rows"). */
const BASE = ["accounting_samples", "accounting_minute", "accounting_hour", "accounting_day", "accounting_month"];
const monthFrom = Date.UTC(new Date(dayFrom).getUTCFullYear(), new Date(dayFrom).getUTCMonth(), 1);
const genLines: string[][] = [["step", "rows", "time", "rows/s"]];

let db: Db | undefined;
let exitCode = 0;
try {
  note(
    `database ${name}; sizes: hosts ${HOSTS}, ${MINUTE_ADDRS} addresses/host-minute (${BLOCK_MIN}-min talks), raw ${RAW_HOURS} h x ${SAMPLES_PER_MIN} samples/min, minutes ${MINUTE_DAYS} d, hours ${HOUR_DAYS} d (${HOUR_ADDRS}/host-hour before the minutes), days ${YEAR_DAYS} d (${DAY_ADDRS}/host-day before the hours)`,
  );
  await migrate(url);
  db = createDb(url);
  if (reuse) {
    Object.assign(generated, reuse.generated);
    note(`reusing the generation of ${now.toISOString()} in ${name} (BENCH_DB); queries end at that time`);
  } else {
    // Daily partitions through the project's own code, for every day that gets rows.
    const parts = [
      ...(await ensurePartitions(db, now, { tables: ["accounting_minute"], backDays: MINUTE_DAYS, aheadDays: 1 })),
      ...(await ensurePartitions(db, now, {
        tables: ["accounting_samples"],
        backDays: Math.ceil(RAW_HOURS / 24),
        aheadDays: 1,
      })),
    ];
    note(`created ${parts.length} daily partitions (accounting_minute, accounting_samples)`);

    const gen = new pg.Client({ connectionString: url });
    await gen.connect();
    try {
      await gen.query(`SET TIME ZONE 'UTC'`);
      await gen.query(`SET synchronous_commit = off`);
      await gen.query(`SET work_mem = '64MB'`);
      await gen.query(`SET max_parallel_workers_per_gather = 0`); // frugal: the box is shared
      const nowP = (f: Date, t: Date) => [f, t, hostIds, now];
      const plain = (f: Date, t: Date) => [f, t, hostIds];
      const span = (f: Date, t: Date) => [f, t];
      const steps: Chunked[] = [
        {
          table: "accounting_samples",
          how: "raw samples (generated)",
          sql: RAW_SQL,
          from: rawFrom,
          to: T0 + MIN_MS,
          chunkMs: 4 * HOUR_MS,
          params: nowP,
        },
        {
          table: "accounting_minute",
          how: "minutes (generated, before raw)",
          sql: MINUTE_SQL,
          from: minuteFrom,
          to: rawFrom,
          chunkMs: DAY_MS,
          params: plain,
        },
        {
          table: "accounting_minute",
          how: "minutes (rollup of raw)",
          sql: rollupSql("accounting_minute", "accounting_samples", "at", "minute"),
          from: rawFrom,
          to: T0 + MIN_MS,
          chunkMs: 4 * HOUR_MS,
          params: span,
        },
        {
          table: "accounting_hour",
          how: "hours (generated, before minutes)",
          sql: HOUR_SQL,
          from: hourFrom,
          to: minuteFrom,
          chunkMs: 3 * DAY_MS,
          params: plain,
        },
        {
          table: "accounting_hour",
          how: "hours (rollup of minutes)",
          sql: rollupSql("accounting_hour", "accounting_minute", "bucket", "hour"),
          from: minuteFrom,
          to: D0 + DAY_MS,
          chunkMs: DAY_MS,
          params: span,
        },
        {
          table: "accounting_day",
          how: "days (generated, before hours)",
          sql: DAY_SQL,
          from: dayFrom,
          to: hourFrom,
          chunkMs: 10 * DAY_MS,
          params: plain,
        },
        {
          table: "accounting_day",
          how: "days (rollup of hours)",
          sql: rollupSql("accounting_day", "accounting_hour", "bucket", "day"),
          from: hourFrom,
          to: D0 + DAY_MS,
          chunkMs: 7 * DAY_MS,
          params: span,
        },
        // One chunk: chunks must not split a calendar month.
        {
          table: "accounting_month",
          how: "months (rollup of days)",
          sql: MONTH_SQL,
          from: monthFrom,
          to: D0 + DAY_MS,
          chunkMs: D0 + DAY_MS - monthFrom,
          params: span,
        },
        {
          table: "accounting_fleet_hour",
          how: "fleet hours (sum over hosts)",
          sql: fleetSql("hour"),
          from: hourFrom,
          to: D0 + DAY_MS,
          chunkMs: 7 * DAY_MS,
          params: span,
        },
        {
          table: "accounting_fleet_day",
          how: "fleet days (sum over hosts)",
          sql: fleetSql("day"),
          from: dayFrom,
          to: D0 + DAY_MS,
          chunkMs: 30 * DAY_MS,
          params: span,
        },
        {
          table: "accounting_fleet_month",
          how: "fleet months (sum over hosts)",
          sql: fleetSql("month"),
          from: monthFrom,
          to: D0 + DAY_MS,
          chunkMs: D0 + DAY_MS - monthFrom,
          params: span,
        },
        {
          table: "accounting_table_minute",
          how: "table minutes (sum over addresses)",
          sql: totalsSql("minute"),
          from: minuteFrom,
          to: T0 + MIN_MS,
          chunkMs: 2 * DAY_MS,
          params: span,
        },
        {
          table: "accounting_table_hour",
          how: "table hours (sum over addresses)",
          sql: totalsSql("hour"),
          from: hourFrom,
          to: D0 + DAY_MS,
          chunkMs: 35 * DAY_MS,
          params: span,
        },
        {
          table: "accounting_table_day",
          how: "table days (sum over addresses)",
          sql: totalsSql("day"),
          from: dayFrom,
          to: D0 + DAY_MS,
          chunkMs: 400 * DAY_MS,
          params: span,
        },
      ];
      for (const s of steps) {
        const p = step(`${s.how} -> ${s.table}`);
        let rows = 0;
        const chunks = Math.ceil((s.to - s.from) / s.chunkMs);
        for (let c = 0, f = s.from; f < s.to; c++, f += s.chunkMs) {
          const t = Math.min(f + s.chunkMs, s.to);
          const r = await gen.query(s.sql, s.params(new Date(f), new Date(t)));
          rows += r.rowCount ?? 0;
          p.update(`${s.how} -> ${s.table}: chunk ${c + 1}/${chunks}, ${int(rows)} rows`);
        }
        const took = p.done(`${int(rows)} rows`);
        generated[s.table] = (generated[s.table] ?? 0) + rows;
        genLines.push([`${s.how} -> ${s.table}`, int(rows), ms(took), int(rows / (took / 1000))]);
      }
      // The last two minutes are "not rolled up yet": queries read them from the raw samples.
      await gen.query(
        `INSERT INTO telemetry_dirty (host_id, bucket) SELECT h, b FROM unnest($1::uuid[]) AS h CROSS JOIN (VALUES ($2::timestamptz), ($3::timestamptz)) AS v(b)`,
        [hostIds, new Date(T0 - MIN_MS), new Date(T0)],
      );
      await gen.query(
        `INSERT INTO accounting_tables (host_id, table_name, first_at, last_at) SELECT h, $2, $3, $4 FROM unnest($1::uuid[]) AS h`,
        [hostIds, TABLE, new Date(dayFrom), now],
      );
      const v = step("VACUUM (ANALYZE) of the accounting tables");
      for (const t of Object.keys(generated)) await gen.query(`VACUUM (ANALYZE) ${t}`);
      genLines.push(["VACUUM (ANALYZE)", "", ms(v.done()), ""]);
      if (KEEP) {
        await gen.query("CREATE TABLE bench_meta (meta jsonb NOT NULL)");
        await gen.query("INSERT INTO bench_meta VALUES ($1)", [{ now: now.toISOString(), hostIds, generated }]);
      }
    } finally {
      await gen.end();
    }
  }
  const sizes = await db.$queryRawUnsafe<{ t: string; bytes: bigint }[]>(
    `SELECT t, coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(t::regclass) WHERE isleaf), pg_total_relation_size(t::regclass))::bigint AS bytes FROM unnest($1::text[]) AS t`,
    Object.keys(generated),
  );
  const totalRows = BASE.reduce((a, t) => a + generated[t]!, 0);

  // ---- the queries ----
  const dayFromQ = new Date(now.getTime() - DAY_MS);
  const monthFromQ = new Date(now.getTime() - 30 * DAY_MS);
  const yearFromQ = new Date(now.getTime() - YEAR_DAYS * DAY_MS);
  const scope = { table: TABLE };
  const at = { now };
  const scan = { path: "scan", now } as const;
  const first = (await topTalkers(db, scope, { from: dayFromQ, to: now }, "bytes", "both", 10, at)).items;
  const ip = first[0]?.ip;
  if (!ip) throw new Error("no top talker over the last day: the generated data is wrong");
  const NAIVE = (src: string, time: string) =>
    `SELECT address::text AS address, (sum(src_bytes) + sum(dst_bytes))::text AS v FROM ${src}
     WHERE table_name = $1 AND ${time} >= $2::timestamptz AND ${time} < $3::timestamptz AND address <> '0.0.0.0/0'::inet
     GROUP BY address ORDER BY sum(src_bytes) + sum(dst_bytes) DESC, address LIMIT 10`;
  const naive = (src: string, time: string) => (d: Db) =>
    d.$queryRawUnsafe<{ address: string; v: string }[]>(NAIVE(src, time), TABLE, dayFromQ, now);
  const q = (name: string, reads: string, run: (d: Db) => Promise<unknown>, base?: string): Query => ({
    name,
    reads,
    run,
    times: [],
    warm: [],
    target: RUNS,
    base,
  });
  const topStats: Record<string, TopStats> = {};
  const top =
    (label: string, from: Date, k?: number, steps = false) =>
    (d: Db) =>
      topTalkers(d, scope, { from, to: now }, "bytes", "both", 10, {
        now,
        top: { ...(k && { k }), steps },
        onTopStats: (s) => (topStats[label] = s),
      });
  const queries: Query[] = [
    q(
      "top-10 24h",
      "fleet hour lists (minutes bounded by their hour) + raw edge, candidates' totals",
      top("24h", dayFromQ),
      "old top-10 24h",
    ),
    q("old top-10 24h", "GROUP BY over hour + minute/raw rows", (d) =>
      topTalkers(d, scope, { from: dayFromQ, to: now }, "bytes", "both", 10, scan),
    ),
    q("top-10 30d", "fleet day/hour lists + edge", top("30d", monthFromQ), "old top-10 30d"),
    q("old top-10 30d", "GROUP BY over day + hour + minute/raw rows", (d) =>
      topTalkers(d, scope, { from: monthFromQ, to: now }, "bytes", "both", 10, scan),
    ),
    q(`top-10 ${YEAR_DAYS}d`, "fleet month/day/hour lists + edge", top("year", yearFromQ), `old top-10 ${YEAR_DAYS}d`),
    q(`old top-10 ${YEAR_DAYS}d`, "GROUP BY over month + day + hour + minute/raw rows", (d) =>
      topTalkers(d, scope, { from: yearFromQ, to: now }, "bytes", "both", 10, scan),
    ),
    q(
      "series 24h 1m",
      "table totals per minute + raw tail",
      (d) => series(d, scope, dayFromQ, now, "1m", at),
      "old series 24h 1m",
    ),
    q("old series 24h 1m", "every address's minute rows", (d) => series(d, scope, dayFromQ, now, "1m", scan)),
    q(
      "series 24h 1h",
      "table totals per hour + minute/raw",
      (d) => series(d, scope, dayFromQ, now, "1h", at),
      "old series 24h 1h",
    ),
    q("old series 24h 1h", "every address's hour rows", (d) => series(d, scope, dayFromQ, now, "1h", scan)),
    q(
      "series 30d 1h",
      "table totals per hour + minute/raw",
      (d) => series(d, scope, monthFromQ, now, "1h", at),
      "old series 30d 1h",
    ),
    q("old series 30d 1h", "every address's hour rows", (d) => series(d, scope, monthFromQ, now, "1h", scan)),
    q(
      `series ${YEAR_DAYS}d 1d`,
      "table totals per day + finer edges",
      (d) => series(d, scope, yearFromQ, now, "1d", at),
      `old series ${YEAR_DAYS}d 1d`,
    ),
    q(`old series ${YEAR_DAYS}d 1d`, "every address's day rows", (d) => series(d, scope, yearFromQ, now, "1d", scan)),
    q(`series 24h 1h, ${ip}`, "one address's hour rows (index)", (d) =>
      series(d, { ...scope, address: ip }, dayFromQ, now, "1h", at),
    ),
    q(`series 24h 1m, ${ip}`, "one address's minute rows (index)", (d) =>
      series(d, { ...scope, address: ip }, dayFromQ, now, "1m", at),
    ),
    q("naive: top-10 24h GROUP BY accounting_minute", "minute 24 h", naive("accounting_minute", "bucket")),
    q("naive: top-10 24h GROUP BY accounting_samples", "raw 24 h", naive("accounting_samples", "at")),
  ];
  // The fleet top-N's rounds as separate statements in a transaction, bounds computed in
  // Node (the previous release; top.ts fleetTopSteps).
  for (const [label, from, base] of [
    ["24h", dayFromQ, "old top-10 24h"],
    ["30d", monthFromQ, "old top-10 30d"],
    [`${YEAR_DAYS}d`, yearFromQ, `old top-10 ${YEAR_DAYS}d`],
  ] as const) {
    queries.push(
      q(
        `top-10 ${label}, statements per step (before)`,
        "as above, lists and edge to Node, candidates' totals in a second statement",
        top(`${label} steps`, from, undefined, true),
        base,
      ),
    );
  }
  // Other first K of the fleet top-N, in the same rounds (BENCH_TOP_KS=10,20: to choose the default).
  for (const k of TOP_KS) {
    for (const [label, from, base] of [
      ["24h", dayFromQ, "old top-10 24h"],
      ["30d", monthFromQ, "old top-10 30d"],
      [`${YEAR_DAYS}d`, yearFromQ, `old top-10 ${YEAR_DAYS}d`],
    ] as const) {
      queries.push(q(`top-10 ${label}, first K ${k}`, "as above", top(`${label} K${k}`, from, k), base));
    }
  }
  // BENCH_ONLY=REGEX: only the queries whose name matches (and the old paths they compare with).
  if (ONLY) {
    const keep = queries.filter((x) => ONLY.test(x.name));
    const bases = new Set(keep.map((x) => x.base).filter((b) => b !== undefined));
    queries.splice(0, queries.length, ...queries.filter((x) => ONLY.test(x.name) || bases.has(x.name)));
  }
  const p = step("queries");
  for (const x of queries) {
    for (let i = 0; i < WARMUP; i++) {
      const t = performance.now();
      x.result = await x.run(db);
      x.warm.push(performance.now() - t);
    }
    const per = x.warm.length ? x.warm.reduce((a, b) => a + b, 0) / x.warm.length : 1;
    x.target = Math.min(RUNS, Math.max(MIN_RUNS, Math.floor(QUERY_BUDGET_MS / Math.max(per, 1))));
  }
  // Rounds: every query once per round (until its run count), so load drifts hit all alike.
  for (let round = 0; queries.some((x) => x.times.length < x.target); round++) {
    for (const x of queries) {
      if (x.times.length >= x.target) continue;
      const t = performance.now();
      await x.run(db);
      x.times.push(performance.now() - t);
    }
    p.update(`queries: round ${round + 1}/${Math.max(...queries.map((x) => x.target))}`);
  }
  p.done();

  // Exactness: the fast answers equal the old path's, and the day's equals the naive sum over the raw samples.
  const byName = new Map(queries.map((x) => [x.name, x]));
  const items = (name: string) => JSON.stringify((byName.get(name)!.result as { items: unknown[] }).items);
  const same = queries.filter((x) => x.base).map((x) => [x.name, items(x.name) === items(x.base!)] as const);
  // With BENCH_ONLY either side may not have run: then the raw comparison is skipped, not failed.
  const dayTop = byName.get("top-10 24h");
  const rawRun = byName.get("naive: top-10 24h GROUP BY accounting_samples");
  const dayTopList = dayTop
    ? (dayTop.result as { items: { ip: string; value: number | string }[] }).items.map((r) => `${r.ip}=${r.value}`)
    : [];
  const rawTop = rawRun
    ? (rawRun.result as { address: string; v: string }[]).map((r) => `${r.address.replace(/\/32$/, "")}=${r.v}`)
    : [];
  const sameRaw = dayTop && rawRun ? JSON.stringify(dayTopList) === JSON.stringify(rawTop) : undefined;

  // EXPLAIN ANALYZE of the SQL the slow ones sent (recorded through a proxy client).
  const explained: string[] = [];
  for (const x of queries) {
    if (!(p50(x.times) >= EXPLAIN_MS)) continue;
    const calls: { sql: string; params: unknown[] }[] = [];
    await x.run(recording(db, calls));
    const main = calls.filter((c) => !c.sql.includes("telemetry_dirty"));
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      for (const call of main) {
        const plan = await c.query<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS) ${call.sql}`, call.params);
        process.stderr.write(
          `\n[bench] EXPLAIN ANALYZE: ${x.name}\n${call.sql}\n-- params: ${JSON.stringify(call.params)}\n${plan.rows.map((r) => r["QUERY PLAN"]).join("\n")}\n`,
        );
        explained.push(x.name);
      }
    } finally {
      await c.end();
    }
  }

  // ---- report ----
  const out: string[] = [];
  out.push("Palisade query benchmark (bench/query.ts): top talkers and series over stored accounting rows");
  out.push(machineLine);
  out.push(
    `database ${name}, PostgreSQL defaults of the server; now = ${now.toISOString()}; ${HOSTS} hosts, table "${TABLE}" over 10.20.0.0/16`,
  );
  out.push("");
  const size = (t: string) => Number(sizes.find((s) => s.t === t)?.bytes ?? 0);
  const COVERS: Record<string, string> = {
    accounting_samples: `last ${RAW_HOURS} h, ${SAMPLES_PER_MIN} samples/active address-minute`,
    accounting_minute: `${MINUTE_DAYS} d + today, ${MINUTE_ADDRS} addresses/host-minute`,
    accounting_hour: `${HOUR_DAYS} d + today`,
    accounting_day: `${YEAR_DAYS} d + today`,
    accounting_month: "calendar months of the day rows",
    accounting_fleet_hour: "derived: hour rows summed over hosts",
    accounting_fleet_day: "derived: day rows summed over hosts",
    accounting_fleet_month: "derived: month rows summed over hosts",
    accounting_table_minute: "derived: minute rows summed over addresses",
    accounting_table_hour: "derived: hour rows summed over addresses",
    accounting_table_day: "derived: day rows summed over addresses",
  };
  const derived = Object.keys(generated).filter((t) => !BASE.includes(t));
  const baseBytes = BASE.reduce((a, t) => a + size(t), 0);
  const derivedBytes = derived.reduce((a, t) => a + size(t), 0);
  out.push(
    table([
      ["table", "rows", "size on disk (table + indexes)", "bytes/row", "covers"],
      ...Object.keys(generated).map((t) => [
        t,
        int(generated[t]!),
        `${int(size(t) / 2 ** 20)} MB`,
        int(size(t) / Math.max(generated[t]!, 1)),
        COVERS[t] ?? "",
      ]),
      [
        "stored rows (per-host tables)",
        int(totalRows),
        `${int(baseBytes / 2 ** 20)} MB`,
        int(baseBytes / totalRows),
        "",
      ],
      [
        "+ derived rollups",
        int(derived.reduce((a, t) => a + generated[t]!, 0)),
        `${int(derivedBytes / 2 ** 20)} MB`,
        "",
        `+${((100 * derivedBytes) / baseBytes).toFixed(0)} % on disk`,
      ],
      [
        "all, per stored row",
        "",
        `${int((baseBytes + derivedBytes) / 2 ** 20)} MB`,
        int((baseBytes + derivedBytes) / totalRows),
        "",
      ],
    ]),
  );
  out.push("");
  out.push(table(genLines));
  out.push("");
  out.push(
    table([
      ["query", "reads", "runs", "p50", "p95", "min", "max", "old path p50 / p95", "speed-up (p95)"],
      ...queries
        .filter((x) => !queries.some((y) => y.base === x.name))
        .map((x) => {
          const b = x.base ? byName.get(x.base)! : undefined;
          return [
            x.name,
            x.reads,
            String(x.times.length),
            ms(p50(x.times)),
            ms(p95(x.times)),
            ms(min(x.times)),
            ms(max(x.times)),
            b ? `${ms(p50(b.times))} / ${ms(p95(b.times))}` : "",
            b ? ratio(p95(b.times), p95(x.times)) : "",
          ];
        }),
    ]),
  );
  out.push("");
  out.push(
    `fleet top-N rounds: ${Object.entries(topStats)
      .map(
        ([k, s]) =>
          `${k}: ${s.rounds} round(s), K ${s.k}, ${s.lists} lists, ${s.candidates} candidates, ${s.summed} summed${s.fallback ? ", FELL BACK to the full GROUP BY" : ""}`,
      )
      .join("; ")}`,
  );
  out.push(`fast answers equal the old path's: ${same.map(([n, ok]) => `${n} ${ok ? "yes" : "NO"}`).join(", ")}`);
  out.push(
    `top-10 over 24h equals the naive GROUP BY over the raw samples: ${sameRaw === undefined ? "not compared (BENCH_ONLY left one side out)" : sameRaw ? "yes (same addresses, same values)" : `NO\n  fast: ${dayTopList.join(" ")}\n  raw:  ${rawTop.join(" ")}`}`,
  );
  out.push(
    `warm-ups per query ${WARMUP}; runs ${RUNS} or fewer for a slow query (budget ${QUERY_BUDGET_MS / 1000} s, at least ${MIN_RUNS}); EXPLAIN ANALYZE on stderr for: ${explained.length ? [...new Set(explained)].join("; ") : `none (no p50 >= ${EXPLAIN_MS} ms)`}`,
  );
  if (sameRaw === false || !same.every(([, ok]) => ok)) exitCode = 1;
  out.push(`total bench time ${ms(performance.now() - started)}`);
  out.push(NOISE_NOTE);
  console.log(out.join("\n"));
} catch (err) {
  exitCode = 1;
  process.stderr.write(`[bench] failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  await db?.$disconnect().catch(() => {});
  await drop().catch((e: unknown) => process.stderr.write(`[bench] could not drop ${name}: ${String(e)}\n`));
}
process.exit(exitCode);
