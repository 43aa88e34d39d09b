// Shell-like tokenizer for firewall scripts: the subset of sh that such scripts use.
// Quotes ('...' literal, "..." with $-expansion), backslash escapes and backslash-newline
// continuations, `#` comments, `;` between commands, `X=value` assignments and `$X`/`${X}`
// expansion (with field splitting when unquoted, as sh does: `IPT="iptables -w"; $IPT -A ...`).
// Anything beyond that (pipes, `&&`, `$(...)`, backticks) is reported on its command, never run.
// Every loop step consumes at least one character, so the lexer is linear in the input.

/** Where shell the importer cannot follow should go instead: the CLI runs the script in a sandbox. */
export const EXECUTE_HINT =
  "run the script with `palisade import --execute FILE` (CLI only): it runs in a sandbox and its iptables commands are recorded";

export interface LexedCommand {
  /** First and last physical line (1-based) the command spans. */
  line: number;
  endLine: number;
  /** The command's source text, continuations joined. */
  text: string;
  /** Words after quote removal and variable expansion. */
  words: string[];
  /** Variables referenced but never assigned (expanded to nothing, as sh would). */
  undefinedVars: string[];
  /** Shell syntax the importer does not interpret (reported as an error on this command). */
  unsupported?: { token: string; reason: string };
  /** Output redirections (`> file`, `2>&1`, ...): they change where the program prints, not what it does. */
  redirects: string[];
  /** The command only assigned variables (`A=1 B=2`). */
  assignmentOnly: boolean;
}

export type LineKind = "blank" | "comment" | "continuation";
export interface LineNote {
  line: number;
  kind: LineKind;
  /** For continuation lines: the line their command starts on. */
  of?: number;
}

export interface LexResult {
  commands: LexedCommand[];
  /** Physical lines on which no command starts. */
  notes: LineNote[];
  /** The physical lines of the source, for reporting. */
  lines: string[];
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=/;

export function lexScript(source: string, variables: Record<string, string> = {}): LexResult {
  const vars = new Map(Object.entries(variables));
  const src = source.replace(/\r\n?/g, "\n");
  const lines = src.split("\n");
  // A final newline ends the last line; it does not start another one.
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  const commands: LexedCommand[] = [];
  const startedOn = new Set<number>();
  const spanned = new Map<number, number>();
  const commentLines = new Set<number>();

  let i = 0;
  let line = 1;
  // Per-command state.
  let words: string[] = [];
  let cur: string | null = null; // current word (null = between words)
  let curHasAssignment = false;
  let cmdStart = -1;
  let cmdLine = 0;
  let undefinedVars: string[] = [];
  let unsupported: LexedCommand["unsupported"];
  let redirects: string[] = [];
  let pendingAssign: Array<[string, string]> = [];
  let onlyAssignments = true;
  // Raw word text as written, to recognise `NAME=` before quote removal.
  let rawWord = "";

  const startCommand = () => {
    if (cmdStart < 0) {
      cmdStart = i;
      cmdLine = line;
      startedOn.add(line);
    }
  };
  const endWord = () => {
    if (cur === null) return;
    const m = ASSIGNMENT.exec(rawWord);
    if (words.length === 0 && m && curHasAssignment) {
      pendingAssign.push([m[1]!, cur.slice(m[1]!.length + 1)]);
    } else {
      onlyAssignments = false;
      words.push(cur);
    }
    cur = null;
    rawWord = "";
    curHasAssignment = false;
  };
  const endCommand = (endIndex: number) => {
    endWord();
    if (cmdStart >= 0) {
      // Assignments take effect for later commands (prefix assignments `X=1 cmd` too: close enough for firewall scripts).
      for (const [k, v] of pendingAssign) vars.set(k, v);
      const text = src.slice(cmdStart, endIndex).replace(/\\\n/g, " ").trim();
      commands.push({
        line: cmdLine,
        endLine: line,
        text,
        words,
        undefinedVars,
        unsupported,
        redirects,
        assignmentOnly: onlyAssignments && pendingAssign.length > 0,
      });
      for (let l = cmdLine + 1; l <= line; l++) if (!spanned.has(l)) spanned.set(l, cmdLine);
    }
    words = [];
    cur = null;
    rawWord = "";
    cmdStart = -1;
    undefinedVars = [];
    unsupported = undefined;
    redirects = [];
    pendingAssign = [];
    onlyAssignments = true;
  };
  const append = (s: string) => {
    startCommand();
    cur = (cur ?? "") + s;
  };
  /** Expand a variable value; unquoted values split into fields like sh does. */
  const expand = (name: string, quoted: boolean) => {
    startCommand();
    const value = vars.get(name);
    if (value === undefined && !undefinedVars.includes(name)) undefinedVars.push(name);
    const v = value ?? "";
    if (quoted) {
      cur = (cur ?? "") + v;
      return;
    }
    const fields = v.split(/[ \t\n]+/);
    // Leading/trailing whitespace in the value separates fields from the surrounding word.
    fields.forEach((f, idx) => {
      if (idx > 0) endWord();
      if (f !== "") cur = (cur ?? "") + f;
    });
  };
  const markUnsupported = (token: string, reason: string) => {
    startCommand();
    unsupported ??= { token, reason };
  };
  /** Read `$NAME`, `${NAME}`; returns the index after it. `at` points at '$'. */
  const readVar = (at: number, quoted: boolean): number => {
    const next = src[at + 1];
    if (next === "{") {
      const close = src.indexOf("}", at + 2);
      const name = close < 0 ? "" : src.slice(at + 2, close);
      if (close < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        const token = src.slice(at, close < 0 ? Math.min(src.length, at + 20) : close + 1).split("\n")[0]!;
        markUnsupported(token, "only ${NAME} variable expansion is supported");
        append(token);
        return at + Math.max(token.length, 1);
      }
      expand(name, quoted);
      return close + 1;
    }
    if (next !== undefined && NAME_START.test(next)) {
      let j = at + 1;
      while (j < src.length && NAME_CHAR.test(src[j]!)) j++;
      expand(src.slice(at + 1, j), quoted);
      return j;
    }
    if (next === "(") {
      markUnsupported("$(", `command substitution $(...) is not run by the importer; ${EXECUTE_HINT}`);
      append("$(");
      return at + 2;
    }
    if (next !== undefined && /[0-9@*#?$!-]/.test(next)) {
      markUnsupported("$" + next, `positional and special shell parameters are not supported; ${EXECUTE_HINT}`);
      return at + 2;
    }
    append("$");
    return at + 1;
  };

  while (i < src.length) {
    const c = src[i]!;
    if (c === "\n") {
      endCommand(i);
      i++;
      line++;
      continue;
    }
    if (c === " " || c === "\t") {
      endWord();
      i++;
      continue;
    }
    if (c === "#" && cur === null) {
      // A comment runs to the end of the line (a continuation backslash inside it is part of the comment).
      if (cmdStart < 0) commentLines.add(line);
      const nl = src.indexOf("\n", i);
      i = nl < 0 ? src.length : nl;
      continue;
    }
    if (c === ";") {
      endCommand(i);
      i++;
      continue;
    }
    if (c === "\\") {
      if (src[i + 1] === "\n") {
        // Continuation: the command goes on on the next line.
        endWord();
        startCommand();
        i += 2;
        line++;
        continue;
      }
      if (i + 1 < src.length) {
        rawWord += "\\" + src[i + 1];
        append(src[i + 1]!);
        i += 2;
      } else {
        i++;
      }
      continue;
    }
    if (c === "'") {
      const close = src.indexOf("'", i + 1);
      if (close < 0) {
        markUnsupported("'", "unterminated single quote");
        append(src.slice(i + 1));
        i = src.length;
        continue;
      }
      const body = src.slice(i + 1, close);
      rawWord += "'";
      append(body);
      for (const ch of body) if (ch === "\n") line++;
      i = close + 1;
      continue;
    }
    if (c === '"') {
      startCommand();
      rawWord += '"';
      cur ??= "";
      let j = i + 1;
      let closed = false;
      while (j < src.length) {
        const d = src[j]!;
        if (d === '"') {
          closed = true;
          j++;
          break;
        }
        if (d === "\\" && j + 1 < src.length && /[$`"\\\n]/.test(src[j + 1]!)) {
          if (src[j + 1] === "\n") line++;
          else cur += src[j + 1];
          j += 2;
          continue;
        }
        if (d === "$") {
          j = readVar(j, true);
          continue;
        }
        if (d === "`") {
          markUnsupported("`", `command substitution with backticks is not run by the importer; ${EXECUTE_HINT}`);
          j++;
          continue;
        }
        if (d === "\n") line++;
        cur += d;
        j++;
      }
      if (!closed) markUnsupported('"', "unterminated double quote");
      i = j;
      continue;
    }
    if (c === "$") {
      rawWord += "$";
      i = readVar(i, false);
      continue;
    }
    if (c === "`") {
      markUnsupported("`", `command substitution with backticks is not run by the importer; ${EXECUTE_HINT}`);
      append(c);
      i++;
      continue;
    }
    // Output redirection (`>`, `>>`, `2>`, `&>`, `2>&1`): only where the program prints goes
    // elsewhere; the command itself is unchanged, so it is recorded, not refused.
    if (c === ">" || (c === "&" && src[i + 1] === ">")) {
      if (c === ">" && cur !== null && /^\d$/.test(rawWord) && cur === rawWord) {
        cur = null; // `2>`: the digit is the descriptor, not a word of the command
        rawWord = "";
      }
      startCommand();
      endWord();
      let j = i + (c === "&" ? 2 : 1);
      if (src[j] === ">") j++;
      let target = "";
      if (src[j] === "&") {
        j++;
        while (j < src.length && /[\d-]/.test(src[j]!)) target += src[j++];
        target = `&${target}`;
      } else {
        while (src[j] === " " || src[j] === "\t") j++;
        while (j < src.length && !/[\s;&|<>()]/.test(src[j]!)) target += src[j++];
      }
      if (target === "" || target.includes("$") || /["'`]/.test(target))
        markUnsupported(">", "a redirection without a plain file name is not supported");
      redirects.push(target);
      i = j;
      continue;
    }
    if (c === "|" || c === "&" || c === "<" || c === ">" || c === "(" || c === ")") {
      const two = src.slice(i, i + 2);
      const token = two === "&&" || two === "||" || two === ">>" || two === "2>" ? two : c;
      markUnsupported(
        token,
        `shell operator '${token}' is not supported: write one firewall command per line, or ${EXECUTE_HINT}`,
      );
      endWord();
      i += token.length;
      continue;
    }
    if (c === "=" && cur !== null && words.length === 0 && ASSIGNMENT.test(rawWord + "=")) curHasAssignment = true;
    rawWord += c;
    append(c);
    i++;
  }
  endCommand(src.length);

  const notes: LineNote[] = [];
  lines.forEach((text, idx) => {
    const n = idx + 1;
    if (startedOn.has(n)) return;
    const of = spanned.get(n);
    if (of !== undefined) notes.push({ line: n, kind: "continuation", of });
    else if (commentLines.has(n) || /^\s*#/.test(text)) notes.push({ line: n, kind: "comment" });
    else notes.push({ line: n, kind: "blank" });
  });
  return { commands, notes, lines };
}
