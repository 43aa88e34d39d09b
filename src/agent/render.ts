// What the agent's render worker runs (policy-worker-main.ts): a DesiredState's policy JSON
// -> the engine's validator -> the nft compiler, with the failsafe context set to the exact
// API endpoint this agent talks to (so the rules always keep that connection open); and the
// few facts the resting agent keeps of a policy (its spaKnock secrets, its trap's sharing).
// Only the worker loads this module, so zod's policy schema and the compiler never sit in
// the resting agent's heap (bench/footprint.ts).
import {
  compileNft,
  trapShareOf,
  validatePolicy,
  type nft,
  type TrapShare,
  type ValidationResult,
} from "../engine/index.ts";
import type { ApiEndpoint } from "./desired.ts";
import type { SpaRule } from "./spa.ts";

/** `tables` = the compiled model of `text`, which the applier's carry fallback rebuilds. */
export type Rendered =
  | { ok: true; text: string; tables: nft.TableDefinition[] }
  | { ok: false; code: "invalid_policy" | "render_failed" | "failsafe_unresolved"; error: string };

/** What the agent acts on besides the ruleset: the spaKnock rules, the port-scan trap's sharing. */
export interface PolicyFacts {
  spa: SpaRule[];
  trapShare?: TrapShare;
  /**
   * The policy does not validate for nftables (then it has no trapShare: the agent cannot
   * apply it): the error codes and their summary, for the caller to log (policy-worker.ts).
   */
  invalid?: { codes: string[]; error: string };
}

export const NO_FACTS: PolicyFacts = { spa: [] };

const summary = (ds: { path?: unknown; message: string }[]) =>
  ds
    .slice(0, 10)
    .map((d) => `${Array.isArray(d.path) && d.path.length ? d.path.join(".") + ": " : ""}${d.message}`)
    .join("; ");

// The facts of a version are asked for just before its render: one validation serves both.
let last: { json: string; v: ValidationResult } | undefined;

/** No lints: they only warn, and the API showed the warnings when the version was pushed. */
function validated(policyJson: string): ValidationResult {
  if (last?.json !== policyJson)
    last = { json: policyJson, v: validatePolicy(JSON.parse(policyJson), { target: "nftables", lints: false }) };
  return last.v;
}

export function renderDesired(policyJson: string, failsafe: ApiEndpoint): Rendered {
  let v: ValidationResult;
  try {
    v = validated(policyJson);
  } catch (e) {
    return { ok: false, code: "invalid_policy", error: `policy is not JSON: ${(e as Error).message}` };
  }
  if (!v.ok || !v.policy) return { ok: false, code: "invalid_policy", error: `invalid policy: ${summary(v.errors)}` };
  const r = compileNft(v.policy, { failsafe });
  if (!r.ok) return { ok: false, code: "render_failed", error: `cannot render for nftables: ${summary(r.errors)}` };
  // No address for the failsafe: refuse only a policy that would have carried the rule (the
  // same render with a stand-in address differs), never apply it without.
  if (failsafe.unresolved && failsafe.apiAddresses.length === 0) {
    const probe = compileNft(v.policy, { failsafe: { apiAddresses: ["192.0.2.1"], apiPort: failsafe.apiPort } });
    if (!probe.ok || probe.text !== r.text)
      return {
        ok: false,
        code: "failsafe_unresolved",
        error:
          `the API name ${failsafe.unresolved} does not resolve and never did on this host, so the policy would ` +
          "have no failsafe rule keeping the agent's API connection open; not applied. Fix name resolution on " +
          "the host, or give the agent's --server as IP:PORT",
      };
  }
  return { ok: true, text: r.text, tables: r.tables };
}

/**
 * The spaKnock rules of a policy document (JSON text; none when it does not parse, also
 * from one that fails only semantic checks) and its trap's sharing (only from a valid one).
 * A document that does not validate says so (`invalid`): never an empty answer alone.
 */
export function policyFacts(policyJson: string | undefined): PolicyFacts {
  if (!policyJson) return NO_FACTS;
  let v: ValidationResult;
  try {
    v = validated(policyJson);
  } catch (e) {
    return { spa: [], invalid: { codes: ["invalid_json"], error: `policy is not JSON: ${(e as Error).message}` } };
  }
  const spa = (v.policy?.protections.spaKnock ?? []).map((k) => ({
    name: k.name,
    openSecret: k.openSecret,
    closeSecret: k.closeSecret,
  }));
  if (!v.ok || !v.policy)
    return { spa, invalid: { codes: [...new Set(v.errors.map((d) => d.code))], error: summary(v.errors) } };
  const trapShare = trapShareOf(v.policy);
  return trapShare ? { spa, trapShare } : { spa };
}
