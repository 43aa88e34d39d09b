// Read side of the accounting data: tables, per-address totals, top talkers, series.
// Every query is planned over the resolutions (plan.ts): rollups where they are exact,
// raw samples elsewhere, so totals equal the sum of the ingested deltas whatever the
// range. Counters leave Postgres as text (sums are numeric) and become JSON numbers or
// strings in u64.ts's counterJson.
import type { Db } from "../db/client.ts";
import { UNATTRIBUTED } from "./batch.ts";
import { planSegments, SOURCE, UNIT_MS, floorTo, ceilTo, type Segment } from "./plan.ts";
import { rollupHorizon } from "./rollups.ts";
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

class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

function segmentSql(seg: Segment, scope: Scope, p: Params, extra: string[] = [], timeExpr?: (col: string) => string): string {
  const src = SOURCE[seg.level];
  const where = [`table_name = ${p.add(scope.table)}`, `${src.time} >= ${p.add(seg.from)}::timestamptz`, `${src.time} < ${p.add(seg.to)}::timestamptz`, ...extra];
  if (scope.hostId) where.push(`host_id = ${p.add(scope.hostId)}::uuid`);
  if (scope.address) where.push(`address = ${p.add(scope.address)}::inet`);
  const t = timeExpr ? `, ${timeExpr(src.time)} AS t` : "";
  return `SELECT address${t}, src_bytes, src_packets, dst_bytes, dst_packets FROM ${src.table} WHERE ${where.join(" AND ")}`;
}

const SUMS = `sum(src_bytes)::text AS sb, sum(src_packets)::text AS sp, sum(dst_bytes)::text AS db, sum(dst_packets)::text AS dp`;
const totals = (r: SumRow): Totals => ({ srcBytes: counterJson(r.sb), srcPackets: counterJson(r.sp), dstBytes: counterJson(r.db), dstPackets: counterJson(r.dp) });
const addressRow = (r: SumRow): AddressRow => {
  const un = r.address === UNATTRIBUTED;
  return { ip: un ? "" : r.address.replace(/\/(32|128)$/, ""), unattributed: un, ...totals(r) };
};

async function segmentsFor(db: Db, scope: Scope, from: Date | undefined, to: Date | undefined, coarsest?: "day" | "hour" | "minute"): Promise<Segment[]> {
  const exactUntil = await rollupHorizon(db, scope.hostId);
  return planSegments(from ?? EPOCH, to ?? new Date(Date.now() + 60_000), exactUntil, coarsest);
}

/** Per-address totals over [from, to), ordered by address, keyset-paged by it. */
export async function addressTotals(db: Db, scope: Scope, range: { from?: Date; to?: Date }, page: { limit: number; after?: string }): Promise<AddressRow[]> {
  const segs = await segmentsFor(db, scope, range.from, range.to);
  if (segs.length === 0) return [];
  const p = new Params();
  const extra = page.after !== undefined ? [`address > ${p.add(page.after)}::inet`] : [];
  const union = segs.map((s) => segmentSql(s, scope, p, extra)).join("\nUNION ALL\n");
  const rows = await db.$queryRawUnsafe<SumRow[]>(
    `SELECT address::text AS address, ${SUMS} FROM (${union}) x GROUP BY x.address ORDER BY x.address LIMIT ${p.add(page.limit)}`,
    ...p.values,
  );
  return rows.map(addressRow);
}

export type TopBy = "bytes" | "packets";
export type Direction = "src" | "dst" | "both";

/** The `limit` addresses with the most traffic (unattributed remainders are not talkers). */
export async function topTalkers(db: Db, scope: Scope, range: { from?: Date; to?: Date }, by: TopBy, direction: Direction, limit: number): Promise<(AddressRow & { value: Counter })[]> {
  const segs = await segmentsFor(db, scope, range.from, range.to);
  if (segs.length === 0) return [];
  const p = new Params();
  const extra = [`address <> ${p.add(UNATTRIBUTED)}::inet`];
  const union = segs.map((s) => segmentSql(s, scope, p, extra)).join("\nUNION ALL\n");
  const col = (dir: "src" | "dst") => `sum(${dir}_${by})`;
  const metric = direction === "both" ? `(${col("src")} + ${col("dst")})` : col(direction);
  const rows = await db.$queryRawUnsafe<(SumRow & { v: string })[]>(
    `SELECT address::text AS address, ${SUMS}, ${metric}::text AS v FROM (${union}) x
     GROUP BY x.address ORDER BY ${metric} DESC, x.address LIMIT ${p.add(limit)}`,
    ...p.values,
  );
  return rows.map((r) => ({ ...addressRow(r), value: counterJson(r.v) }));
}

export type Step = "1m" | "1h" | "1d";
export const STEP_LEVEL = { "1m": "minute", "1h": "hour", "1d": "day" } as const;
export const stepMs = (s: Step) => UNIT_MS[STEP_LEVEL[s]];

export interface Point extends Totals {
  t: string;
}

/** Buckets of `step` over [from, to) (aligned outward to the step), zeros included. */
export async function series(db: Db, scope: Scope, from: Date, to: Date, step: Step): Promise<Point[]> {
  const unit = stepMs(step);
  const a = new Date(floorTo(from.getTime(), unit));
  const b = new Date(ceilTo(to.getTime(), unit));
  if (a >= b) return [];
  const exactUntil = await rollupHorizon(db, scope.hostId);
  const segs = planSegments(a, b, exactUntil, STEP_LEVEL[step]);
  const p = new Params();
  const interval = p.add(`${unit / 1000} seconds`);
  const bin = (col: string) => `date_bin(${interval}::interval, ${col}, TIMESTAMPTZ '1970-01-01 00:00:00+00')`;
  const union = segs.map((s) => segmentSql(s, scope, p, [], bin)).join("\nUNION ALL\n");
  const rows = await db.$queryRawUnsafe<(SumRow & { t: Date })[]>(`SELECT t, '' AS address, ${SUMS} FROM (${union}) x GROUP BY t ORDER BY t`, ...p.values);
  const byT = new Map(rows.map((r) => [r.t.getTime(), r]));
  const out: Point[] = [];
  for (let t = a.getTime(); t < b.getTime(); t += unit) {
    const r = byT.get(t);
    out.push({ t: new Date(t).toISOString(), ...(r ? totals(r) : { srcBytes: 0, srcPackets: 0, dstBytes: 0, dstPackets: 0 }) });
  }
  return out;
}

export interface TableInfo {
  name: string;
  hosts: number;
  firstAt: string;
  lastAt: string;
}

/** Accounting tables known across the fleet (or on one host), by name, paged. */
export async function listTables(db: Db, opts: { hostId?: string; after?: string; limit: number }): Promise<TableInfo[]> {
  const p = new Params();
  const where: string[] = [];
  if (opts.hostId) where.push(`host_id = ${p.add(opts.hostId)}::uuid`);
  if (opts.after !== undefined) where.push(`table_name > ${p.add(opts.after)}`);
  const rows = await db.$queryRawUnsafe<{ name: string; hosts: bigint; first_at: Date; last_at: Date }[]>(
    `SELECT table_name AS name, count(*) AS hosts, min(first_at) AS first_at, max(last_at) AS last_at FROM accounting_tables
     ${where.length ? `WHERE ${where.join(" AND ")}` : ""} GROUP BY table_name ORDER BY table_name LIMIT ${p.add(opts.limit)}`,
    ...p.values,
  );
  return rows.map((r) => ({ name: r.name, hosts: Number(r.hosts), firstAt: r.first_at.toISOString(), lastAt: r.last_at.toISOString() }));
}

export async function tableExists(db: Db, table: string, hostId?: string): Promise<boolean> {
  const rows = hostId
    ? await db.$queryRawUnsafe<unknown[]>(`SELECT 1 FROM accounting_tables WHERE table_name = $1 AND host_id = $2::uuid LIMIT 1`, table, hostId)
    : await db.$queryRawUnsafe<unknown[]>(`SELECT 1 FROM accounting_tables WHERE table_name = $1 LIMIT 1`, table);
  return rows.length > 0;
}
