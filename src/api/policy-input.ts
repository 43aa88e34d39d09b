// Turns what a client sent (a policy object, or an import of iptables lines) into a
// validated Policy, or every diagnostic. Pure: it runs in the CPU pool's worker
// (cpu-tasks.ts); policy-checks.ts turns refusals into ApiErrors.
import { z } from "zod";
import {
  importPolicy,
  validatePolicy,
  type Diagnostic,
  type ImportFormat,
  type Policy,
  type Target,
} from "../engine/index.ts";
import type { ErrorDetail } from "./errors.ts";
import { PolicyDocument } from "./openapi.ts";

export const IMPORT_FORMATS = ["iptables", "iptables-save", "ipmasqadm"] as const satisfies readonly ImportFormat[];

/** Body of POST .../versions and POST /v1/validate: a policy, or source text to import. */
export const PolicyRequest = z
  .strictObject({
    policy: PolicyDocument.optional(),
    format: z.enum(IMPORT_FORMATS).optional().describe("import source lines instead of sending a policy"),
    source: z
      .string()
      .max(4 * 1024 * 1024)
      .optional()
      .describe("the lines to import (with format)"),
    family: z
      .enum(["ipv4", "ipv6"])
      .optional()
      .describe(
        "with format iptables-save: the tool that wrote the source (ipv6: ip6tables-save, its rules and DROP policies are IPv6's only); unset, the header or the rules tell",
      ),
    ipsets: z
      .string()
      .max(4 * 1024 * 1024)
      .optional()
      .describe(
        "with format and source: `ipset save` output for the sets the lines match (`-m set`); without it a line that matches such a set is refused (import_ipset_contents_missing), as iptables-restore refuses it, and so is a `-j SET` of such a set",
      ),
    message: z.string().max(2000).optional().describe("what changed and why (kept with the version)"),
  })
  .superRefine((b, ctx) => {
    const hasPolicy = b.policy !== undefined;
    const hasImport = b.format !== undefined || b.source !== undefined;
    if (hasPolicy === hasImport) {
      ctx.addIssue({ code: "custom", path: [], message: "send either `policy`, or `format` with `source`" });
    } else if (b.ipsets !== undefined && !hasImport) {
      ctx.addIssue({ code: "custom", path: ["ipsets"], message: "`ipsets` goes with `format` and `source`" });
    } else if (hasImport && (b.format === undefined || b.source === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [b.format === undefined ? "format" : "source"],
        message: "`format` and `source` go together",
      });
    } else if (b.family !== undefined && b.format !== "iptables-save") {
      ctx.addIssue({ code: "custom", path: ["family"], message: "`family` applies only to format iptables-save" });
    }
  });
export type PolicyRequest = z.infer<typeof PolicyRequest>;

export const toDetails = (list: Diagnostic[]): ErrorDetail[] =>
  list.map(({ path, code, message }) => ({ path, code, message }));

/** What an import did with each source line (the engine's report), sent back to the client. */
export const ImportReport = z
  .array(
    z.looseObject({
      line: z.number().int(),
      text: z.string(),
      status: z.enum(["imported", "lifted", "skipped", "error"]),
      path: z.string().optional().describe("JSON pointer into the imported policy"),
      reason: z.string().optional(),
      input: z.enum(["ipsets"]).optional().describe("the line is from `ipsets` (absent: from `source`)"),
    }),
  )
  .describe("one entry per source line: what it became, or why not (only for {format, source} bodies)");
export type ImportReport = z.infer<typeof ImportReport>;

/** The document to validate and, for imports, the per-line report and the lines that failed. */
function documentOf(input: PolicyRequest): {
  doc: unknown;
  importReport?: ImportReport;
  importErrors: Diagnostic[];
  importWarnings: Diagnostic[];
} {
  if (input.policy !== undefined) return { doc: input.policy, importErrors: [], importWarnings: [] };
  const result = importPolicy(input.format!, input.source!, {
    ...(input.family && { family: input.family }),
    ...(input.ipsets !== undefined && { ipsets: input.ipsets }),
  });
  // A partial import is refused as a whole: a policy missing some of its lines is not the one the user has.
  const importErrors: Diagnostic[] =
    result.errors.length > 0 || result.policy
      ? result.errors
      : [{ path: "/source", code: "import_failed", message: "nothing could be imported", severity: "error" }];
  return { doc: result.policy, importReport: result.report, importErrors, importWarnings: result.warnings };
}

export type Validation = { importReport?: ImportReport; warnings: Diagnostic[] } & (
  | { ok: true; policy: Policy }
  | { ok: false; errors: Diagnostic[] }
);

export function validateInput(input: PolicyRequest, target?: Target): Validation {
  const { doc, importReport, importErrors, importWarnings } = documentOf(input);
  if (importErrors.length > 0)
    return { ok: false, errors: importErrors, warnings: importWarnings, ...(importReport && { importReport }) };
  const result = validatePolicy(doc, target ? { target } : undefined);
  // What the import needs the operator for (an IPv4 policy that leaves IPv6 unfiltered, element timeouts dropped) comes first.
  const extra = { warnings: [...importWarnings, ...result.warnings], ...(importReport && { importReport }) };
  if (result.ok && result.policy) return { ok: true, policy: result.policy, ...extra };
  return { ok: false, errors: result.errors, ...extra };
}
