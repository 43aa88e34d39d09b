// 64-bit counters. The kernel's are unsigned 64-bit; Postgres stores signed bigint, so
// the API accepts 0..2^63-1 (9.2 EB: no real delta or total gets near it). In JSON a
// counter is a number when it is at most 2^53 (every JSON parser reads it exactly) and
// a decimal string above that, so no client silently rounds a large total.
import { z } from "zod";

export const MAX_U63 = (1n << 63n) - 1n;
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER) + 1n; // 2^53

/** A counter in a response: number up to 2^53, decimal string above. */
export const Counter = z
  .union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)])
  .describe("64-bit counter: a JSON number up to 2^53, a decimal string above");
export type Counter = z.infer<typeof Counter>;

export function counterJson(v: bigint | string | number | null | undefined): Counter {
  const b = typeof v === "bigint" ? v : BigInt(v ?? 0);
  return b <= MAX_EXACT ? Number(b) : b.toString();
}

/**
 * Reads a uint64 the way proto-loader may hand it over (number, decimal string, bigint,
 * or a Long object with toString()). Undefined on anything else or out of range.
 */
export function toU63(v: unknown): bigint | undefined {
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) return undefined;
    b = BigInt(v);
  } else if (typeof v === "string") {
    if (!/^\d{1,20}$/.test(v)) return undefined;
    b = BigInt(v);
  } else if (v !== null && typeof v === "object" && "low" in v && "high" in v) {
    const s = String(v);
    if (!/^\d{1,20}$/.test(s)) return undefined;
    b = BigInt(s);
  } else return undefined;
  return b >= 0n && b <= MAX_U63 ? b : undefined;
}

/** Zod: a uint64 in any of proto-loader's shapes, as a bigint in 0..2^63-1. */
export const U63 = z.unknown().transform((v, ctx) => {
  const b = toU63(v ?? 0);
  if (b === undefined) {
    ctx.addIssue({ code: "custom", message: "expected an unsigned integer below 2^63" });
    return z.NEVER;
  }
  return b;
});
