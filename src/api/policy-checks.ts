// The request-side wrappers of policy parsing and validation: the work runs in the CPU
// pool (cpu-tasks.ts), its refusals become ApiErrors here, on the main thread.
import type { CpuPool } from "./cpu-pool.ts";
import { ApiError } from "./errors.ts";
import { toDetails, type PolicyRequest, type Validation } from "./policy-input.ts";

/** Source bounds whose refusal is "too large" (413) rather than "does not parse" (400). */
const TOO_LARGE_SOURCE = new Set(["source_too_large", "alias_expansion_too_large", "alias_limit"]);

/** The content-type parser for YAML bodies: text in, `{policy}` out, so one schema covers both. */
export async function parseYamlBody(cpu: CpuPool, text: string): Promise<{ policy: unknown }> {
  const parsed = await cpu.run("parseYaml", text);
  if (parsed.ok) return { policy: parsed.value };
  const first = parsed.errors[0]!;
  if (TOO_LARGE_SOURCE.has(first.code))
    throw new ApiError(
      413,
      "payload_too_large",
      `the YAML body is too large: ${first.message}`,
      toDetails(parsed.errors),
    );
  throw new ApiError(400, "malformed_request", "the YAML body does not parse", toDetails(parsed.errors));
}

/** Validate (in the CPU pool) or throw 422 with every error. */
export async function requireValidPolicy(
  cpu: CpuPool,
  input: PolicyRequest,
): Promise<Extract<Validation, { ok: true }>> {
  const v = await cpu.run("validate", { input });
  if (!v.ok) {
    const what = input.format ? `the ${input.format} source` : "the policy";
    throw new ApiError(422, "invalid_policy", `${what} has ${v.errors.length} error(s)`, toDetails(v.errors));
  }
  return v;
}
