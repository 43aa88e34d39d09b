// The CPU-heavy work a request can ask for, as plain functions of plain data: they run in
// the CPU pool's worker thread (cpu-worker.ts), so arguments and results must survive
// structured cloning (no class instances, no functions). Callers turn results into
// ApiErrors on the main thread.
import {
  geoip,
  parsePolicySource,
  renderIptables,
  renderNft,
  targetSupport,
  validatePolicy,
  type Diagnostic,
  type ParsedSource,
  type Target,
  type TargetCapabilities,
} from "../engine/index.ts";
import { diffJson, type Change } from "./diff.ts";
import { validateInput, type PolicyRequest, type Validation } from "./policy-input.ts";

export type RenderResult =
  | { ok: true; text: string }
  | { ok: false; stage: "validate" | "render"; errors: Diagnostic[] };

export const cpuTasks = {
  /** YAML request body -> value, with the source bounds (size, alias expansion, depth). */
  parseYaml: (text: string): ParsedSource => parsePolicySource(text, "yaml"),
  /** Validate and lint a request's policy (or import its source). */
  validate: (a: { input: PolicyRequest; target?: Target }): Validation => validateInput(a.input, a.target),
  diff: (a: { from: unknown; to: unknown }): Change[] => diffJson(a.from, a.to),
  /** Country data CSV -> merged intervals per country (the whole npm package: ~550k lines, seconds of BigInt work). */
  parseGeoCsv: (text: string) => geoip.parseGeoCsv(text),
  /**
   * A stored document, re-validated (the engine's rules may have moved on), rendered for a
   * target; iptables limits that depend on the kernel come from `capabilities` (a host's).
   */
  render: (a: { document: unknown; target: Target; capabilities?: TargetCapabilities }): RenderResult => {
    const v = validatePolicy(a.document);
    if (!v.ok || !v.policy) return { ok: false, stage: "validate", errors: v.errors };
    // What the target cannot take, as a validation for it finds (the agent's for nftables):
    // for nftables also the names the render would take for its own or nft cannot read.
    const unsupported = targetSupport(v.policy, a.target, a.capabilities).filter((d) => d.severity === "error");
    if (unsupported.length > 0) return { ok: false, stage: "render", errors: unsupported };
    const r =
      a.target === "nftables" ? renderNft(v.policy) : renderIptables(v.policy, { capabilities: a.capabilities ?? {} });
    return r.ok ? { ok: true, text: r.text } : { ok: false, stage: "render", errors: r.errors };
  },
};

export type CpuTasks = typeof cpuTasks;
export type CpuTaskName = keyof CpuTasks;
