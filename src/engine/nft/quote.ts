// Everything user-controlled that lands in nft text goes through here.
//
// nft's lexer reads a quoted string as `"[^"]*"`: there is NO escape for `"` inside
// it, so a `"` in a comment would end the token and let the rest of the text become
// statements. Measured on nft 1.0.6: inside quotes `;`, `#`, `{`, `\` and newlines
// are literal, but `$name` inside a *log prefix* is expanded as a variable. So:
// `"` and `\` are replaced, control characters become spaces, and `$` is replaced
// in log prefixes. Lengths are limits of the kernel/nft (measured), and are refused
// rather than truncated: a cut log prefix would change what operators grep for.

import { NftModelError } from "./errors.ts";

/** NFT_USERDATA comment limit, in bytes (nft: "comment too long, 128 characters maximum"). */
export const COMMENT_MAX_BYTES = 128;
/** NF_LOG_PREFIXLEN is 128 including the NUL: 127 bytes measured to load, 128 refused. */
export const LOG_PREFIX_MAX_BYTES = 127;
/** IFNAMSIZ is 16 including the NUL. */
export const IFNAME_MAX_BYTES = 15;

export type TextKind = "comment" | "log prefix";

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * The deterministic, lossy rewrite applied to free text so it can sit inside one
 * nft quoted token: `"` -> `'`, `\` -> `/`, control characters -> space, and for log
 * prefixes `$` -> `_`. Exported so a validator can warn when text will change.
 */
export function sanitizeText(text: string, kind: TextKind): string {
  let out = text.replace(CONTROL, " ").replace(/"/g, "'").replace(/\\/g, "/");
  if (kind === "log prefix") out = out.replace(/\$/g, "_");
  return out;
}

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

function maxBytes(kind: TextKind): number {
  return kind === "comment" ? COMMENT_MAX_BYTES : LOG_PREFIX_MAX_BYTES;
}

/** Problems that make quoteText throw; empty when the text renders (maybe sanitized). */
export function textProblems(text: string, kind: TextKind): string[] {
  const problems: string[] = [];
  const clean = sanitizeText(text, kind);
  if (clean.length === 0) problems.push(`${kind} is empty`);
  const n = utf8Bytes(clean);
  if (n > maxBytes(kind)) problems.push(`${kind} is ${n} bytes; nft allows at most ${maxBytes(kind)}`);
  return problems;
}

/** Render free text as one nft quoted token, or throw if it is empty or too long. */
export function quoteText(text: string, kind: TextKind): string {
  if (typeof text !== "string") throw new NftModelError("invalid_string", `${kind} must be a string`);
  const clean = sanitizeText(text, kind);
  if (clean.length === 0) throw new NftModelError("invalid_string", `${kind} is empty; omit it instead`);
  const n = utf8Bytes(clean);
  if (n > maxBytes(kind)) {
    throw new NftModelError(
      "string_too_long",
      `${kind} ${JSON.stringify(text.slice(0, 40))}... is ${n} bytes; nft allows at most ${maxBytes(kind)}`,
    );
  }
  return `"${clean}"`;
}

export const comment = (text: string): string => quoteText(text, "comment");
export const logPrefix = (text: string): string => quoteText(text, "log prefix");

// Linux refuses '/', ':' and whitespace in interface names; we also refuse quotes,
// '*' (nft's wildcard) and anything else that is not a plain name character.
const IFNAME_RE = /^[A-Za-z0-9_.@+-]+$/;

export function ifnameProblem(name: string): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "interface name is empty";
  if (utf8Bytes(name) > IFNAME_MAX_BYTES)
    return `interface name ${JSON.stringify(name)} is longer than ${IFNAME_MAX_BYTES} bytes (IFNAMSIZ)`;
  if (name === "." || name === "..") return `interface name ${JSON.stringify(name)} is not allowed by Linux`;
  if (!IFNAME_RE.test(name))
    return `interface name ${JSON.stringify(name)} may only contain letters, digits and _ . @ + -`;
  return undefined;
}

/**
 * Quote an interface name for iifname/oifname. With `wildcard`, a trailing `*` is
 * appended (nft matches every name with that prefix, e.g. "veth*").
 */
export function ifname(name: string, opts: { wildcard?: boolean } = {}): string {
  const problem = ifnameProblem(name);
  if (problem) throw new NftModelError("invalid_ifname", problem);
  if (opts.wildcard && utf8Bytes(name) >= IFNAME_MAX_BYTES) {
    throw new NftModelError("invalid_ifname", `interface prefix ${JSON.stringify(name)} leaves no room for a wildcard`);
  }
  return `"${name}${opts.wildcard ? "*" : ""}"`;
}

/** A non-negative safe integer (or bigint) as decimal text. */
export function uint(n: number | bigint, what = "number"): string {
  if (typeof n === "bigint") {
    if (n < 0n) throw new NftModelError("invalid_number", `${what} must not be negative`);
    return n.toString(10);
  }
  if (!Number.isSafeInteger(n) || n < 0)
    throw new NftModelError("invalid_number", `${what} must be a non-negative integer, got ${String(n)}`);
  return String(n);
}

/** Whole seconds as an nft duration ("90s"); nft reads it back as "1m30s". */
export function seconds(n: number, what = "timeout"): string {
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new NftModelError("invalid_number", `${what} must be a positive whole number of seconds, got ${String(n)}`);
  return `${n}s`;
}
