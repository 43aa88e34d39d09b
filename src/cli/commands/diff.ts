// `palisade diff NAME[@A] [[NAME]@B]`: what changed between two versions of a ruleset, as
// the API's structured diff (JSON pointers into the document). No version: the latest
// against the one before; @A alone: A against the latest. `diff NAME --host H`: the
// version the host runs (applied) against the one it should run (desired), and whether
// its agent reported drift of the kernel from the applied one.
import type { Command } from "commander";
import { CliError, EXIT, usageError } from "../errors.ts";
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
  const lines = [
    `${d.ruleset}@${d.from} -> ${d.ruleset}@${d.to}: ${d.changes.length === 0 ? "no changes" : `${d.changes.length} change(s)`}`,
  ];
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
    if (!m || (m[1] !== undefined && m[1] !== a.ruleset))
      throw usageError(`the second version is @N (or ${a.ruleset}@N), got "${second}"`);
    to = Number(m[2]);
    if (a.version === undefined) throw usageError(`give the first version too: ${a.ruleset}@A @B`);
  }
  return { ruleset: a.ruleset, from: a.version, to };
}

type Ref = { ruleset: string; version: number } | null;
interface HostView {
  name: string;
  desiredVersion: Ref;
  appliedVersion: Ref;
  drift: boolean;
}

const refText = (r: Ref) => (r ? `${r.ruleset}@${r.version}` : "none");

/** Applied against desired on one host: the header line, and the two versions to diff when they differ within the ruleset. */
export function hostDiffPlan(
  ruleset: string,
  h: HostView,
): { header: string; versions?: { from: number; to: number }; note?: string } {
  const header = `host ${h.name}: desired ${refText(h.desiredVersion)}, applied ${refText(h.appliedVersion)}, kernel ${h.drift ? "DRIFTED from the applied version (its agent repairs it at the next drift check)" : "matches the applied version"}`;
  const d = h.desiredVersion;
  const a = h.appliedVersion;
  if (![d?.ruleset, a?.ruleset].includes(ruleset)) {
    throw new CliError(
      "not_found",
      `host ${h.name} neither runs nor is meant to run ruleset "${ruleset}" (desired ${refText(d)}, applied ${refText(a)})`,
      EXIT.notFound,
    );
  }
  if (!d || !a) return { header, note: !a ? "nothing applied yet" : "no desired version (never deployed)" };
  if (d.ruleset !== a.ruleset)
    return { header, note: "applied and desired are different rulesets; compare them with render" };
  if (d.version === a.version) return { header, note: "applied = desired" };
  return { header, versions: { from: a.version, to: d.version } };
}

export function register(program: Command): void {
  withOutput(
    withRestOptions(
      program
        .command("diff")
        .description("what changed between two versions of a ruleset (default: the latest against the one before)")
        .argument("<ref>", "NAME, or NAME@A (A against the latest, or against B)")
        .argument("[other]", "@B")
        .option("--host <host>", "the version this host runs against the one it should run"),
    ),
  ).action(
    async (
      first: string,
      second: string | undefined,
      o: RestOptions & { output?: string; json?: boolean; host?: string },
    ) => {
      if (o.host !== undefined) {
        const r = parseRef(first);
        if (r.version !== undefined || second !== undefined)
          throw usageError("with --host give the ruleset name only: palisade diff NAME --host H");
        const rest = new Rest(o);
        const host = await rest.get<HostView>(`/v1/hosts/${seg(o.host)}`);
        const plan = hostDiffPlan(r.ruleset, host);
        const d = plan.versions
          ? await rest.get<Diff>(`/v1/rulesets/${seg(r.ruleset)}/diff`, plan.versions)
          : undefined;
        const f = formatOf(o);
        if (f === "json" || f === "yaml")
          return out(
            data(
              {
                host: host.name,
                desired: host.desiredVersion,
                applied: host.appliedVersion,
                drift: host.drift,
                diff: d ?? null,
              },
              f,
            ),
          );
        return out([plan.header, ...(d ? diffLines(d) : [plan.note!])].join("\n") + "\n");
      }
      const q = diffQuery(first, second);
      // NAME@A alone: A against the latest (the API's default `to`).
      const d = await new Rest(o).get<Diff>(`/v1/rulesets/${seg(q.ruleset)}/diff`, { from: q.from, to: q.to });
      const f = formatOf(o);
      out(f === "json" || f === "yaml" ? data(d, f) : diffLines(d).join("\n") + "\n");
    },
  );
}
