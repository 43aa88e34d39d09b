// Content address of a policy: the same policy always gives the same checksum, whatever
// key order the client used. The API stores it with each version; agents compare it.
import type { Policy } from "./policy/index.ts";

/** JSON with object keys sorted recursively; arrays keep their order (rule order matters). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return "[" + value.map((v) => canonicalJson(v === undefined ? null : v)).join(",") + "]";
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return "{" + entries.map(([k, v]) => JSON.stringify(k) + ":" + canonicalJson(v)).join(",") + "}";
}

/** sha256 (hex) of the canonical JSON of a validated policy. */
export function policyChecksum(policy: Policy): string {
  return sha256Hex(canonicalJson(policy));
}

/**
 * sha256 (hex) of `text`. node:crypto is loaded on the first call, not with the engine: a
 * one-shot `palisade render` that hashes nothing would spend ~2 ms loading it.
 */
export function sha256Hex(text: string): string {
  return process.getBuiltinModule("node:crypto").createHash("sha256").update(text).digest("hex");
}
