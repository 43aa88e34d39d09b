// Words of an iptables-save or `ipset save` line: split on blanks, with "..." quoting as
// both programs write it (backslash escapes `"` and `\` inside double quotes). Not shell.
import { fail } from "./cursor.ts";

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
