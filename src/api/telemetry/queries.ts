// Read side of the accounting data: tables, per-address totals, top talkers, series.
// Every query is planned over the resolutions (plan.ts): rollups where they are exact,
// raw samples elsewhere, so totals equal the sum of the ingested deltas whatever the
// range. Where retention has emptied the finer levels, an edge of the range is widened
// to the whole bucket (day, month) of the level that still holds it: every answer says
// the range it really covers (`from`, `to`). Counters leave Postgres as text (sums are numeric) and become JSON numbers or
// strings in u64.ts's counterJson.
import { Prisma, type Db } from "../db/client.ts";
import { UNATTRIBUTED } from "./batch.ts";
import { planSegments, SOURCE, UNIT_MS, floorTo, ceilTo, type BucketLevel, type Plan, type Segment } from "./plan.ts";
import { availability, retentionFromEnv, type Retention } from "./retention.ts";
import { rollupHorizon } from "./rollups.ts";
import { Params } from "./sql-params.ts";
import {
  FLEET,
  fleetTop,
  fleetTopSteps,
  type Direction,
  type TopBy,
  type TopOptions,
  type TopSql,
  type TopStats,
} from "./top.ts";
import { counterJson, type Counter } from "./u64.ts";

export interface Scope {
  table: string;
  hostId?: string;
  /** One address (series). */
  address?: string;
}

export interface Totals {
  srcBytes: Counter;
  srcPackets: Counter;
  dstBytes: Counter;
  dstPackets: Counter;
}
export interface AddressRow extends Totals {
  /** Dotted address; "" for the table's unattributed remainder. */
  ip: string;
  unattributed: boolean;
}

interface SumRow {
  address: string;
  sb: string;
  sp: string;
  db: string;
  dp: string;
}

const EPOCH = new Date(0);

/** What a query needs besides its arguments: the retention (what each level still holds) and now. */
export interface QueryOptions {
  retention?: Retention;
  now?: Date;
  /**
   * "scan" reads every row of the range from the per-host tables, as before the fleet and
   * table-total rollups (the bench's baseline, and the tests' reference); default "fast".
   */
  path?: "fast" | "scan";
  /** Fleet top-N tuning (top.ts); tests force a small K to exercise the rounds. */
  top?: TopOptions;
  /** Receives how the fleet top-N found its answer. */
  onTopStats?: (s: TopStats) => void;
}
/** Rows and the range [from, to) they really cover (retention may widen or clamp the asked one). */
export interface Covered<T> {
  items: T[];
  from: Date;
  to: Date;
}

let envRetention: Retention | undefined;
function planOptions(o: QueryOptions) {
  const now = o.now ?? new Date();
  const retention = o.retention ?? (envRetention ??= retentionFromEnv());
  return { now, avail: availability(now, retention) };
}

/**
 * Runs one aggregate read with PostgreSQL's JIT off. Its cost estimates put these
 * GROUP BYs over rollups far above jit_above_cost, and compiling them took 275 ms of a
 * 1.68 s 365-day top-10 (bench/query.ts EXPLAIN, 13.4M rows): more than it saves on
 * queries this short. SET LOCAL ends with the transaction.
 */
async function aggregate<R>(db: Db, sql: string, params: unknown[]): Promise<R[]> {
  return withoutJit(db, (tx) => tx.$queryRawUnsafe<R[]>(sql, ...params));
}
/**
 * Raw time a plan reads, at most, in a statement sent without a transaction. Beginning
 * one, `SET LOCAL jit = off` and committing cost 6-16 ms of a 45-85 ms p50 fleet top-N on
 * the loaded bench box (bench/README.md), and a statement over rollups (table totals,
 * sorted lists, a few candidates' rows) and a few minutes of raw samples is estimated far
 * below jit_above_cost (100,000; 2,000-11,000 on the 13.4M-row bench), so JIT does not
 * start. The raw samples are the part that grows with the range (a rollup that fell
 * behind): past this, the statement runs with jit off as before.
 */
const DIRECT_RAW_MS = 5 * 60_000;
const rawMs = (segs: Segment[]) =>
  segs.filter((s) => s.level === "raw").reduce((a, s) => a + s.to.getTime() - s.from.getTime(), 0);
/** One statement over `segs`: directly when it is short (DIRECT_RAW_MS), else with jit off. */
async function read<R>(db: Db, segs: Segment[], sql: string, params: unknown[]): Promise<R[]> {
  return rawMs(segs) <= DIRECT_RAW_MS ? db.$queryRawUnsafe<R[]>(sql, ...params) : aggregate<R>(db, sql, params);
}
/**
 * One snapshot as well (REPEATABLE READ; a read-only transaction never fails to
 * serialise): the fleet top-N's per-step rounds (`steps`, the bench's baseline) read
 * sorted lists, then exact sums, then the edges, in separate statements, and its proof of
 * exactness holds only if a rollup committing meanwhile is seen by none or all of them.
 */
async function withoutJit<R>(db: Db, fn: (tx: Prisma.TransactionClient) => Promise<R>): Promise<R> {
  return db.$transaction(
    async (tx) => {
      await tx.$executeRawUnsafe("SET LOCAL jit = off");
      return fn(tx);
    },
    { isolationLevel: Prisma.TransactionIsolationLevel.RepeatableRead },
  );
}

/** `from`: read the segment from this table (a fleet or table-total rollup of the same level) instead. */
function segmentSql(
  seg: Segment,
  scope: Scope,
  p: Params,
  extra: string[] = [],
  timeExpr?: (col: string) => string,
  from?: { table: string; address: boolean },
): string {
  const src = from ? { table: from.table, time: "bucket" } : SOURCE[seg.level];
  const where = [
    `table_name = ${p.add(scope.table)}`,
    `${src.time} >= ${p.add(seg.from)}::timestamptz`,
    `${src.time} < ${p.add(seg.to)}::timestamptz`,
    ...extra,
  ];
  if (scope.hostId) where.push(`host_id = ${p.add(scope.hostId)}::uuid`);
  if (scope.address) where.push(`address = ${p.add(scope.address)}::inet`);
  const t = timeExpr ? `, ${timeExpr(src.time)} AS t` : "";
  const address = from && !from.address ? "NULL::inet AS address" : "address";
  return `SELECT ${address}${t}, src_bytes, src_packets, dst_bytes, dst_packets FROM ${src.table} WHERE ${where.join(" AND ")}`;
}

const SUMS = `sum(src_bytes)::text AS sb, sum(src_packets)::text AS sp, sum(dst_bytes)::text AS db, sum(dst_packets)::text AS dp`;
const totals = (r: SumRow): Totals => ({
  srcBytes: counterJson(r.sb),
  srcPackets: counterJson(r.sp),
  dstBytes: counterJson(r.db),
  dstPackets: counterJson(r.dp),
});
const addressRow = (r: SumRow): AddressRow => {
  const un = r.address === UNATTRIBUTED;
  return { ip: un ? "" : r.address.replace(/\/(32|128)$/, ""), unattributed: un, ...totals(r) };
};

async function planFor(
  db: Db,
  scope: Scope,
  from: Date | undefined,
  to: Date | undefined,
  o: QueryOptions,
): Promise<Plan> {
  const exactUntil = await rollupHorizon(db, scope.hostId);
  const { now, avail } = planOptions(o);
  return planSegments(from ?? EPOCH, to ?? new Date(now.getTime() + 60_000), exactUntil, { avail });
}

/** Per-address totals over [from, to), ordered by address, keyset-paged by it. */
export async function addressTotals(
  db: Db,
  scope: Scope,
  range: { from?: Date; to?: Date },
  page: { limit: number; after?: string },
  o: QueryOptions = {},
): Promise<Covered<AddressRow>> {
  const plan = await planFor(db, scope, range.from, range.to, o);
  const segs = plan.segments;
  if (segs.length === 0) return { items: [], from: plan.from, to: plan.to };
  const p = new Params();
  const extra = page.after !== undefined ? [`address > ${p.add(page.after)}::inet`] : [];
  const union = segs.map((s) => segmentSql(s, scope, p, extra)).join("\nUNION ALL\n");
  const rows = await aggregate<SumRow>(
    db,
    `SELECT address::text AS address, ${SUMS} FROM (${union}) x GROUP BY x.address ORDER BY x.address LIMIT ${p.add(page.limit)}`,
    p.values,
  );
  return { items: rows.map(addressRow), from: plan.from, to: plan.to };
}

export type { Direction, TopBy } from "./top.ts";

/**
 * The `limit` addresses with the most traffic (unattributed remainders are not talkers).
 * Fleet-wide it reads the fleet rollups' sorted lists (top.ts), exact by construction;
 * for one host (or with path "scan") it aggregates the range's rows.
 */
export async function topTalkers(
  db: Db,
  scope: Scope,
  range: { from?: Date; to?: Date },
  by: TopBy,
  direction: Direction,
  limit: number,
  o: QueryOptions = {},
): Promise<Covered<AddressRow & { value: Counter }>> {
  const plan = await planFor(db, scope, range.from, range.to, o);
  const segs = plan.segments;
  if (segs.length === 0) return { items: [], from: plan.from, to: plan.to };
  const col = (dir: "src" | "dst") => `sum(${dir}_${by})`;
  const metric = direction === "both" ? `(${col("src")} + ${col("dst")})` : col(direction);
  /**
   * SQL of the top `n` (a placeholder) over the segments, optionally only
   * the addresses in the inet[] SQL expression `only`, fleet rollups where `fleet`.
   */
  const text = (p: Params, parts: Segment[], n: string, opts: { only?: string; fleet?: boolean } = {}) => {
    const extra = [`address <> ${p.add(UNATTRIBUTED)}::inet`];
    if (opts.only) extra.push(`address = ANY(${opts.only})`);
    const from = (s: Segment) =>
      opts.fleet && s.level !== "minute" && s.level !== "raw" ? { table: FLEET[s.level], address: true } : undefined;
    const union = parts.map((s) => segmentSql(s, scope, p, extra, undefined, from(s))).join("\nUNION ALL\n");
    return `SELECT address::text AS address, ${SUMS}, ${metric}::text AS v FROM (${union}) x
       GROUP BY x.address ORDER BY ${metric} DESC, x.address LIMIT ${n}`;
  };
  /** Top `n` over the segments, optionally only some addresses, fleet rollups where `fleet`. */
  const query = (
    tx: Prisma.TransactionClient | Db,
    parts: Segment[],
    n: number,
    opts: { only?: string[]; fleet?: boolean } = {},
  ) => {
    const p = new Params();
    const only = opts.only ? `${p.add(opts.only)}::inet[]` : undefined;
    const sql = text(p, parts, p.add(n), { ...opts, only });
    return tx.$queryRawUnsafe<(SumRow & { v: string })[]>(sql, ...p.values);
  };
  const edge = segs.filter((s) => s.level === "raw");
  const topSql = (tx: Prisma.TransactionClient | Db): TopSql => ({
    exact: (candidates) => query(tx, segs, limit, { only: candidates, fleet: true }),
    edge: edge.length ? (k) => query(tx, edge, k) : null,
    full: () => withoutJit(db, (t) => query(t, segs, limit, { fleet: true })),
    text: {
      edge: edge.length ? (p, k) => text(p, edge, k) : null,
      exact: (p, only) => text(p, segs, p.add(limit), { only, fleet: true }),
    },
    run: (sql, params) => read<Record<string, unknown>>(db, edge, sql, params),
  });
  const args = { table: scope.table, unattributed: UNATTRIBUTED, segments: segs, by, direction, limit };
  let rows: (SumRow & { v: string })[];
  if (scope.hostId || o.path === "scan") rows = await withoutJit(db, (tx) => query(tx, segs, limit));
  else if (o.top?.steps) {
    rows = await withoutJit(db, async (tx) => {
      const { rows, stats } = await fleetTopSteps(tx, { ...args, sql: topSql(tx) }, o.top);
      o.onTopStats?.(stats);
      return rows as (SumRow & { v: string })[];
    });
  } else {
    // One statement per round, without a transaction when its edge is short (read()).
    const { rows: r, stats } = await fleetTop({ ...args, sql: topSql(db) }, o.top);
    o.onTopStats?.(stats);
    rows = r as (SumRow & { v: string })[];
  }
  return { items: rows.map((r) => ({ ...addressRow(r), value: counterJson(r.v) })), from: plan.from, to: plan.to };
}

export type Step = "1m" | "1h" | "1d";
export const STEP_LEVEL = { "1m": "minute", "1h": "hour", "1d": "day" } as const satisfies Record<Step, BucketLevel>;
export const stepMs = (s: Step) => UNIT_MS[STEP_LEVEL[s]];

const TABLE_TOTALS = {
  minute: "accounting_table_minute",
  hour: "accounting_table_hour",
  day: "accounting_table_day",
} as const;

export interface Point extends Totals {
  t: string;
}

/**
 * Buckets of `step` over [from, to) (aligned outward to the step), zeros included. A
 * series is never widened past its step: it starts where the step's level (or a finer
 * one) is still retained, and `from` says where that is.
 */
export async function series(
  db: Db,
  scope: Scope,
  from: Date,
  to: Date,
  step: Step,
  o: QueryOptions = {},
): Promise<Covered<Point>> {
  const unit = stepMs(step);
  const a0 = new Date(floorTo(from.getTime(), unit));
  const b0 = new Date(ceilTo(to.getTime(), unit));
  if (a0 >= b0) return { items: [], from: a0, to: a0 };
  const exactUntil = await rollupHorizon(db, scope.hostId);
  const plan = planSegments(a0, b0, exactUntil, {
    coarsest: STEP_LEVEL[step],
    avail: planOptions(o).avail,
    widen: false,
  });
  const segs = plan.segments;
  const a = plan.from;
  const b = plan.to;
  if (segs.length === 0) return { items: [], from: a, to: b };
  const p = new Params();
  const interval = p.add(`${unit / 1000} seconds`);
  const bin = (col: string) => `date_bin(${interval}::interval, ${col}, TIMESTAMPTZ '1970-01-01 00:00:00+00')`;
  // A whole table's series reads the per-host table totals (one row per host and bucket)
  // instead of every address's row; one address's series reads its own rows by index.
  const useTotals = !scope.address && o.path !== "scan";
  const source = (s: Segment) =>
    useTotals && s.level !== "raw" && s.level !== "month"
      ? { table: TABLE_TOTALS[s.level], address: false }
      : undefined;
  const union = segs.map((s) => segmentSql(s, scope, p, [], bin, source(s))).join("\nUNION ALL\n");
  const sql = `SELECT t, '' AS address, ${SUMS} FROM (${union}) x GROUP BY t ORDER BY t`;
  // Table totals or one address's rows: a short statement (read()); the old path scans.
  const rows =
    o.path === "scan"
      ? await aggregate<SumRow & { t: Date }>(db, sql, p.values)
      : await read<SumRow & { t: Date }>(db, segs, sql, p.values);
  const byT = new Map(rows.map((r) => [r.t.getTime(), r]));
  const out: Point[] = [];
  for (let t = a.getTime(); t < b.getTime(); t += unit) {
    const r = byT.get(t);
    out.push({
      t: new Date(t).toISOString(),
      ...(r ? totals(r) : { srcBytes: 0, srcPackets: 0, dstBytes: 0, dstPackets: 0 }),
    });
  }
  return { items: out, from: a, to: b };
}

export interface TableInfo {
  name: string;
  hosts: number;
  firstAt: string;
  lastAt: string;
}

/** Accounting tables known across the fleet (or on one host), by name, paged. */
export async function listTables(
  db: Db,
  opts: { hostId?: string; after?: string; limit: number },
): Promise<TableInfo[]> {
  const p = new Params();
  const where: string[] = [];
  if (opts.hostId) where.push(`host_id = ${p.add(opts.hostId)}::uuid`);
  if (opts.after !== undefined) where.push(`table_name > ${p.add(opts.after)}`);
  const rows = await db.$queryRawUnsafe<{ name: string; hosts: bigint; first_at: Date; last_at: Date }[]>(
    `SELECT table_name AS name, count(*) AS hosts, min(first_at) AS first_at, max(last_at) AS last_at FROM accounting_tables
     ${where.length ? `WHERE ${where.join(" AND ")}` : ""} GROUP BY table_name ORDER BY table_name LIMIT ${p.add(opts.limit)}`,
    ...p.values,
  );
  return rows.map((r) => ({
    name: r.name,
    hosts: Number(r.hosts),
    firstAt: r.first_at.toISOString(),
    lastAt: r.last_at.toISOString(),
  }));
}

export async function tableExists(db: Db, table: string, hostId?: string): Promise<boolean> {
  const rows = hostId
    ? await db.$queryRawUnsafe<unknown[]>(
        `SELECT 1 FROM accounting_tables WHERE table_name = $1 AND host_id = $2::uuid LIMIT 1`,
        table,
        hostId,
      )
    : await db.$queryRawUnsafe<unknown[]>(`SELECT 1 FROM accounting_tables WHERE table_name = $1 LIMIT 1`, table);
  return rows.length > 0;
}
