// A small lexer for nft's text syntax: enough to find statement boundaries, quoted
// strings, comments and braces. The serializer uses it to prove that a rule body or a
// set element is exactly one statement; the agent's statement reader splits ruleset text
// with it (the driver's guard has its own, stricter scanner: it refuses any backslash,
// where this lexer follows a backslash-newline continuation). It mirrors nft 1.0.6's scanner where that matters for safety:
// quoted strings are `"[^"]*"` (no escapes), `#` starts a comment outside quotes,
// and a backslash before a newline continues the line.

export type TokenKind = "word" | "string" | "lbrace" | "rbrace" | "semicolon" | "comma" | "newline";

export interface Token {
  kind: TokenKind;
  text: string;
  /** 1-based line and column of the token's first character. */
  line: number;
  col: number;
}

export interface LexResult {
  tokens: Token[];
  /** `#` comments seen outside quotes (the serializer never writes any). */
  comments: number;
  /** Backslash-newline line continuations seen outside quotes. */
  continuations: number;
  /** Set when a quoted string runs to the end of the input. */
  unterminated?: { line: number; col: number };
}

const PUNCT: Record<string, TokenKind> = {
  "{": "lbrace",
  "}": "rbrace",
  ";": "semicolon",
  ",": "comma",
  "\n": "newline",
};

export function lex(text: string): LexResult {
  const tokens: Token[] = [];
  let comments = 0;
  let continuations = 0;
  let line = 1;
  let col = 1;
  let i = 0;
  const n = text.length;
  const advance = (k: number) => {
    for (let j = 0; j < k; j++) {
      if (text[i] === "\n") {
        line++;
        col = 1;
      } else col++;
      i++;
    }
  };
  while (i < n) {
    const c = text[i]!;
    if (c === "\\" && text[i + 1] === "\n") {
      continuations++;
      advance(2);
      continue;
    }
    if (c === " " || c === "\t" || c === "\r" || c === "\v" || c === "\f") {
      advance(1);
      continue;
    }
    if (c === "#") {
      comments++;
      while (i < n && text[i] !== "\n") advance(1);
      continue;
    }
    const punct = PUNCT[c];
    if (punct) {
      tokens.push({ kind: punct, text: c, line, col });
      advance(1);
      continue;
    }
    if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) return { tokens, comments, continuations, unterminated: { line, col } };
      tokens.push({ kind: "string", text: text.slice(i, end + 1), line, col });
      advance(end + 1 - i);
      continue;
    }
    const start = i;
    const tl = line;
    const tc = col;
    while (i < n) {
      const d = text[i]!;
      if (d === " " || d === "\t" || d === "\r" || d === "\v" || d === "\f" || d === "#" || d === '"' || PUNCT[d])
        break;
      if (d === "\\" && text[i + 1] === "\n") break;
      advance(1);
    }
    tokens.push({ kind: "word", text: text.slice(start, i), line: tl, col: tc });
  }
  return { tokens, comments, continuations };
}

/**
 * Why `text` is not a single nft statement fragment (a rule body, an element), or
 * undefined when it is: no statement separators, no comments, balanced braces, no
 * `$variables`, every quote closed.
 */
export function singleStatementProblem(text: string): string | undefined {
  return plainStatement(text) ? undefined : lexedStatementProblem(text);
}

/**
 * A quick proof that lexedStatementProblem finds nothing in `text` (false proves nothing).
 * The serializer checks every rule body, and the lexer, which walks them a character at a
 * time, was a third of a small policy's render, cold, in a one-shot `palisade render`.
 * Without control characters and with no '#' outside quotes, the lexer pairs quotes as
 * the regex below does, and its words are what lies between spaces, braces and commas.
 */
function plainStatement(text: string): boolean {
  if (text.trim().length === 0 || /[\u0000-\u001f\u007f]/.test(text)) return false;
  const outside = text.replace(/"[^"]*"/g, " ");
  if (/[#;$"]/.test(outside)) return false;
  if (outside.split(/[ {},]+/).some((w) => TOP_LEVEL_KEYWORDS.has(w))) return false;
  let depth = 0;
  for (const brace of outside.replace(/[^{}]/g, "")) if ((depth += brace === "{" ? 1 : -1) < 0) return false;
  return depth === 0;
}

const TOP_LEVEL_KEYWORDS = new Set(["include", "define", "redefine", "undefine"]);

/** singleStatementProblem by the lexer alone, token by token (the reference of its quick path). */
export function lexedStatementProblem(text: string): string | undefined {
  if (text.trim().length === 0) return "is empty";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) return "contains a control character (line break, tab...)";
  const r = lex(text);
  if (r.unterminated) return `has an unterminated quoted string at column ${r.unterminated.col}`;
  if (r.comments > 0) return "contains a '#' comment outside quotes";
  let depth = 0;
  for (const t of r.tokens) {
    if (t.kind === "newline") return "contains a line break outside quotes";
    if (t.kind === "semicolon") return "contains ';' outside quotes";
    if (t.kind === "lbrace") depth++;
    if (t.kind === "rbrace" && --depth < 0) return `has an unbalanced '}' at column ${t.col}`;
    if (t.kind === "word" && t.text.includes("$"))
      return `uses a variable (${t.text}); Palisade never emits nft variables`;
    if (t.kind === "word" && TOP_LEVEL_KEYWORDS.has(t.text)) return `contains the top-level keyword '${t.text}'`;
  }
  if (depth !== 0) return "has an unbalanced '{'";
  return undefined;
}
