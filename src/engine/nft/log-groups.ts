// The NFLOG groups a ruleset text logs to: every `log ... group N` statement, in the
// compiler's form and in `nft list` form. The agent reads exactly these groups (one
// tcpdump each), so it follows what the kernel holds after every apply and rollback.
// Quoted strings (prefixes, comments) are tokens of their own, so a prefix containing
// "group 9" is never taken for a group.

import { lex, type Token } from "./lex.ts";

/** Options of the log statement and how many words each takes (flags: a list). */
const LOG_OPTIONS: Record<string, number> = { prefix: 1, level: 1, group: 1, snaplen: 1, "queue-threshold": 1 };
const LOG_FLAGS = new Set(["all", "tcp", "ip", "sequence", "options", "skuid", "ether"]);

/** Sorted, distinct NFLOG groups of every `log ... group N` in `text`. */
export function nflogGroups(text: string): number[] {
  const tokens = lex(text).tokens;
  const groups = new Set<number>();
  const word = (t: Token | undefined, w?: string) =>
    t !== undefined && t.kind === "word" && (w === undefined || t.text === w);
  for (let i = 0; i < tokens.length; i++) {
    // `jump log` / `goto log` name a chain; `@log` is a set reference (a different word).
    if (
      !word(tokens[i], "log") ||
      word(tokens[i - 1], "jump") ||
      word(tokens[i - 1], "goto") ||
      word(tokens[i - 1], "chain")
    )
      continue;
    let j = i + 1;
    for (;;) {
      const t = tokens[j];
      if (t?.kind !== "word") break;
      if (t.text === "flags") {
        j++;
        while (
          tokens[j] &&
          ((tokens[j]!.kind === "word" && LOG_FLAGS.has(tokens[j]!.text)) || tokens[j]!.kind === "comma")
        )
          j++;
        continue;
      }
      const n = LOG_OPTIONS[t.text];
      if (n === undefined) break;
      const v = tokens[j + 1];
      if (t.text === "group" && v?.kind === "word" && /^\d{1,5}$/.test(v.text) && Number(v.text) <= 65535)
        groups.add(Number(v.text));
      j += 1 + n;
    }
  }
  return [...groups].sort((a, b) => a - b);
}
