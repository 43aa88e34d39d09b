// Small statistics and formatting helpers for the benches. Figures only: nothing here
// decides pass/fail on time.
import { cpus, loadavg } from "node:os";
import { availableParallelism } from "node:os";

export function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank percentile (p in 0..100) of a non-empty list; NaN for an empty one. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

/** Median (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const p50 = (xs: readonly number[]): number => percentile(xs, 50);
export const p95 = (xs: readonly number[]): number => percentile(xs, 95);

export function min(xs: readonly number[]): number {
  return xs.length ? Math.min(...xs) : NaN;
}
export function max(xs: readonly number[]): number {
  return xs.length ? Math.max(...xs) : NaN;
}

/** "1.23x" */
export function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "n/a";
  return `${(a / b).toFixed(2)}x`;
}

/** "97.1 %" */
export function percent(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "n/a";
  return `${((100 * a) / b).toFixed(1)} %`;
}

/** Milliseconds as "12 ms" / "1.234 s". */
export function ms(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  return x >= 1000 ? `${(x / 1000).toFixed(3)} s` : `${x.toFixed(x < 10 ? 1 : 0)} ms`;
}

/** 1234567 -> "1,234,567". */
export function int(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a";
}

/** A plain text table: first row is the header; columns padded, numbers right-aligned. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const sep = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join("\n");
}

/** nproc, CPU model and load average, captured once at the start of a bench. */
export function machine(): string {
  const [l1, l5, l15] = loadavg();
  const model = cpus()[0]?.model?.trim() ?? "unknown CPU";
  return `nproc ${availableParallelism()} (${model}); load average at start ${l1!.toFixed(2)} ${l5!.toFixed(2)} ${l15!.toFixed(2)}; node ${process.version}`;
}

export const NOISE_NOTE =
  "The machine is shared (other engineers run tests on it): figures are noisy; compare ratios taken in the same run, not absolute times across runs.";
