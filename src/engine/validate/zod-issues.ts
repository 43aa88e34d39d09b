// Zod issues -> Diagnostics: JSON-pointer paths, one stable code per kind of problem,
// and messages that name the field and what is allowed, not zod's internals.
import type { z } from "zod";
import { error, type Diagnostic } from "../diagnostics.ts";
import { NAME_RE } from "../policy/index.ts";

type Issue = z.core.$ZodIssue;
type Key = PropertyKey;

/** Codes for the schema's own refinements, keyed by their (fixed) message. */
const CUSTOM_CODES: ReadonlyArray<[RegExp, string]> = [
  [/^must be an IPv4 or IPv6 address$/, "invalid_address"],
  [/^must be an IPv4\/IPv6 address or prefix/, "invalid_address"],
  [/^must be an address, a CIDR prefix or '@setname'$/, "invalid_address"],
  [/^must not contain a double quote/, "unsafe_text"],
  [/^range must be low-high/, "invalid_range"],
  [/^every flag in compare must also be in mask$/, "tcp_flags_compare_not_in_mask"],
  [/^mark 0 means unmarked/, "mark_zero"],
  [/^a quota needs a limit/, "quota_limit_required"],
  [/^ACCOUNT aggregate/, "account_aggregate_invalid"],
  [/^ACCOUNT prefixes must be \/8/, "account_prefix_too_short"],
  [/^a \/0 ACCOUNT prefix/, "account_prefix_zero_form"],
];

export function translateZodIssues(issues: readonly Issue[], input: unknown): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const issue of issues) translate(issue, [], input, out);
  return dedupe(out);
}

function translate(issue: Issue, base: Key[], input: unknown, out: Diagnostic[]): void {
  const path = [...base, ...issue.path];
  const at = (p: Key[]) => p.map((k) => (typeof k === "symbol" ? String(k) : k));
  switch (issue.code) {
    case "unrecognized_keys":
      for (const key of issue.keys) {
        out.push(
          error(
            at([...path, key]),
            "unknown_field",
            `unknown field ${JSON.stringify(key)}${where(path)}; check its spelling against the policy schema`,
          ),
        );
      }
      return;
    case "invalid_type": {
      const value = valueAt(input, path);
      if (value === undefined) {
        out.push(error(at(path), "missing_field", `${fieldName(path)} is required (expected ${issue.expected})`));
      } else {
        out.push(
          error(
            at(path),
            "invalid_type",
            `${fieldName(path)} must be ${article(issue.expected)}, not ${describe(value)}`,
          ),
        );
      }
      return;
    }
    case "invalid_value":
      out.push(
        error(
          at(path),
          "invalid_value",
          `${fieldName(path)} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}; got ${describe(valueAt(input, path))}`,
        ),
      );
      return;
    case "too_big":
      out.push(error(at(path), "too_large", `${fieldName(path)} ${limitText(issue.origin, "at most", issue.maximum)}`));
      return;
    case "too_small":
      out.push(
        error(at(path), "too_small", `${fieldName(path)} ${limitText(issue.origin, "at least", issue.minimum)}`),
      );
      return;
    case "invalid_format": {
      const isName = "pattern" in issue && issue.pattern === String(NAME_RE);
      out.push(
        error(
          at(path),
          isName ? "invalid_name" : "invalid_format",
          `${fieldName(path)} ${describe(valueAt(input, path))} ${issue.message}`,
        ),
      );
      return;
    }
    case "invalid_key": {
      const inner = issue.issues[0]?.message ?? "is not allowed";
      out.push(
        error(
          at(path),
          "invalid_name",
          `the name ${JSON.stringify(String(path[path.length - 1]))}${where(path.slice(0, -1))} ${inner}`,
        ),
      );
      return;
    }
    case "invalid_union":
      translateUnion(issue, path, input, out);
      return;
    case "custom": {
      const code = CUSTOM_CODES.find(([re]) => re.test(issue.message))?.[1] ?? "invalid_value";
      out.push(error(at(path), code, `${fieldName(path)}: ${issue.message}`));
      return;
    }
    default:
      out.push(error(at(path), "invalid_value", `${fieldName(path)}: ${issue.message}`));
  }
}

/**
 * A union failed. A discriminated union with an unknown tag names the allowed tags. For
 * other unions, report the branch that got furthest: branches that failed only because
 * the value had the wrong type at the top are the least informative.
 */
function translateUnion(
  issue: Extract<Issue, { code: "invalid_union" }>,
  path: Key[],
  input: unknown,
  out: Diagnostic[],
): void {
  if ("options" in issue && Array.isArray((issue as { options?: unknown }).options)) {
    const options = (issue as unknown as { options: unknown[] }).options;
    const tagPath = path.map(String);
    out.push(
      error(
        tagPath,
        "invalid_value",
        `${fieldName(path)} must be one of ${options.map((v) => JSON.stringify(v)).join(", ")}; got ${describe(valueAt(input, path))}`,
      ),
    );
    return;
  }
  if (valueAt(input, path) === undefined) {
    out.push(error(path.map(String), "missing_field", `${fieldName(path)} is required`));
    return;
  }
  const branches = issue.errors.filter((b) => b.length > 0);
  if (branches.length === 0) {
    out.push(error(path.map(String), "invalid_value", `${fieldName(path)} does not match any allowed form`));
    return;
  }
  const score = (b: readonly Issue[]) => {
    const typeOnly = b.every((i) => i.code === "invalid_type" && i.path.length === 0);
    const depth = Math.max(...b.map((i) => i.path.length + (i.code === "invalid_union" ? 0.5 : 0)));
    return (typeOnly ? -1000 : 0) + depth * 10 - b.length;
  };
  let best = branches[0]!;
  for (const b of branches) if (score(b) > score(best)) best = b;
  if (best.every((i) => i.code === "invalid_type" && i.path.length === 0)) {
    const expected = [
      ...new Set(branches.flatMap((b) => b.map((i) => (i.code === "invalid_type" ? i.expected : "other")))),
    ];
    out.push(
      error(
        path.map(String),
        "invalid_type",
        `${fieldName(path)} must be ${expected.map(article).join(" or ")}, not ${describe(valueAt(input, path))}`,
      ),
    );
    return;
  }
  for (const i of best) translate(i, path, input, out);
}

function dedupe(list: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = `${d.path}\u0000${d.code}\u0000${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function valueAt(root: unknown, path: Key[]): unknown {
  let v = root;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    if (!Object.hasOwn(v, k)) return undefined;
    v = (v as Record<Key, unknown>)[k];
  }
  return v;
}

function fieldName(path: Key[]): string {
  // `{ not: x }` is the negation wrapper: name the field it negates.
  const last = [...path].reverse().find((k) => typeof k === "string" && k !== "not");
  return last === undefined ? "the document" : `\`${String(last)}\``;
}

function where(path: Key[]): string {
  return path.length === 0 ? " at the top level" : ` in ${path.map(String).join(".")}`;
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function limitText(origin: string, dir: string, n: number | bigint): string {
  if (origin === "string") return `must be ${dir} ${n} characters long`;
  if (origin === "array" || origin === "set") return `must have ${dir} ${n} items`;
  return `must be ${dir} ${n}`;
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
