// Reads ruleset text (the compiler's statement form `add chain inet palisade x ...` or
// nft's own listing form `table inet palisade { chain x { ... } }`) into top-level
// statements and the named objects each table declares. The planner needs this to
// keep stateful objects alive across an apply instead of deleting and recreating them.
// Lexing is the engine's (src/engine/nft/lex.ts); the driver's guard checks the same text
// with its own stricter scanner before nft sees it.

import { driver, helperProtocolName, nft } from "../../engine/index.ts";

type Token = nft.Token;
import { AgentError } from "../errors.ts";

const FAMILIES: ReadonlySet<string> = new Set(nft.FAMILIES);

export interface Statement {
  /** The statement's exact source text. */
  text: string;
  tokens: Token[];
  verb: string;
  /** "table" for table blocks and table verbs, else the object kind ("rule", "element", "ct helper"...). */
  object: string;
  family: string;
  table: string;
  /** Object name for chain/set/map/counter/quota/ct helper statements. */
  name?: string;
}

export interface TableObjects {
  family: string;
  table: string;
  /** "kind name" for every named object the text declares in this table. */
  objects: Set<string>;
  /**
   * Sets/maps ("kind name") the kernel fills itself: declared with `flags dynamic` or
   * `timeout`. Read from the text because nft 1.0.6's JSON omits the dynamic flag.
   */
  dynamic: Set<string>;
  /** ct helper name -> helperShape() of its type and protocol, where the text gives both. */
  helpers: Map<string, string>;
}

/**
 * One string per kernel helper a ct helper object runs and the layer 3 it serves: "ftp tcp
 * inet" for ftp/tcp and ftp/6 alike. `l3proto`: nft's default is the table's family.
 */
export const helperShape = (type: string, protocol: string, l3proto: string) =>
  `${type} ${helperProtocolName(protocol)} ${l3proto}`;

/**
 * `{ type "ftp" protocol tcp ; l3proto inet ; }` from the brace at `from`: its helperShape(),
 * if type and protocol are given (`family`: the table's, nft's default l3proto).
 */
function helperDecl(tokens: Token[], from: number, family: string): string | undefined {
  let depth = 0;
  let type: string | undefined;
  let protocol: string | undefined;
  let l3proto = family;
  for (let j = from; j < tokens.length; j++) {
    const t = tokens[j]!;
    if (t.kind === "lbrace") depth++;
    else if (t.kind === "rbrace" && --depth === 0) break;
    else if (depth === 1 && t.kind === "word" && t.text === "type" && tokens[j + 1]?.kind === "string")
      type = tokens[j + 1]!.text.slice(1, -1);
    else if (depth === 1 && t.kind === "word" && t.text === "protocol" && tokens[j + 1]?.kind === "word")
      protocol = tokens[j + 1]!.text;
    else if (depth === 1 && t.kind === "word" && t.text === "l3proto" && tokens[j + 1]?.kind === "word")
      l3proto = tokens[j + 1]!.text;
  }
  return type !== undefined && protocol !== undefined ? helperShape(type, protocol, l3proto) : undefined;
}

const DYNAMIC_WORDS = new Set(["dynamic", "timeout"]);

function isDynamicDecl(tokens: Token[], from: number): boolean {
  let depth = 0;
  for (let j = from; j < tokens.length; j++) {
    const t = tokens[j]!;
    if (t.kind === "lbrace") depth++;
    else if (t.kind === "rbrace" && --depth === 0) return false;
    else if (depth === 1 && t.kind === "word" && t.text === "elements") return false;
    else if (depth >= 1 && t.kind === "word" && t.text.split(",").some((w) => DYNAMIC_WORDS.has(w))) return true;
  }
  return false;
}

export const tableKey = (family: string, table: string) => `${family} ${table}`;

function lineOffsets(text: string): number[] {
  const offs = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") offs.push(i + 1);
  return offs;
}

/**
 * Top-level statements, split at newlines and semicolons outside braces. A closing
 * brace does not end a statement: rules carry inline blocks (`ct state { a, b } accept`,
 * `add @set { ip saddr counter } comment "..."`).
 */
export function parseStatements(text: string): Statement[] {
  const r = nft.lex(text);
  if (r.unterminated)
    throw new AgentError("invalid_policy", `ruleset text has an unterminated string at line ${r.unterminated.line}`);
  const offs = lineOffsets(text);
  const at = (t: Token) => offs[t.line - 1]! + t.col - 1;
  const out: Statement[] = [];
  let cur: Token[] = [];
  let depth = 0;
  const end = () => {
    if (cur.length === 0) return;
    const first = cur[0]!;
    const last = cur[cur.length - 1]!;
    out.push(classify(text.slice(at(first), at(last) + last.text.length), cur));
    cur = [];
  };
  for (const t of r.tokens) {
    if (depth === 0 && (t.kind === "newline" || t.kind === "semicolon")) {
      end();
      continue;
    }
    if (t.kind === "lbrace") depth++;
    if (t.kind === "rbrace") depth--;
    cur.push(t);
  }
  end();
  return out;
}

function classify(text: string, tokens: Token[]): Statement {
  const w = tokens.map((t) => t.text);
  let i = 0;
  let verb = "add";
  if (w[0] !== "table") {
    verb = w[0] ?? "";
    i = 1;
  }
  // `add ct helper F T NAME { ... }`: a two-word kind.
  const kind = driver.objectKind(w[i], w[i + 1]);
  const object = kind ?? w[i] ?? "";
  i += kind ? driver.kindWords(kind) : 1;
  let family = "ip";
  if (FAMILIES.has(w[i] ?? "")) family = w[i++]!;
  const table = w[i++] ?? "";
  const st: Statement = { text, tokens, verb, object, family, table };
  if (kind && w[i] !== undefined && w[i] !== "{") st.name = w[i];
  return st;
}

/** `KIND NAME {` at token j of a table block: the object it declares and where its block opens. */
function declarationAt(tk: Token[], j: number): { kind: driver.ObjectKind; name: string; block: number } | undefined {
  const word = (k: number) => (tk[k]?.kind === "word" ? tk[k]!.text : undefined);
  const kind = driver.objectKind(word(j), word(j + 1));
  if (!kind) return undefined;
  const at = j + driver.kindWords(kind);
  const name = word(at);
  return name !== undefined && tk[at + 1]?.kind === "lbrace" ? { kind, name, block: at + 1 } : undefined;
}

function setHelper(t: TableObjects, name: string, shape: string | undefined): void {
  if (shape === undefined) t.helpers.delete(name);
  else t.helpers.set(name, shape);
}

/** Named objects declared per table, from both statement and block forms. */
export function declaredObjects(stmts: Statement[]): Map<string, TableObjects> {
  const out = new Map<string, TableObjects>();
  const get = (f: string, t: string) => {
    const k = tableKey(f, t);
    let v = out.get(k);
    if (!v) out.set(k, (v = { family: f, table: t, objects: new Set(), dynamic: new Set(), helpers: new Map() }));
    return v;
  };
  for (const s of stmts) {
    // `add table X` + `delete table X` (the compiler does this for tables a policy no
    // longer has) leaves no table: only what exists at the end of the text is desired.
    if (s.object === "table" && (s.verb === "delete" || s.verb === "destroy")) {
      out.delete(tableKey(s.family, s.table));
      continue;
    }
    if (s.object === "table" && (s.verb === "add" || s.verb === "create")) {
      const tbl = get(s.family, s.table);
      // Inside a table block: `chain x {`, `set y {`, ... at depth 1.
      let depth = 0;
      const tk = s.tokens;
      for (let j = 0; j < tk.length; j++) {
        const t = tk[j]!;
        if (t.kind === "lbrace") depth++;
        else if (t.kind === "rbrace") depth--;
        else if (depth === 1) {
          const d = declarationAt(tk, j);
          if (!d) continue;
          tbl.objects.add(`${d.kind} ${d.name}`);
          if ((d.kind === "set" || d.kind === "map") && isDynamicDecl(tk, d.block))
            tbl.dynamic.add(`${d.kind} ${d.name}`);
          if (d.kind === "ct helper") setHelper(tbl, d.name, helperDecl(tk, d.block, tbl.family));
        }
      }
    } else if ((s.verb === "add" || s.verb === "create") && s.name !== undefined) {
      const tbl = get(s.family, s.table);
      tbl.objects.add(`${s.object} ${s.name}`);
      if (s.object === "set" || s.object === "map") {
        const at = s.tokens.findIndex((t) => t.kind === "lbrace");
        if (at >= 0 && isDynamicDecl(s.tokens, at)) tbl.dynamic.add(`${s.object} ${s.name}`);
      }
      if (s.object === "ct helper") {
        const at = s.tokens.findIndex((t) => t.kind === "lbrace");
        setHelper(tbl, s.name, at >= 0 ? helperDecl(s.tokens, at, tbl.family) : undefined);
      }
    }
  }
  return out;
}
