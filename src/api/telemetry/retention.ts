// How long each kind of telemetry is kept, in days. Defaults suit a fleet that queries
// minutes for the last days, hours for the last month and days for more than a year;
// each can be set by environment (PALISADE_RETENTION_RAW_DAYS, ..._MINUTE_, ..._HOUR_,
// ..._DAY_, ..._LOG_, ..._LEDGER_DAYS). Raw must outlive the ingest's late-sample clamp
// (ingest.ts MAX_LATE_MS, 2 days) so a late batch always lands in a retained partition,
// and each rollup level must outlive the finer one it is recomputed from.
import { z } from "zod";

export interface Retention {
  rawDays: number;
  minuteDays: number;
  hourDays: number;
  dayDays: number;
  logDays: number;
  /** The exactly-once ledger: a batch re-sent after this long would be counted again. */
  ledgerDays: number;
}

export const DEFAULT_RETENTION: Retention = { rawDays: 3, minuteDays: 14, hourDays: 35, dayDays: 800, logDays: 30, ledgerDays: 30 };

const days = z.coerce.number().int().min(1).max(36500).optional();
const Env = z.object({
  PALISADE_RETENTION_RAW_DAYS: days,
  PALISADE_RETENTION_MINUTE_DAYS: days,
  PALISADE_RETENTION_HOUR_DAYS: days,
  PALISADE_RETENTION_DAY_DAYS: days,
  PALISADE_RETENTION_LOG_DAYS: days,
  PALISADE_RETENTION_LEDGER_DAYS: days,
});

export function retentionFromEnv(env: NodeJS.ProcessEnv = process.env): Retention {
  const e = Env.parse(Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith("PALISADE_RETENTION_") && v)));
  const r: Retention = {
    rawDays: e.PALISADE_RETENTION_RAW_DAYS ?? DEFAULT_RETENTION.rawDays,
    minuteDays: e.PALISADE_RETENTION_MINUTE_DAYS ?? DEFAULT_RETENTION.minuteDays,
    hourDays: e.PALISADE_RETENTION_HOUR_DAYS ?? DEFAULT_RETENTION.hourDays,
    dayDays: e.PALISADE_RETENTION_DAY_DAYS ?? DEFAULT_RETENTION.dayDays,
    logDays: e.PALISADE_RETENTION_LOG_DAYS ?? DEFAULT_RETENTION.logDays,
    ledgerDays: e.PALISADE_RETENTION_LEDGER_DAYS ?? DEFAULT_RETENTION.ledgerDays,
  };
  if (!(r.rawDays >= 3 && r.minuteDays >= r.rawDays && r.hourDays >= r.minuteDays && r.dayDays >= r.hourDays)) {
    throw new Error("telemetry retention must satisfy 3 <= raw <= minute <= hour <= day (days)");
  }
  return r;
}

export const DAY_MS = 24 * 3600_000;

/** Start of the UTC day `days` before now's day: data before it is expired. */
export function horizon(now: Date, days: number): Date {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  return new Date(d.getTime() - days * DAY_MS);
}
