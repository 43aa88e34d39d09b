// NAME@VERSION on the command line: `web@3`, or `web` for the latest version.
import { CliError, EXIT, usageError } from "./errors.ts";
import { seg, type Rest } from "./rest.ts";

export function parseRef(ref: string): { ruleset: string; version?: number } {
  const m = /^([a-z0-9][a-z0-9._-]*)(?:@(\d+|latest))?$/.exec(ref);
  if (!m) throw usageError(`expected NAME or NAME@VERSION (e.g. web@3), got "${ref}"`);
  return { ruleset: m[1]!, ...(m[2] && m[2] !== "latest" ? { version: Number(m[2]) } : {}) };
}

/** The version a ref names: its own number, or the ruleset's latest. */
export async function resolveRef(rest: Rest, ref: string): Promise<{ ruleset: string; version: number }> {
  const r = parseRef(ref);
  if (r.version !== undefined) return { ruleset: r.ruleset, version: r.version };
  const rs = await rest.get<{ latestVersion: number | null }>(`/v1/rulesets/${seg(r.ruleset)}`);
  if (rs.latestVersion === null) {
    throw new CliError(
      "not_found",
      `ruleset "${r.ruleset}" has no version yet`,
      EXIT.notFound,
      [],
      `push one: palisade push -f FILE --ruleset ${r.ruleset}`,
    );
  }
  return { ruleset: r.ruleset, version: rs.latestVersion };
}
