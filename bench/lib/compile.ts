// The compile step the benches time, split into stages: the public validatePolicy()
// (schema, limits, semantic checks, lints, nftables support) and compileNft (which
// serializes once; renderNft returns that same text).
import { compileNft, validatePolicy, type PolicyInput } from "../../src/engine/index.ts";

export interface CompileTimes {
  /** validatePolicy with target nftables, lints included, ms. */
  validateMs: number;
  /** compileNft, including its one serialize, ms. */
  compileMs: number;
  totalMs: number;
  text: string;
}

function fail(what: string, diags: Array<{ code: string; message: string }>): never {
  throw new Error(
    `${what}: ${diags
      .slice(0, 3)
      .map((d) => `${d.code}: ${d.message}`)
      .join("; ")}`,
  );
}

/** validate + render, timed per stage: exactly the work the API and the agent do. */
export function compileTimed(doc: PolicyInput): CompileTimes {
  const t0 = performance.now();
  const v = validatePolicy(doc, { target: "nftables" });
  if (!v.ok || !v.policy) fail("validatePolicy refused the bench policy", v.errors);
  const t1 = performance.now();
  const c = compileNft(v.policy);
  if (!c.ok) fail("compileNft refused the bench policy", c.errors);
  const t2 = performance.now();
  return { validateMs: t1 - t0, compileMs: t2 - t1, totalMs: t2 - t0, text: c.text };
}
