// Times on the command line and in tables: `--since 1h`, `--from 2d` or RFC 3339 in;
// "3m ago" / "in 23h" out (json and yaml keep the API's ISO strings).
import { usageError } from "./errors.ts";

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** A flag's time as ISO: a duration ("90s", "15m", "1h", "2d", "1w") counts back from now. */
export function parseWhen(value: string | undefined, flag: string, now = Date.now()): string | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([smhdw])$/.exec(value.trim());
  if (m) return new Date(now - Number(m[1]) * UNIT_S[m[2]!]! * 1000).toISOString();
  // Only full RFC 3339 (with a zone): Date.parse reads many local-time forms silently.
  if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/i.test(value)) {
    const d = new Date(value);
    if (!Number.isNaN(d.getTime())) return d.toISOString();
  }
  throw usageError(
    `${flag}: "${value}" is not a time`,
    `give a duration back from now (30s, 15m, 1h, 2d, 1w) or an RFC 3339 time (2026-12-03T08:00:00Z)`,
  );
}

/** A duration flag in seconds: "90s", "15m", "1h", "2d", "1w", or plain seconds. */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+)([smhdw]?)$/.exec(value.trim());
  if (!m) throw usageError(`${flag}: "${value}" is not a duration`, "e.g. 90s, 15m, 1h, 2d, 1w");
  return Number(m[1]) * (m[2] ? UNIT_S[m[2]]! : 1);
}

/** "3m ago", "in 23h", "-" for none. */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  const a = Math.abs(s);
  const span =
    a < 60
      ? `${a}s`
      : a < 3600
        ? `${Math.floor(a / 60)}m`
        : a < 86_400
          ? `${Math.floor(a / 3600)}h`
          : `${Math.floor(a / 86_400)}d`;
  if (a < 1) return "now";
  return s >= 0 ? `${span} ago` : `in ${span}`;
}
