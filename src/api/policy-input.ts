// Turns what a client sent (a policy object, YAML/JSON text, or an import of iptables
// lines) into a validated Policy, or an ApiError carrying every diagnostic.
import { z } from "zod";
import * as engine from "../engine/index.ts";
import { parsePolicySource, validatePolicy, type Diagnostic, type Policy, type Target } from "../engine/index.ts";
import { ApiError, type ErrorDetail } from "./errors.ts";
import { PolicyDocument } from "./openapi.ts";

export const IMPORT_FORMATS = ["iptables", "iptables-save", "ipmasqadm"] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** Body of POST .../versions and POST /v1/validate: a policy, or source text to import. */
export const PolicyRequest = z
  .strictObject({
    policy: PolicyDocument.optional(),
    format: z.enum(IMPORT_FORMATS).optional().describe("import source lines instead of sending a policy"),
    source: z.string().max(4 * 1024 * 1024).optional().describe("the lines to import (with format)"),
    message: z.string().max(2000).optional().describe("what changed and why (kept with the version)"),
  })
  .superRefine((b, ctx) => {
    const hasPolicy = b.policy !== undefined;
    const hasImport = b.format !== undefined || b.source !== undefined;
    if (hasPolicy === hasImport) {
      ctx.addIssue({ code: "custom", path: [], message: "send either `policy`, or `format` with `source`" });
    } else if (hasImport && (b.format === undefined || b.source === undefined)) {
      ctx.addIssue({ code: "custom", path: [b.format === undefined ? "format" : "source"], message: "`format` and `source` go together" });
    }
  });
export type PolicyRequest = z.infer<typeof PolicyRequest>;

export const toDetails = (list: Diagnostic[]): ErrorDetail[] => list.map(({ path, code, message }) => ({ path, code, message }));

/** The content-type parser for YAML bodies: text in, `{policy}` out, so one schema covers both. */
export function parseYamlBody(text: string): { policy: unknown } {
  const parsed = parsePolicySource(text, "yaml");
  if (!parsed.ok) throw new ApiError(400, "malformed_request", "the YAML body does not parse", toDetails(parsed.errors));
  return { policy: parsed.value };
}

type ImportFn = (format: ImportFormat, source: string) => unknown;

/** The import comes from a later engine issue; until it is exported, say so plainly. */
function importer(): ImportFn | undefined {
  const fn = (engine as Record<string, unknown>).importPolicy;
  return typeof fn === "function" ? (fn as ImportFn) : undefined;
}

function documentOf(input: PolicyRequest): unknown {
  if (input.policy !== undefined) return input.policy;
  const importPolicy = importer();
  if (!importPolicy) throw new ApiError(422, "import_unavailable", "importing iptables/ipmasqadm source is not available in this build");
  const result = importPolicy(input.format!, input.source!) as { ok?: boolean; errors?: Diagnostic[]; policy?: unknown; document?: unknown; value?: unknown };
  const errors = (result.errors ?? []).filter((d) => d.severity !== "warning");
  if (result.ok === false || errors.length > 0) {
    throw new ApiError(422, "invalid_policy", `the ${input.format} source could not be imported`, toDetails(errors));
  }
  return result.policy ?? result.document ?? result.value;
}

export interface ValidatedPolicy {
  policy: Policy;
  warnings: Diagnostic[];
}

export type Validation = { ok: true; policy: Policy; warnings: Diagnostic[] } | { ok: false; errors: Diagnostic[]; warnings: Diagnostic[] };

export function validateInput(input: PolicyRequest, target?: Target): Validation {
  const result = validatePolicy(documentOf(input), target ? { target } : undefined);
  if (result.ok && result.policy) return { ok: true, policy: result.policy, warnings: result.warnings };
  return { ok: false, errors: result.errors, warnings: result.warnings };
}

/** Validate or throw 422 with every error. */
export function requireValidPolicy(input: PolicyRequest): ValidatedPolicy {
  const v = validateInput(input);
  if (!v.ok) throw new ApiError(422, "invalid_policy", `the policy has ${v.errors.length} error(s)`, toDetails(v.errors));
  return v;
}
