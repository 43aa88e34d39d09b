// Commands recorded while a script ran in a sandbox (`palisade import --execute`): the shell
// did the control flow, the substitutions and the loops; what reached iptables, ip6tables,
// iptables-restore, ipset, modprobe and sysctl goes through the same line importers as a
// text import, and each report line carries the script line the command came from.
// Pure: the CLI runs the script; this only reads what was recorded.
import * as z from "zod";
import { Collector } from "./collect.ts";
import { PolicyDraft } from "./draft.ts";
import { assemble, MAX_IMPORT_BYTES, type ImportResult } from "./assemble.ts";
import { applyIptables } from "./iptables.ts";
import { importSave } from "./iptables-save.ts";
import { applyIpset, ipsetSession } from "./ipset.ts";
import { splitSaveWords } from "./save-words.ts";
import { fail, ImportLineError } from "./cursor.ts";
import { error as diagnostic } from "../diagnostics.ts";

export const RECORDED_PROGRAMS = [
  "iptables",
  "ip6tables",
  "iptables-restore",
  "ip6tables-restore",
  "ipset",
  "modprobe",
  "sysctl",
] as const;

export const RecordedCommand = z.strictObject({
  /** The script line that ran the command (1-based), when the shell could tell. */
  line: z.number().int().min(1),
  program: z.enum(RECORDED_PROGRAMS),
  args: z.array(z.string()),
  /** What the program read on stdin (iptables-restore, ipset restore). */
  input: z.string().optional(),
});
export type RecordedCommand = z.infer<typeof RecordedCommand>;

/** Shell-quote a word for the report text, so the line reads as the command that ran. */
function quote(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

export function importRecorded(commands: readonly RecordedCommand[]): ImportResult {
  const size = commands.reduce((n, c) => n + c.args.join(" ").length + (c.input?.length ?? 0), 0);
  if (size > MAX_IMPORT_BYTES) {
    return {
      report: [],
      errors: [
        diagnostic(["source"], "import_too_large", `the recorded commands are larger than ${MAX_IMPORT_BYTES} bytes`),
      ],
      warnings: [],
    };
  }
  const draft = new PolicyDraft();
  const out = new Collector();
  // As for a text script: when both families are configured, iptables rules stay IPv4-only.
  const mixed = commands.some((c) => c.program === "ip6tables" || c.program === "ip6tables-restore");
  for (const c of commands) {
    const text = [c.program, ...c.args].map(quote).join(" ");
    if (c.program === "iptables-restore" || c.program === "ip6tables-restore") {
      restore(c, text, draft, out, mixed);
      continue;
    }
    out.add(c.line, text, () => {
      switch (c.program) {
        case "modprobe":
          return { status: "skipped", reason: "modprobe: loads a kernel module" };
        case "sysctl":
          return { status: "skipped", reason: "sysctl: a host setting, not part of a firewall policy" };
        case "ipset":
          // `ipset restore`, also after global flags (`ipset -exist restore`).
          if (["restore", "-R"].includes(c.args.find((a) => !/^-(exist|!|q|quiet)$/.test(a)) ?? ""))
            return restoreIpset(c, draft);
          return applyIpset(c.args, draft);
        case "ip6tables":
          return applyIptables(c.args, { draft, line: c.line, family: "ipv6" });
        default:
          return applyIptables(
            c.args,
            mixed
              ? { draft, line: c.line, family: "ipv4", ipv4Program: true }
              : { draft, line: c.line, ipv4Program: true },
          );
      }
    });
  }
  // Stable: commands of one line keep the order they ran in.
  out.entries.sort((a, b) => a.line - b.line);
  return assemble(draft, out, false);
}

/**
 * iptables-restore input: imported as iptables-save text, its lines reported on the script line.
 * `mixed`: the script also configures IPv6 (ip6tables, ip6tables-restore).
 */
function restore(c: RecordedCommand, text: string, draft: PolicyDraft, out: Collector, mixed: boolean): void {
  const unsupported = c.args.filter((a) => !/^(-n|--noflush|-w|--wait|-c|--counters)$/.test(a));
  if (unsupported.length > 0 || c.input === undefined) {
    out.add(c.line, text, () =>
      fail(
        "import_unsupported",
        `${c.program} ${unsupported.join(" ")}: only input on stdin is imported`,
        unsupported[0] ?? c.program,
      ),
    );
    return;
  }
  const inner = new Collector();
  // The program decides the family, as it does for the real tool: iptables-restore reads its
  // input as IPv4 whatever the text holds (a TPROXY --on-ip ::1 line is refused, not taken as
  // a sign of ip6tables-save output), ip6tables-restore as IPv6.
  const fam = c.program === "ip6tables-restore" ? "ipv6" : "ipv4";
  // Beside ip6tables, iptables-restore's rules and policies are IPv4's only (as iptables lines are):
  // its DROP policy is settled per family, not overwritten by ip6tables-restore's ACCEPT.
  // Its warnings (an old dump's shadowed targets) are left out: the script's iptables-restore,
  // not the one its input's header names, decides what `-j LOG` meant, and that is unknown here.
  importSave(c.input, draft, inner, fam, undefined, false, fam === "ipv4" && mixed);
  for (const e of inner.entries) {
    e.text = `${c.program} <<< ${e.text}`;
    e.line = c.line;
    out.entries.push(e);
  }
}

/**
 * `ipset [-exist] restore`: each line as ipset restores it; the first line ipset refuses stops
 * the restore (and fails the command), named by its line in the input.
 */
function restoreIpset(c: RecordedCommand, draft: PolicyDraft) {
  const exist = c.args.some((a) => a === "-exist" || a === "-!");
  let n = 0;
  const session = ipsetSession();
  for (const [idx, raw] of (c.input ?? "").split("\n").entries()) {
    const l = raw.trim();
    if (l === "COMMIT") session.batch = undefined;
    if (l === "" || l.startsWith("#") || l === "COMMIT") continue;
    try {
      applyIpset(splitSaveWords(l), draft, { restore: true, exist, session });
    } catch (e) {
      if (e instanceof ImportLineError)
        throw new ImportLineError(e.code, `ipset restore, line ${idx + 1} of its input (${l}): ${e.message}`, e.token);
      throw e;
    }
    n++;
  }
  return { status: "imported" as const, reason: `ipset restore: ${n} set commands` };
}
