// A firewall shell script: each command is recognised by its program (iptables, ip6tables,
// ipmasqadm, ipchains, ipfw, ipset, or a bare `-A ...` line as the manuals print them) and handed to that
// importer. Other programs are reported: harmless ones skipped, anything else an error.
import { applyIpfw } from "./ipfw.ts";
import { fail } from "./cursor.ts";
import type { Collector, PendingEntry } from "./collect.ts";
import type { PolicyDraft } from "./draft.ts";
import { applyIptables } from "./iptables.ts";
import { applyIpset } from "./ipset.ts";
import { ForwardingState, applyIpchains, applyIpmasqadm } from "./ipmasqadm.ts";
import { EXECUTE_HINT, lexScript, type LexedCommand } from "./lexer.ts";
import type { Family } from "./values.ts";

type Program = "iptables" | "ip6tables" | "ipmasqadm" | "ipchains" | "ipfw" | "ipset" | "bare";

function programOf(word: string): Program | undefined {
  const base = word.slice(word.lastIndexOf("/") + 1);
  if (/^iptables(-nft|-legacy)?$/.test(base)) return "iptables";
  if (/^ip6tables(-nft|-legacy)?$/.test(base)) return "ip6tables";
  if (base === "ipmasqadm" || base === "ipchains" || base === "ipfw" || base === "ipset") return base;
  return undefined;
}

/** Commands that change nothing a policy could hold. */
const HARMLESS: Record<string, string> = {
  modprobe: "loads a kernel module",
  insmod: "loads a kernel module",
  echo: "prints text",
  printf: "prints text",
  sysctl: "a host setting, not part of a firewall policy",
  set: "a shell option",
  export: "exports shell variables",
  true: "does nothing",
  ":": "does nothing",
  cd: "changes directory",
  sleep: "waits",
  exit: "ends the script",
  clear: "clears the terminal",
  cat: "prints a file",
  logger: "writes to the system log",
  date: "prints the date",
  "iptables-save": "prints the rules in place (the import builds them from the script itself)",
  "ip6tables-save": "prints the rules in place (the import builds them from the script itself)",
  "netfilter-persistent": "saves or reloads the rules in place, not part of a policy",
  service: "starts or stops a system service",
  systemctl: "starts or stops a system service",
  sed: "edits a file",
  ifconfig: "interface configuration, not part of a firewall policy",
  route: "routing configuration, not part of a firewall policy",
  ip: "interface and routing configuration, not part of a firewall policy",
};

const NOT_IPTABLES: Record<string, string> = {
  "iptables-restore": "feed iptables-restore input to the importer with format iptables-save",
  "ip6tables-restore": "feed ip6tables-restore input to the importer with format iptables-save",
  nft: "nft commands are not imported: Palisade renders nftables from the policy",
  ebtables: "ebtables (bridge filtering) has no equivalent in the policy schema",
  tc: "traffic control (tc) has no equivalent in the policy schema",
};

/** Shell control flow a line-by-line importer cannot follow. */
const SHELL_KEYWORDS = new Set([
  "if",
  "then",
  "else",
  "elif",
  "fi",
  "for",
  "while",
  "until",
  "do",
  "done",
  "case",
  "esac",
  "function",
  "select",
  "{",
  "}",
  "[[",
  "return",
  "source",
  ".",
]);

export function importScript(
  source: string,
  draft: PolicyDraft,
  out: Collector,
  variables: Record<string, string> = {},
): void {
  const lexed = lexScript(source, variables);
  const forwarding = new ForwardingState(draft);
  const programs = lexed.commands.map((c): Program | undefined => {
    const w = c.words[0];
    if (w === undefined) return undefined;
    return programOf(w) ?? (w.startsWith("-") ? "bare" : undefined);
  });
  // An inet policy sees both families: iptables rules stay IPv4-only when the script also has ip6tables rules.
  const mixed = programs.includes("ip6tables");
  const lineCommands = new Map<number, number>();
  for (const c of lexed.commands) lineCommands.set(c.line, (lineCommands.get(c.line) ?? 0) + 1);
  const firstEntry = new Map<number, PendingEntry>();

  lexed.commands.forEach((cmd, idx) => {
    const text = lineCommands.get(cmd.line) === 1 ? (lexed.lines[cmd.line - 1] ?? cmd.text).trim() : cmd.text;
    const entry = out.add(cmd.line, text, () => runCommand(cmd, programs[idx], mixed, draft, forwarding));
    if (!firstEntry.has(cmd.line)) firstEntry.set(cmd.line, entry);
  });
  for (const n of lexed.notes) {
    const text = (lexed.lines[n.line - 1] ?? "").trim();
    if (n.kind === "blank") out.note(n.line, text, "skipped", "blank line");
    else if (n.kind === "comment") out.note(n.line, text, "skipped", "comment");
    else {
      const owner = firstEntry.get(n.of!);
      out.note(n.line, text, "skipped", `continuation of line ${n.of}`, owner ? { continuationOf: owner } : {});
    }
  }
  out.entries.sort((a, b) => a.line - b.line);
}

function runCommand(
  cmd: LexedCommand,
  program: Program | undefined,
  mixed: boolean,
  draft: PolicyDraft,
  fw: ForwardingState,
) {
  if (cmd.assignmentOnly)
    return { status: "skipped" as const, reason: "shell variable assignment (expanded in later lines)" };
  if (cmd.words.length === 0) return { status: "skipped" as const, reason: "empty command" };
  if (cmd.unsupported) fail("import_unsupported", cmd.unsupported.reason, cmd.unsupported.token);
  const first = cmd.words[0]!;
  const name = first.slice(first.lastIndexOf("/") + 1);
  if (!program) {
    if (SHELL_KEYWORDS.has(first) || /^[A-Za-z_][A-Za-z0-9_-]*\(\)$/.test(first) || /^[A-Za-z_]\w*\)$/.test(first)) {
      fail(
        "import_shell_control_flow",
        `${first}: shell control flow (conditions, loops, functions, case) is not followed line by line; ${EXECUTE_HINT}`,
        first,
      );
    }
    const why = NOT_IPTABLES[name];
    if (why) fail("import_not_a_firewall_command", why, first);
    const harmless = HARMLESS[name];
    // `echo 1 > /proc/sys/...` is a kernel setting, like sysctl.
    if (harmless && cmd.redirects.some((r) => r.startsWith("/proc/sys/")))
      return {
        status: "skipped" as const,
        reason: `${name} > ${cmd.redirects.find((r) => r.startsWith("/proc/sys/"))}: a kernel setting (like sysctl), not part of a firewall policy`,
      };
    if (harmless)
      return {
        status: "skipped" as const,
        reason: `${name}: ${harmless}${cmd.redirects.length ? ` (output redirected to ${cmd.redirects.join(", ")})` : ""}`,
      };
    if (name === "sudo" && cmd.words.length > 1) {
      return runCommand({ ...cmd, words: cmd.words.slice(1) }, programOf(cmd.words[1]!), mixed, draft, fw);
    }
    fail(
      "import_not_a_firewall_command",
      `${first} is not an iptables, ip6tables, ipmasqadm or ipchains command`,
      first,
    );
  }
  if (cmd.undefinedVars.length > 0) {
    const v = cmd.undefinedVars[0]!;
    fail(
      "import_undefined_variable",
      `variable ${v} is not assigned earlier in the script (pass it in the import variables)`,
      `$${v}`,
    );
  }
  const args = program === "bare" ? cmd.words : cmd.words.slice(1);
  switch (program) {
    case "ipmasqadm":
      return applyIpmasqadm(args, fw);
    case "ipchains":
      return applyIpchains(args, fw);
    case "ipfw":
      return applyIpfw(args, { draft, line: cmd.line });
    case "ipset":
      return applyIpset(args, draft);
    case "ip6tables":
      return applyIptables(args, { draft, line: cmd.line, family: "ipv6" });
    default: {
      const family: Family | undefined = mixed ? "ipv4" : undefined;
      const base = { draft, line: cmd.line, ipv4Program: program === "iptables" };
      return applyIptables(args, family ? { ...base, family } : base);
    }
  }
}
