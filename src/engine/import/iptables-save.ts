// iptables-save / iptables-restore text: `*table`, `:CHAIN POLICY [packets:bytes]`, rule
// lines (`-A ...`, optionally prefixed by `[p:b]` counters), `COMMIT`, `#` comments.
// This is not shell: no variables; words are split on blanks with "..." quoting as
// iptables-save writes it (backslash escapes `"` and `\` inside quotes).
import { fail } from "./cursor.ts";
import type { Collector } from "./collect.ts";
import { isTable, type Table } from "./chains.ts";
import type { PolicyDraft } from "./draft.ts";
import { applyIptables } from "./iptables.ts";

export function splitSaveWords(text: string): string[] {
  const words: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === " " || c === "\t") {
      if (cur !== null) words.push(cur);
      cur = null;
    } else if (c === '"' || c === "'") {
      cur ??= "";
      let j = i + 1;
      for (; j < text.length && text[j] !== c; j++) {
        if (c === '"' && text[j] === "\\" && j + 1 < text.length) j++;
        cur += text[j];
      }
      if (j >= text.length) fail("import_syntax", `unterminated ${c === '"' ? "double" : "single"} quote`, c);
      i = j;
    } else {
      cur = (cur ?? "") + c;
    }
  }
  if (cur !== null) words.push(cur);
  return words;
}

export function importSave(source: string, draft: PolicyDraft, out: Collector): void {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  // A trailing newline is not a line of its own.
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  let table: Table | undefined;
  let tableName = "";
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    const text = raw.trim();
    if (text === "") return void out.note(n, text, "skipped", "blank line");
    if (text.startsWith("#")) return void out.note(n, text, "skipped", "comment");
    out.add(n, text, () => {
      if (text.startsWith("*")) {
        const name = text.slice(1).trim();
        if (table) fail("import_syntax", `table ${name} starts before COMMIT ended table ${tableName}`, text);
        tableName = name;
        if (!isTable(name)) fail("import_unsupported", `table ${name} is not one of filter, nat, mangle, raw, rawpost`, name);
        table = name;
        return { status: "skipped", reason: `start of table ${name}` };
      }
      if (text === "COMMIT") {
        if (!tableName) fail("import_syntax", "COMMIT without a *table line", text);
        const was = tableName;
        table = undefined;
        tableName = "";
        return { status: "skipped", reason: `end of table ${was}` };
      }
      if (!table) fail("import_syntax", tableName ? `table ${tableName} is not imported` : "rule outside a *table section", text.split(/\s+/)[0]);
      if (text.startsWith(":")) return chainHeader(text, table, draft);
      const words = splitSaveWords(text.replace(/^\[\d+:\d+\]\s*/, ""));
      return applyIptables(words, { draft, line: n, table });
    });
  });
  if (table) out.note(lines.length, "", "error", `table ${tableName} has no COMMIT: its lines are imported, but iptables-restore would reject the file`, { code: "import_syntax" });
}

function chainHeader(text: string, table: Table, draft: PolicyDraft) {
  const [name, policy] = splitSaveWords(text.slice(1));
  if (!name || !policy) fail("import_syntax", "a chain line is :NAME POLICY [packets:bytes]", text);
  if (policy === "-") {
    const { chain, renamed } = draft.newUserChain(table, name);
    return { status: "imported" as const, target: { kind: "chain" as const, chain }, reason: renamed ? `chain ${name} is named ${renamed} in the policy` : undefined };
  }
  const chain = draft.find(table, name) ?? draft.chain(table, name);
  if (!chain.hook) fail("import_syntax", `${name} is not a builtin chain of table ${table}, so it cannot have a policy`, name);
  if (policy !== "ACCEPT" && policy !== "DROP") fail("import_invalid_value", `a chain policy is ACCEPT or DROP, not ${policy}`, policy);
  // ACCEPT is what a base chain does without a policy: keep the document minimal.
  if (policy === "DROP") chain.policy = "drop";
  else if (chain.rules.length === 0 && chain.policy === undefined) chain.headerOnly = true;
  return { status: "imported" as const, target: { kind: "chain" as const, chain } };
}
