// iptables-save / iptables-restore text: `*table`, `:CHAIN POLICY [packets:bytes]`, rule
// lines (`-A ...`, optionally prefixed by `[p:b]` counters), `COMMIT`, `#` comments.
// This is not shell: no variables; words are split on blanks with "..." quoting as
// iptables-save writes it (backslash escapes `"` and `\` inside quotes).
import { fail } from "./cursor.ts";
import type { Collector } from "./collect.ts";
import { isTable, type Table } from "./chains.ts";
import type { LineResult, PolicyDraft, ShadowedJump } from "./draft.ts";
import { warning, type Diagnostic } from "../diagnostics.ts";
import { applyIptables } from "./iptables.ts";
import { detectSaveFamily, headerOlderThan, mixedSaveHeaders, type SaveHeader } from "./save-family.ts";
import { splitSaveWords } from "./save-words.ts";
import { STANDARD_TARGETS } from "./vocab.ts";
import { applyIpset, ipsetSession, isIpsetSaveLine } from "./ipset.ts";
import type { Family } from "./values.ts";

/**
 * Who wrote the text: `family` when the caller knows ("ipv6": ip6tables-save, "ipv4":
 * iptables-save); else the header or the rules (save-family.ts); else `hint` (the file's name).
 * `ipsetLines`: lines of `ipset save` (`create`, `add`) may stand among the rules, as when its
 * output and iptables-save's are kept in one file. They are applied first, as `ipset restore`
 * runs before iptables-restore (a rule can only refer to a set that exists).
 * `ipv4Only`: IPv4 text imported beside IPv6 text (an executed script's iptables-restore and
 * ip6tables-restore): its rules and policies are IPv4's only, as each family's are in a script.
 */
export function importSave(
  source: string,
  draft: PolicyDraft,
  out: Collector,
  family?: "ipv4" | "ipv6",
  hint?: "ipv6",
  ipsetLines = false,
  ipv4Only = false,
): { family?: "ipv4" | "ipv6"; warnings: Diagnostic[] } {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const mixed = mixedSaveHeaders(lines);
  if (mixed) {
    // One family's rules would silently take the other's (and its DROP policies vanish).
    out.note(
      mixed.ipv6,
      lines[mixed.ipv6 - 1]!.trim(),
      "error",
      `the text holds iptables-save output (line ${mixed.ipv4}) and ip6tables-save output (line ${mixed.ipv6}): import each on its own, with family ipv4 and ipv6`,
      { code: "import_conflict" },
    );
    return { warnings: [] };
  }
  // ip6tables-save's rules are IPv6 rules even where no address says so.
  const detected =
    family === undefined
      ? (detectSaveFamily(lines) ?? (hint ? { family: hint, line: -1, why: "the file's name says IPv6" } : undefined))
      : undefined;
  const fam: Family | undefined = (family ?? detected?.family) === "ipv6" ? "ipv6" : ipv4Only ? "ipv4" : undefined;
  let told = false;
  // A trailing newline is not a line of its own.
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  let table: Table | undefined;
  let tableName = "";
  const first = out.entries.length;
  const isIpset = (raw: string) => ipsetLines && isIpsetSaveLine(raw.trim());
  let ipsetSeen = false;
  // The dump's ipset lines as one ipset restore (its -exist flag and batches: ipset.ts).
  const session = ipsetSession();
  // Measured (iptables-restore and ip6tables-restore 1.8.9, nft and legacy): once `:DNAT - [0:0]`
  // (any target extension's name: TTL, LOG, MASQUERADE, ...) is declared in any table, a later
  // `-j DNAT` in any table of that text jumps to a chain DNAT (`unknown option
  // "--to-destination"`; without options, a table lacking the chain refuses it), also where an
  // earlier line used the target. `-N HL` counts as `:HL -` does (iptables-restore takes `-N HL`
  // then `-j HL`); `-N` of the program's own targets (`-N TTL`, `-N DNAT` in iptables-restore)
  // is refused by applyIptables, so it declares nothing.
  // Each name keeps the line that declared it first, for the error that names it.
  const declared = new Map<string, { line: number; table: Table }>();
  const shadowedJumps: ShadowedJump[] = [];
  const declare = (r: LineResult, line: number) => {
    if (r.target?.kind !== "chain" || r.target.chain.hook !== undefined) return;
    const { iptName, table } = r.target.chain;
    if (!declared.has(iptName)) declared.set(iptName, { line, table });
  };
  lines.forEach((raw, idx) => {
    const text = raw.trim();
    if (!isIpset(raw)) return;
    ipsetSeen = true;
    out.add(idx + 1, text, () => applyIpset(splitSaveWords(text), draft, { restore: true, session }));
  });
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    const text = raw.trim();
    if (isIpset(raw)) return;
    if (text === "") return void out.note(n, text, "skipped", "blank line");
    if (text.startsWith("#")) return void out.note(n, text, "skipped", "comment");
    out.add(n, text, () => {
      if (text.startsWith("*")) {
        const name = text.slice(1).trim();
        if (table) fail("import_syntax", `table ${name} starts before COMMIT ended table ${tableName}`, text);
        tableName = name;
        if (!isTable(name))
          fail("import_unsupported", `table ${name} is not one of filter, nat, mangle, raw, security, rawpost`, name);
        table = name;
        // A family the rules gave away, not the header, is said where the reader looks first.
        if (fam === "ipv6" && detected && detected.line !== 0 && !told) {
          told = true;
          const at = detected.line > 0 ? `line ${detected.line}: ` : "";
          return {
            status: "skipped",
            reason: `start of table ${name}; read as ip6tables-save output (${at}${detected.why}), so every rule and DROP policy is IPv6's only; import with family ipv4 if it is not`,
          };
        }
        return { status: "skipped", reason: `start of table ${name}` };
      }
      if (text === "COMMIT") {
        if (!tableName) fail("import_syntax", "COMMIT without a *table line", text);
        const was = tableName;
        table = undefined;
        tableName = "";
        return { status: "skipped", reason: `end of table ${was}` };
      }
      if (!table)
        fail(
          "import_syntax",
          tableName ? `table ${tableName} is not imported` : "rule outside a *table section",
          text.split(/\s+/)[0],
        );
      if (text.startsWith(":")) {
        const r = chainHeader(text, table, draft, n, fam);
        declare(r, n);
        return r;
      }
      const words = splitSaveWords(text.replace(/^\[\d+:\d+\]\s*/, ""));
      const r = applyIptables(words, {
        draft,
        line: n,
        table,
        declaredChains: declared,
        shadowedJumps,
        ...(fam ? { family: fam } : {}),
        ...((family ?? detected?.family) === "ipv4" ? { ipv4Program: true } : {}),
      });
      // A `-N NAME` line (its result is the new user chain).
      declare(r, n);
      return r;
    });
  });
  if (table)
    out.note(
      lines.length,
      "",
      "error",
      `table ${tableName} has no COMMIT: its lines are imported, but iptables-restore would reject the file`,
      { code: "import_syntax" },
    );
  // The ipset lines went first: the report is in line order (sort is stable). Written back
  // element by element: spreading 100k entries as call arguments overflows the stack.
  if (ipsetSeen) {
    const sorted = out.entries.slice(first).sort((a, b) => a.line - b.line);
    for (let i = 0; i < sorted.length; i++) out.entries[first + i] = sorted[i]!;
  }
  const warnings = shadowedJumps.flatMap((j) => {
    const old = headerOlderThan(lines, j.line, SHADOWING_SINCE);
    return old ? [oldDumpWarning(j, old)] : [];
  });
  return { family: fam ?? "ipv4", warnings };
}

/** iptables 1.8.8 made a declared chain shadow the target of its name (above). */
const SHADOWING_SINCE = [1, 8, 8];

/**
 * A dump an older iptables wrote: it loaded `-j LOG` after `:LOG -` as the LOG target (the chain
 * was reached only by -g), which the import, reading it as 1.8.8 and later do, makes a jump.
 */
function oldDumpWarning(j: ShadowedJump, header: SaveHeader): Diagnostic {
  const { line, name, declared } = j;
  return warning(
    ["source", "line", line],
    "old_dump_chain_shadows_target",
    `line ${line}: -j ${name} is imported as a jump to the chain ${name} that line ${declared} declared, as iptables 1.8.8 and later read it; the header (line ${header.line}) says ${header.writer} wrote this dump, and iptables before 1.8.8 read -j ${name} as the ${name} target, so that host ran the target here. To import the target, rename the chain ${name} in the dump (its :${name} line, its -A ${name} rules and any -g ${name}) and import again; if the jump is meant, keep it`,
  );
}

function chainHeader(text: string, table: Table, draft: PolicyDraft, line: number, family?: Family) {
  const [name, policy] = splitSaveWords(text.slice(1));
  if (!name || !policy) fail("import_syntax", "a chain line is :NAME POLICY [packets:bytes]", text);
  if (policy === "-") {
    // Measured, 1.8.9: iptables-restore takes `:DNAT -` (any extension's name) but not a verdict's.
    if (STANDARD_TARGETS.has(name))
      fail(
        "import_conflict",
        `iptables-restore refuses a chain named ${name}: chain name may not clash with target name (the legacy build: error creating chain '${name}': File exists)`,
        name,
      );
    const { chain, renamed } = draft.newUserChain(table, name);
    return {
      status: "imported" as const,
      target: { kind: "chain" as const, chain },
      reason: renamed ? `chain ${name} is named ${renamed} in the policy` : undefined,
    };
  }
  const chain = draft.find(table, name) ?? draft.chain(table, name);
  if (!chain.hook)
    fail("import_syntax", `${name} is not a builtin chain of table ${table}, so it cannot have a policy`, name);
  if (policy !== "ACCEPT" && policy !== "DROP")
    fail("import_invalid_value", `a chain policy is ACCEPT or DROP, not ${policy}`, policy);
  // ip6tables-save: the policy is IPv6's only (the inet chain also carries IPv4), settled at the
  // end; so is an IPv4 text's imported beside IPv6 text.
  if (family) {
    const fam = draft.familyPolicies.get(chain) ?? {};
    fam[family] = policy === "DROP" ? "drop" : "accept";
    draft.familyPolicies.set(chain, fam);
    if (policy === "DROP") return { status: "imported" as const, target: { kind: "chain" as const, chain } };
  }
  if (!family) draft.noteFamilyNeutral(chain, line);
  // ACCEPT is what a base chain does without a policy: keep the document minimal.
  if (policy === "DROP") {
    chain.policy = "drop";
    draft.ipv4PolicyDrops.set(chain, { line, text: `:${name} DROP` });
  } else if (chain.rules.length === 0 && chain.policy === undefined) chain.headerOnly = true;
  return { status: "imported" as const, target: { kind: "chain" as const, chain } };
}
