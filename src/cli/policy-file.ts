// Reading a policy document from disk for the local verbs (render, validate): YAML or JSON
// by extension ("-", standard input, as YAML, which JSON is too), parsed by the engine so syntax errors carry line and column.
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parsePolicySource, type Diagnostic } from "../engine/index.ts";

export async function readPolicyFile(
  file: string,
): Promise<{ ok: true; value: unknown } | { ok: false; errors: Diagnostic[] }> {
  const text = await readInput(file);
  // Standard input may be either: it is read as YAML, of which JSON is a subset.
  const format = file === "-" || [".yaml", ".yml"].includes(extname(file).toLowerCase()) ? "yaml" : "json";
  return parsePolicySource(text, format);
}

/** A file's text, or standard input for "-". Read synchronously: node:fs/promises is ~1.5 ms more to load. */
export async function readInput(file: string): Promise<string> {
  return readFileSync(file === "-" ? 0 : file, "utf8");
}

/** One diagnostic per line: `error /chains/input/rules/0/action: ... (code)`. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.severity} ${d.path || "/"}: ${d.message} (${d.code})`;
}
