// Daily range partitions of the time-partitioned telemetry tables: created ahead of
// time, dropped whole when they leave the retention window (DROP TABLE, not DELETE).
// Each table also has a DEFAULT partition (init/telemetry migrations) so an insert for
// a day without its partition never fails; creating that day's partition later moves
// such rows into it. Names: <table>_pYYYYMMDD, covering [day 00:00 UTC, next day).
// Tables that are not partitioned (hour/day/month rollups, the fleet and table-total
// rollups, the ledger) are trimmed by DELETE.
import type { Db } from "../db/client.ts";
import { DAY_MS, horizon, monthHorizon, type Retention } from "./retention.ts";

/** Partitioned table -> its time column. */
export const PARTITIONED = { accounting_samples: "at", log_events: "at", accounting_minute: "bucket" } as const;
export type PartitionedTable = keyof typeof PARTITIONED;

const LOCK_KEY = 0x70616c70; // "palp": one partition maintainer at a time across replicas
const SUFFIX = /_p(\d{4})(\d{2})(\d{2})$/;

const dayStart = (t: Date) => new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
const suffixOf = (d: Date) => `p${d.toISOString().slice(0, 10).replaceAll("-", "")}`;
const q = (ident: string) => `"${ident.replaceAll('"', '""')}"`;

/** Creates the daily partitions of [today - back, today + ahead] that are missing; returns their names. */
export async function ensurePartitions(
  db: Db,
  now = new Date(),
  opts: { aheadDays?: number; backDays?: number; tables?: PartitionedTable[] } = {},
): Promise<string[]> {
  const created: string[] = [];
  const today = dayStart(now);
  for (const table of opts.tables ?? (Object.keys(PARTITIONED) as PartitionedTable[])) {
    const col = PARTITIONED[table];
    for (let i = -(opts.backDays ?? 1); i <= (opts.aheadDays ?? 3); i++) {
      const from = new Date(today.getTime() + i * DAY_MS);
      const to = new Date(from.getTime() + DAY_MS);
      const part = `${table}_${suffixOf(from)}`;
      const made = await db.$transaction(async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
        const [exists] = await tx.$queryRawUnsafe<{ r: string | null }[]>(`SELECT to_regclass($1)::text AS r`, q(part));
        if (exists?.r) return false;
        await tx.$executeRawUnsafe(`CREATE TABLE ${q(part)} (LIKE ${q(table)} INCLUDING DEFAULTS)`);
        // Rows the DEFAULT partition caught for this day move into the new partition first:
        // ATTACH refuses while the default still holds rows of the range.
        await tx.$executeRawUnsafe(
          `WITH moved AS (DELETE FROM ${q(`${table}_default`)} WHERE ${q(col)} >= $1 AND ${q(col)} < $2 RETURNING *) INSERT INTO ${q(part)} SELECT * FROM moved`,
          from,
          to,
        );
        await tx.$executeRawUnsafe(
          `ALTER TABLE ${q(table)} ATTACH PARTITION ${q(part)} FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`,
        );
        return true;
      });
      if (made) created.push(part);
    }
  }
  return created;
}

export interface RetentionResult {
  dropped: string[];
  deleted: Record<string, number>;
}

/** Drops expired daily partitions, trims DEFAULT partitions and the unpartitioned tables. */
export async function applyRetention(db: Db, retention: Retention, now = new Date()): Promise<RetentionResult> {
  const keep: Record<PartitionedTable, Date> = {
    accounting_samples: horizon(now, retention.rawDays),
    log_events: horizon(now, retention.logDays),
    accounting_minute: horizon(now, retention.minuteDays),
  };
  const out: RetentionResult = { dropped: [], deleted: {} };
  for (const table of Object.keys(PARTITIONED) as PartitionedTable[]) {
    const parts = await db.$queryRawUnsafe<{ name: string }[]>(
      `SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
      q(table),
    );
    for (const { name } of parts) {
      const m = SUFFIX.exec(name);
      if (!m || !name.startsWith(`${table}_p`)) continue;
      const end = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) + DAY_MS;
      if (end <= keep[table].getTime()) {
        await db.$executeRawUnsafe(`DROP TABLE IF EXISTS ${q(name)}`);
        out.dropped.push(name);
      }
    }
    out.deleted[`${table}_default`] = await db.$executeRawUnsafe(
      `DELETE FROM ${q(`${table}_default`)} WHERE ${q(PARTITIONED[table])} < $1`,
      keep[table],
    );
  }
  // The derived tables (rollups.ts) keep the horizon of the level they are derived with,
  // so a query reads the same buckets from them as from the per-host rows.
  const hour = horizon(now, retention.hourDays);
  const day = horizon(now, retention.dayDays);
  const month = monthHorizon(now, retention.monthMonths);
  const ledger = horizon(now, retention.ledgerDays);
  const trimmed: Array<[table: string, column: string, before: Date]> = [
    ["accounting_hour", "bucket", hour],
    ["accounting_day", "bucket", day],
    ["accounting_month", "bucket", month],
    ["accounting_table_minute", "bucket", keep.accounting_minute],
    ["accounting_table_hour", "bucket", hour],
    ["accounting_fleet_hour", "bucket", hour],
    ["accounting_table_day", "bucket", day],
    ["accounting_fleet_day", "bucket", day],
    ["accounting_fleet_month", "bucket", month],
    ["telemetry_batches", "received_at", ledger],
    ["quota_reset_requests", "requested_at", ledger],
  ];
  for (const [table, column, before] of trimmed)
    out.deleted[table] = await db.$executeRawUnsafe(`DELETE FROM ${q(table)} WHERE ${q(column)} < $1`, before);
  return out;
}
