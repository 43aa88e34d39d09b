// Flag values shared by several verbs.
import { usageError } from "./errors.ts";

/** A whole number >= 1 (limits, counts). */
export function parseCount(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw usageError(`${flag} wants a whole number of 1 or more, got "${value}"`);
  return Number(value);
}

/** `k=v` pairs, repeated or comma-separated; undefined when none. */
export function parseLabels(pairs: string[] = [], flag = "--labels"): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const p of pairs.flatMap((s) => s.split(",")).filter(Boolean)) {
    const i = p.indexOf("=");
    if (i <= 0) throw usageError(`${flag} wants k=v pairs, got "${p}"`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return Object.keys(out).length ? out : undefined;
}
