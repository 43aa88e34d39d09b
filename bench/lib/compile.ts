// The compile step the benches time, split into stages: validate (schema, limits,
// semantic checks, lints, nftables support) and render (compileNft + serialize).
//
// validatePolicy() is the public path. For the 10k-rule policy it does not finish in
// minutes (the rule_shadowed lint compares every rule with every earlier one, O(n^2)),
// so the benches can also run "validate without lints": the same stages minus
// lintWarnings, imported from the validator's modules directly. That is a benchmark
// probe of the engine's internals, not a second code path for the product.
import { compileNft, nft, validatePolicy, type PolicyInput } from "../../src/engine/index.ts";
import { Policy } from "../../src/engine/policy/index.ts";
import { limitErrors } from "../../src/engine/validate/limits.ts";
import { semanticErrors } from "../../src/engine/validate/semantic.ts";
import { targetSupport } from "../../src/engine/validate/target.ts";

export interface CompileTimes {
  /** Schema parse + semantic checks (+ lints when `lints`) + target support, ms. */
  validateMs: number;
  /** compileNft (which serializes once to surface model errors), ms. */
  compileMs: number;
  /** The serialize() that renderNft does after compileNft, ms. */
  serializeMs: number;
  totalMs: number;
  text: string;
  lints: boolean;
}

function fail(what: string, diags: Array<{ code: string; message: string }>): never {
  throw new Error(`${what}: ${diags.slice(0, 3).map((d) => `${d.code}: ${d.message}`).join("; ")}`);
}

/** Validate the document the way validatePolicy does, with or without the lints. Returns the parsed policy. */
export function validate(doc: PolicyInput, lints: boolean): Policy {
  if (lints) {
    const v = validatePolicy(doc, { target: "nftables" });
    if (!v.ok || !v.policy) fail("validatePolicy refused the bench policy", v.errors);
    return v.policy;
  }
  const parsed = Policy.safeParse(doc);
  if (!parsed.success) throw new Error(`schema refused the bench policy: ${parsed.error.message.slice(0, 300)}`);
  const errs = [...limitErrors(parsed.data), ...semanticErrors(parsed.data), ...targetSupport(parsed.data, "nftables")].filter((d) => d.severity === "error");
  if (errs.length) fail("validator refused the bench policy", errs);
  return parsed.data;
}

/** validate + renderNft, timed per stage (renderNft = compileNft + serialize). */
export function compileTimed(doc: PolicyInput, lints: boolean): CompileTimes {
  const t0 = performance.now();
  const policy = validate(doc, lints);
  const t1 = performance.now();
  const c = compileNft(policy);
  if (!c.ok) fail("compileNft refused the bench policy", c.errors);
  const t2 = performance.now();
  const text = nft.serialize(c.transaction);
  const t3 = performance.now();
  return { validateMs: t1 - t0, compileMs: t2 - t1, serializeMs: t3 - t2, totalMs: t3 - t0, text, lints };
}
