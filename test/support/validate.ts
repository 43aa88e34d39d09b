// Shared helpers for the validator tests (not a test file itself).
import assert from "node:assert/strict";
import { validatePolicy } from "../../src/engine/validate/index.ts";

export type Doc = Record<string, unknown>;

/** A one-chain policy: `rules` in chain `name` with the given table/hook. */
export function chain(
  rules: unknown[],
  opts: { name?: string; table?: string; hook?: string | null; extra?: Doc } = {},
): Doc {
  const name = opts.name ?? "c";
  const hook = opts.hook === null ? {} : { hook: opts.hook ?? "input" };
  return { chains: { [name]: { table: opts.table ?? "filter", ...hook, rules } }, ...opts.extra };
}

export function diags(
  doc: unknown,
  severity: "errors" | "warnings" = "errors",
  target?: "nftables" | "iptables",
): string[] {
  const r = validatePolicy(doc, target ? { target } : {});
  return r[severity].map((d) => `${d.code} ${d.path}`);
}

/** The document has exactly this error (among possibly others) with this code and path. */
export function hasError(doc: unknown, code: string, path: string, target?: "nftables" | "iptables"): void {
  const list = diags(doc, "errors", target);
  assert.ok(list.includes(`${code} ${path}`), `expected ${code} at ${path}, got: ${JSON.stringify(list)}`);
}

export function hasWarning(doc: unknown, code: string, path: string): void {
  const r = validatePolicy(doc);
  const list = r.warnings.map((d) => `${d.code} ${d.path}`);
  assert.ok(
    list.includes(`${code} ${path}`),
    `expected warning ${code} at ${path}, got: ${JSON.stringify(list)} (errors ${JSON.stringify(r.errors.map((e) => e.code + " " + e.path))})`,
  );
}

export function noWarning(doc: unknown, code: string): void {
  const r = validatePolicy(doc);
  assert.deepEqual(
    r.warnings.filter((d) => d.code === code).map((d) => d.path),
    [],
  );
}

export function valid(doc: unknown): void {
  const r = validatePolicy(doc);
  assert.deepEqual(
    r.errors.map((d) => `${d.code} ${d.path}: ${d.message}`),
    [],
  );
  assert.equal(r.ok, true);
}
