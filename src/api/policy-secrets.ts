// Secrets inside stored policy documents: protections.spaKnock[].openSecret/closeSecret
// open a port to whoever can compute the HMAC. A viewer may read policies but not change
// what the firewall lets in, so answers to a caller below operator carry a fixed marker
// instead (never the secret, never a hash of it: a short secret could be guessed from a
// hash). Operators and admins see them: they can push a policy with any secret anyway.
import { roleAllows } from "./auth.ts";
import type { Role } from "./auth.ts";

export const REDACTED = "<redacted>";

const SECRET_KEYS = new Set(["openSecret", "closeSecret"]);

/** Whether the caller's answers may carry policy secrets. */
export const seesPolicySecrets = (role: Role): boolean => roleAllows(role, "operate");

const unesc = (s: string) => s.replace(/~1/g, "/").replace(/~0/g, "~");

/** Is this path (segments from the document root) a spaKnock secret? */
function isSecretPath(p: readonly string[]): boolean {
  return p.length === 4 && p[0] === "protections" && p[1] === "spaKnock" && SECRET_KEYS.has(p[3]!);
}

/**
 * `value` with every spaKnock secret replaced by REDACTED; `at` is the JSON pointer of
 * `value` inside the document ("" for the whole document). Copies, never mutates.
 */
export function redactPolicySecrets(value: unknown, at = ""): unknown {
  const start = at === "" ? [] : at.slice(1).split("/").map(unesc);
  const walk = (v: unknown, p: string[]): unknown => {
    if (isSecretPath(p)) return v === undefined ? v : REDACTED;
    if (p.length >= 4 || (p.length >= 1 && p[0] !== "protections") || (p.length >= 2 && p[1] !== "spaKnock")) return v;
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...p, String(i)]));
    if (typeof v === "object" && v !== null)
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...p, k])]));
    return v;
  };
  return walk(value, start);
}

type Change = { op: string; path: string; from?: unknown; to?: unknown };

/** A structured diff (diff.ts) with the secrets in its values redacted. */
export function redactDiffSecrets<C extends Change>(changes: C[]): C[] {
  return changes.map((c) => {
    const out = { ...c };
    if ("from" in c) out.from = redactPolicySecrets(c.from, c.path);
    if ("to" in c) out.to = redactPolicySecrets(c.to, c.path);
    return out;
  });
}
