// Zod schemas shared by several route groups. Route-specific schemas live beside their handlers.
import { z } from "zod";

export const Timestamp = z.iso.datetime().describe("RFC 3339 timestamp (UTC)");
export const iso = (d: Date) => d.toISOString();
export const isoOrNull = (d: Date | null) => (d ? d.toISOString() : null);

/** Names of rulesets and API tokens: safe in URLs, shell arguments and rendered comments. */
export const Name = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/,
    "lowercase letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
  );

export const LabelKey = z
  .string()
  .regex(
    /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$/,
    "label keys: up to 63 of A-Z a-z 0-9 . _ / -, starting with a letter or digit",
  );
export const LabelValue = z
  .string()
  .max(63)
  .regex(/^[A-Za-z0-9._-]*$/, "label values: up to 63 of A-Z a-z 0-9 . _ -");
export const Labels = z.record(LabelKey, LabelValue).describe("host labels (selectors match them)");
export type Labels = z.infer<typeof Labels>;

export const DiagnosticSchema = z.object({
  path: z.string(),
  code: z.string(),
  message: z.string(),
  severity: z.enum(["error", "warning"]),
});
