// How long each kind of telemetry is kept, in days (calendar months for the month
// rollup). Defaults suit a fleet that queries minutes for the last days, hours for the
// last month, days for more than a year and months beyond; each can be set by
// environment (PALISADE_RETENTION_RAW_DAYS, ..._MINUTE_, ..._HOUR_, ..._DAY_, ..._LOG_,
// ..._LEDGER_DAYS, PALISADE_RETENTION_MONTH_MONTHS). Raw must outlive the ingest's late-sample clamp
// (ingest.ts MAX_LATE_MS, 2 days) so a late batch always lands in a retained partition,
// and each rollup level must outlive the finer one it is recomputed from.
import { z } from "zod";

export interface Retention {
  rawDays: number;
  minuteDays: number;
  hourDays: number;
  dayDays: number;
  /** Calendar months of accounting_month (must outlive accounting_day). */
  monthMonths: number;
  logDays: number;
  /** The exactly-once ledger: a batch re-sent after this long would be counted again. */
  ledgerDays: number;
}

export const DEFAULT_RETENTION: Retention = {
  rawDays: 3,
  minuteDays: 14,
  hourDays: 35,
  dayDays: 800,
  monthMonths: 36,
  logDays: 30,
  ledgerDays: 30,
};

const days = z.coerce.number().int().min(1).max(36500).optional();
const Env = z.object({
  PALISADE_RETENTION_RAW_DAYS: days,
  PALISADE_RETENTION_MINUTE_DAYS: days,
  PALISADE_RETENTION_HOUR_DAYS: days,
  PALISADE_RETENTION_DAY_DAYS: days,
  PALISADE_RETENTION_LOG_DAYS: days,
  PALISADE_RETENTION_MONTH_MONTHS: z.coerce.number().int().min(1).max(1200).optional(),
  PALISADE_RETENTION_LEDGER_DAYS: days,
});

export function retentionFromEnv(env: NodeJS.ProcessEnv = process.env): Retention {
  const e = Env.parse(
    Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith("PALISADE_RETENTION_") && v)),
  );
  const r: Retention = {
    rawDays: e.PALISADE_RETENTION_RAW_DAYS ?? DEFAULT_RETENTION.rawDays,
    minuteDays: e.PALISADE_RETENTION_MINUTE_DAYS ?? DEFAULT_RETENTION.minuteDays,
    hourDays: e.PALISADE_RETENTION_HOUR_DAYS ?? DEFAULT_RETENTION.hourDays,
    dayDays: e.PALISADE_RETENTION_DAY_DAYS ?? DEFAULT_RETENTION.dayDays,
    monthMonths: e.PALISADE_RETENTION_MONTH_MONTHS ?? DEFAULT_RETENTION.monthMonths,
    logDays: e.PALISADE_RETENTION_LOG_DAYS ?? DEFAULT_RETENTION.logDays,
    ledgerDays: e.PALISADE_RETENTION_LEDGER_DAYS ?? DEFAULT_RETENTION.ledgerDays,
  };
  if (!(r.rawDays >= 3 && r.minuteDays >= r.rawDays && r.hourDays >= r.minuteDays && r.dayDays >= r.hourDays)) {
    throw new Error("telemetry retention must satisfy 3 <= raw <= minute <= hour <= day (days)");
  }
  // The month horizon must never be later than the day horizon: 28 * months - 31 >= days.
  if (!(r.monthMonths * 28 - 31 >= r.dayDays)) {
    throw new Error(
      `telemetry retention: ${r.monthMonths} months of accounting_month do not outlive ${r.dayDays} days of accounting_day (need months >= ${Math.ceil((r.dayDays + 31) / 28)})`,
    );
  }
  return r;
}

export const DAY_MS = 24 * 3600_000;

/** Start of the UTC day `days` before now's day: data before it is expired. */
export function horizon(now: Date, days: number): Date {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  return new Date(d.getTime() - days * DAY_MS);
}

/** First day of the UTC month `months` before now's month: month rows before it are expired. */
export function monthHorizon(now: Date, months: number): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - months, 1));
}

/** Where each level of accounting data still starts (plan.ts Availability). */
export function availability(now: Date, r: Retention): { month: Date; day: Date; hour: Date; minute: Date; raw: Date } {
  return {
    month: monthHorizon(now, r.monthMonths),
    day: horizon(now, r.dayDays),
    hour: horizon(now, r.hourDays),
    minute: horizon(now, r.minuteDays),
    raw: horizon(now, r.rawDays),
  };
}
