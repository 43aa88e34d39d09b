// `palisade diff NAME[@A] [[NAME]@B]`: what changed between two versions of a ruleset, as
// the API's structured diff (JSON pointers into the document). No version: the latest
// against the one before it; @A alone: A against the latest.
import type { Command } from "commander";
import { usageError } from "../errors.ts";
import { data, formatOf, out, withOutput } from "../output.ts";
import { parseRef } from "../ref.ts";
import { Rest, seg, withRestOptions, type RestOptions } from "../rest.ts";

interface Change {
  op: "add" | "remove" | "change";
  path: string;
  from?: unknown;
  to?: unknown;
}
interface Diff {
  ruleset: string;
  from: number;
  to: number;
  changes: Change[];
}

const show = (v: unknown) => (v === undefined ? "" : JSON.stringify(v));

export function diffLines(d: Diff): string[] {
  const lines = [`${d.ruleset}@${d.from} -> ${d.ruleset}@${d.to}: ${d.changes.length === 0 ? "no changes" : `${d.changes.length} change(s)`}`];
  for (const c of d.changes) {
    if (c.op === "add") lines.push(`+ ${c.path}: ${show(c.to)}`);
    else if (c.op === "remove") lines.push(`- ${c.path}: ${show(c.from)}`);
    else lines.push(`~ ${c.path}: ${show(c.from)} -> ${show(c.to)}`);
  }
  return lines;
}

export function diffQuery(first: string, second: string | undefined): { ruleset: string; from?: number; to?: number } {
  const a = parseRef(first);
  let to: number | undefined;
  if (second !== undefined) {
    const m = /^(?:([a-z0-9][a-z0-9._-]*))?@?(\d+)$/.exec(second);
    if (!m || (m[1] !== undefined && m[1] !== a.ruleset)) throw usageError(`the second version is @N (or ${a.ruleset}@N), got "${second}"`);
    to = Number(m[2]);
    if (a.version === undefined) throw usageError(`give the first version too: ${a.ruleset}@A @B`);
  }
  return { ruleset: a.ruleset, from: a.version, to };
}

export function register(program: Command): void {
  withOutput(withRestOptions(
    program
      .command("diff")
      .description("what changed between two versions of a ruleset (default: the latest against the one before)")
      .argument("<ref>", "NAME, or NAME@A (A against the latest, or against B)")
      .argument("[other]", "@B"),
  )).action(async (first: string, second: string | undefined, o: RestOptions & { output?: string; json?: boolean }) => {
    const q = diffQuery(first, second);
    // NAME@A alone: A against the latest (the API's default `to`).
    const d = await new Rest(o).get<Diff>(`/v1/rulesets/${seg(q.ruleset)}/diff`, { from: q.from, to: q.to });
    const f = formatOf(o);
    out(f === "json" || f === "yaml" ? data(d, f) : diffLines(d).join("\n") + "\n");
  });
}
