// Before any text reaches `nft -f`, the driver reads every top-level statement and
// refuses the text unless each one names a table whose name starts with "palisade".
// This is the last line of defence: a compiler bug, a hand-written snapshot or a
// poisoned string can never flush, delete or add to a foreign table (or the whole
// ruleset). The check is deliberately stricter than nft: anything it does not
// recognise is refused.

import { FAMILIES, type Family } from "../nft/names.ts";
import { NftError } from "./errors.ts";
import { kindWords, OBJECT_KINDS, objectKind, ONE_WORD_KINDS } from "./object-kinds.ts";

const VERBS = new Set(["add", "create", "insert", "replace", "delete", "destroy", "flush", "rename"]);
/** What a verb acts on, besides the objects a table declares. */
const NOT_DECLARED = ["table", "rule", "element"];
/** The objects written as one word (all but `ct helper`): PLAIN_LINE's, and the word after a verb. */
const OBJECTS = new Set([...NOT_DECLARED, ...ONE_WORD_KINDS]);
/** A Palisade table name as nft will read it: one plain word. */
const PALISADE_NAME = /^palisade[A-Za-z0-9_]{0,55}$/;

export interface TouchedTable {
  family: Family;
  name: string;
  /** Line of the statement, 1-based. */
  line: number;
}

interface Word {
  text: string;
  line: number;
  col: number;
  quoted: boolean;
}

function forbiddenAt(line: number, col: number, why: string): NftError {
  return new NftError(
    "forbidden_command",
    `ruleset text line ${line} ${why}; the driver only sends statements on Palisade's own tables`,
    {
      location: { line, column: col },
    },
  );
}

// One pass over the text with charCodeAt and no token objects inside braces: a 1M-element
// set (13 MB of text) is checked in well under 100 ms. Statements end where nft ends them:
// at a newline or ';' outside braces. Only the first HEAD_WORDS words of a statement are
// collected (all tablesTouched reads): after them, and inside a `{ }` block, the scan jumps
// with a native regex search to the next character that can end a statement, open a string
// or a block, or is refused; words cannot. The agent applies shortly after a start or hours
// after its last apply, when this code runs cold in the interpreter: stepping through every
// character of a rule line then cost ~0.5 µs a character (27 ms for a 55 KB text, 60-80 ms
// for 10k rules), most of the agent's own CPU in an apply.
const NL = 10,
  SEMI = 59,
  QUOTE = 34,
  HASH = 35,
  BSLASH = 92,
  LBRACE = 123,
  RBRACE = 125,
  COMMA = 44;
/**
 * Verb, object (`ct helper` is two words), family, table; or `table`, family, name and more
 * (refused).
 */
const HEAD_WORDS = 3 + Math.max(...OBJECT_KINDS.map(kindWords));
const IN_BLOCK = /["#\\{}\n]/g;
const AFTER_HEAD = /["#\\{};\n]/g;
const WORD = /[^\n \t\r\v\f;"#\\{},]+/y;
/**
 * A whole line that is one plain statement on a named Palisade table: verb, object, family
 * and table separated by single spaces, then anything but a brace, ';', '#' or a backslash,
 * with quoted strings closed on the line. Every rule line the compiler writes is one; for
 * these the scan's answer is known (that table, on this line), so one native match replaces
 * the word-by-word walk: 10k rule lines are 10k matches instead of ~150k loop turns.
 */
const PLAIN_LINE = new RegExp(
  `(?:${[...VERBS].join("|")}) (?:${[...OBJECTS].join("|")}) (${FAMILIES.join("|")}) (palisade[A-Za-z0-9_]{0,55})(?:[ ,][^\\n"#\\\\{};]*(?:"[^"\\n]*"[^\\n"#\\\\{};]*)*)?\\n`,
  "y",
);
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 11 || c === 12;
}

/**
 * The plain lines from `i` on (PLAIN_LINE), one table each; returns where the first other line
 * starts. A function of its own: the loop that is hot for 10k rules stays small and sees the
 * same types for every text, so V8 keeps its optimized code from one apply to the next, and
 * scan, which only walks the other lines, does not get hot.
 */
function plainLines(text: string, i: number, line: number, touched: TouchedTable[]): number {
  for (;;) {
    PLAIN_LINE.lastIndex = i;
    const m = PLAIN_LINE.exec(text);
    if (!m) return i;
    touched.push({ family: m[1] as Family, name: m[2]!, line: line++ });
    i = PLAIN_LINE.lastIndex;
  }
}

// No callbacks (the statement check is called by name, begin/end are written out): a closure
// passed per call made V8 drop scan's optimized code at every apply ("wrong call target") and
// compile it again on its threads, ~8 ms of CPU an apply.
function scan(text: string, touched: TouchedTable[]): void {
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  let words: Word[] = [];
  let started = false;
  /** The statement's block has closed and ends the command (not a rule's anonymous set): only a newline or ';' may follow. */
  let ended = false;
  let stmtLine = 1;
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (i === lineStart && depth === 0 && !started) {
      const before = touched.length;
      i = plainLines(text, i, line, touched);
      if (touched.length > before) {
        line += touched.length - before;
        lineStart = i;
        continue;
      }
    }
    const c = text.charCodeAt(i);
    if (c === NL) {
      if (depth === 0 && started) {
        touched.push(statementTable(words, stmtLine));
        words = [];
        started = false;
        ended = false;
      }
      line++;
      lineStart = ++i;
      continue;
    }
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (ended && c !== SEMI) throw afterBlock(text, i, line, lineStart);
    if (c === QUOTE) {
      const close = text.indexOf('"', i + 1);
      if (close < 0)
        throw new NftError("forbidden_command", `ruleset text has an unterminated quoted string at line ${line}`);
      if (depth === 0) {
        if (!started) {
          started = true;
          stmtLine = line;
        }
        if (words.length < HEAD_WORDS)
          words.push({ text: text.slice(i, close + 1), line, col: i - lineStart + 1, quoted: true });
      }
      for (let k = text.indexOf("\n", i + 1); k >= 0 && k < close; k = text.indexOf("\n", k + 1)) {
        line++;
        lineStart = k + 1;
      }
      i = close + 1;
      continue;
    }
    // Neither the serializer nor `nft list` writes these; refusing them keeps the
    // statement boundaries we see identical to the ones nft sees.
    if (c === HASH) throw forbiddenAt(line, i - lineStart + 1, "contains a '#' comment; Palisade never writes one");
    if (c === BSLASH)
      throw forbiddenAt(line, i - lineStart + 1, "contains a backslash outside quotes; Palisade never writes one");
    if (c === LBRACE) {
      if (!started) {
        started = true;
        stmtLine = line;
      }
      depth++;
      i++;
      continue;
    }
    if (c === RBRACE) {
      depth--;
      if (depth < 0) throw forbiddenAt(line, i - lineStart + 1, "has an unbalanced '}'");
      if (depth === 0) ended = blockEndsCommand(words);
      i++;
      continue;
    }
    if (depth > 0) {
      // Jump to the next character that matters inside a block (native regex search).
      IN_BLOCK.lastIndex = i;
      i = IN_BLOCK.exec(text)?.index ?? n;
      continue;
    }
    if (c === SEMI) {
      if (started) {
        touched.push(statementTable(words, stmtLine));
        words = [];
        started = false;
        ended = false;
      }
      i++;
      continue;
    }
    if (words.length >= HEAD_WORDS) {
      // The statement has begun and its head is read: the rest of its words change nothing.
      AFTER_HEAD.lastIndex = i;
      i = AFTER_HEAD.exec(text)?.index ?? n;
      continue;
    }
    if (!started) {
      started = true;
      stmtLine = line;
    }
    if (c === COMMA) {
      i++;
      continue;
    }
    WORD.lastIndex = i;
    WORD.test(text);
    words.push({ text: text.slice(i, WORD.lastIndex), line, col: i - lineStart + 1, quoted: false });
    i = WORD.lastIndex;
  }
  if (depth !== 0) throw new NftError("forbidden_command", "ruleset text has an unclosed '{'");
  if (started) touched.push(statementTable(words, stmtLine));
}

/**
 * Whether a statement ends with its block: a table block or a command on a table, chain, set,
 * map, element, counter, quota or flowtable. nft's grammar has nothing after those blocks (it
 * ends a command only at a newline or ';'), while a rule's block is an anonymous set or map
 * that words may follow (`tcp dport { 22, 80 } accept`).
 */
function blockEndsCommand(words: Word[]): boolean {
  const first = words[0];
  if (!first || first.quoted) return false;
  if (first.text === "table") return true;
  return VERBS.has(first.text) && words[1] !== undefined && words[1].text !== "rule";
}

function afterBlock(text: string, i: number, line: number, lineStart: number): NftError {
  WORD.lastIndex = i;
  const what = WORD.test(text) ? text.slice(i, WORD.lastIndex) : text[i]!;
  return forbiddenAt(
    line,
    i - lineStart + 1,
    `has '${what}' after the '}' that ends its block; only a newline or ';' may end such a command`,
  );
}

/**
 * Every table the text touches, in order. Throws NftError "foreign_table" for a table
 * not named palisade*, "forbidden_command" for anything else it cannot vouch for
 * (flush ruleset, include, define, backslashes, handles in table position). A `$variable`
 * in a rule body is nft's to refuse: nothing can define one.
 */
export function tablesTouched(text: string): TouchedTable[] {
  const touched: TouchedTable[] = [];
  scan(text, touched);
  return touched;
}

/** The table one statement names (its first words), or the refusal. */
function statementTable(st: Word[], line: number): TouchedTable {
  const first = st[0];
  if (!first || first.quoted) throw forbiddenAt(line, first?.col ?? 1, `starts with '${first?.text ?? "{"}'`);
  let i: number;
  let object: string;
  if (first.text === "table") {
    object = "table";
    i = 1;
    // nft ends a command only at a newline or ';' (a `}` does not), and refuses
    // `table a { } table b { }` as a syntax error. We refuse any word after the
    // table's name too, so no second command can hide behind a block.
    const extra = st.length - (st[1] && (FAMILIES as readonly string[]).includes(st[1].text) ? 3 : 2);
    if (extra > 0)
      throw forbiddenAt(line, first.col, "has words after a table block; put each command on its own line");
  } else if (VERBS.has(first.text)) {
    const obj = st[1];
    // `delete ct helper F T NAME`: the agent deletes a helper object a version no longer declares.
    const next = st[2]?.quoted ? undefined : st[2]?.text;
    const kind = obj && !obj.quoted ? objectKind(obj.text, next) : undefined;
    if (!obj || obj.quoted || (!OBJECTS.has(obj.text) && !kind)) {
      throw forbiddenAt(line, first.col, `uses '${first.text} ${obj?.text ?? ""}', which the driver does not send`);
    }
    object = kind ?? obj.text;
    i = 1 + (kind ? kindWords(kind) : 1);
  } else {
    throw forbiddenAt(line, first.col, `uses '${first.text}', which the driver does not send`);
  }
  let fam: Family = "ip"; // nft's default family when none is written
  const f = st[i];
  if (f && !f.quoted && (FAMILIES as readonly string[]).includes(f.text)) {
    fam = f.text as Family;
    i++;
  }
  const name = st[i];
  if (!name) throw forbiddenAt(line, first.col, `names no table in '${object}'`);
  if (name.quoted || !PALISADE_NAME.test(name.text)) {
    throw new NftError(
      "foreign_table",
      `ruleset text line ${name.line} touches table ${JSON.stringify(name.text)}, which is not a Palisade table; only tables named palisade* may be changed`,
      { table: name.text, location: { line: name.line, column: name.col } },
    );
  }
  return { family: fam, name: name.text, line };
}

/** Throw unless every statement of `text` is about a palisade* table. */
export function assertPalisadeOnly(text: string): TouchedTable[] {
  return tablesTouched(text);
}
