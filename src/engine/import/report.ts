// The import report: one entry per input line (per command when a line holds several),
// saying what the line became or why it could not be imported. Nothing is dropped silently.
import * as z from "zod";

export const ImportStatus = z.enum(["imported", "lifted", "skipped", "error"]);

export const ImportReportLine = z.object({
  /** 1-based line number in the source. */
  line: z.number().int().min(1),
  /** The line (or command) as written. */
  text: z.string(),
  /** imported: became the object at `path`; lifted: folded into a preset/forward at `path`; skipped: no effect; error: not imported. */
  status: ImportStatus,
  /** JSON pointer into the imported policy. */
  path: z.string().optional(),
  reason: z.string().optional(),
  /** The offending token of an error. */
  token: z.string().optional(),
  /** The line is from the `ipset save` text given beside the source (absent: from the source). */
  input: z.enum(["ipsets"]).optional(),
});
export type ImportReportLine = z.infer<typeof ImportReportLine>;

export interface ImportSummary {
  imported: number;
  lifted: number;
  skipped: number;
  error: number;
}

export function summarizeImport(report: readonly ImportReportLine[]): ImportSummary {
  const s: ImportSummary = { imported: 0, lifted: 0, skipped: 0, error: 0 };
  for (const r of report) s[r.status]++;
  return s;
}

const MAX_TEXT = 60;

/** Human-readable report: one line per input line, then a summary line. */
export function formatImportReport(report: readonly ImportReportLine[]): string {
  const width = String(report.reduce((m, r) => Math.max(m, r.line), 1)).length;
  const out = report.map((r) => {
    const text = r.text.length > MAX_TEXT ? `${r.text.slice(0, MAX_TEXT - 3)}...` : r.text;
    const where = r.path ? ` -> ${r.path}` : "";
    const why = r.reason ? ` (${r.reason})` : "";
    const token = r.token && r.status === "error" ? ` [at ${JSON.stringify(r.token)}]` : "";
    const at = r.input ? `${r.input}:${r.line}` : String(r.line);
    return `${at.padStart(width)}  ${r.status.padEnd(8)} ${text}${where}${token}${why}`;
  });
  const s = summarizeImport(report);
  out.push(`${s.imported} imported, ${s.lifted} lifted into presets/forwards, ${s.skipped} skipped, ${s.error} errors`);
  return out.join("\n");
}
