// Before any text reaches `nft -f`, the driver reads every top-level statement and
// refuses the text unless each one names a table whose name starts with "palisade".
// This is the last line of defence: a compiler bug, a hand-written snapshot or a
// poisoned string can never flush, delete or add to a foreign table (or the whole
// ruleset). The check is deliberately stricter than nft: anything it does not
// recognise is refused.

import { lex, type Token } from "../nft/lex.ts";
import { FAMILIES, type Family } from "../nft/names.ts";
import { NftError } from "./errors.ts";

const VERBS = new Set(["add", "create", "insert", "replace", "delete", "destroy", "flush", "rename"]);
const OBJECTS = new Set(["table", "chain", "rule", "set", "map", "element", "counter", "quota", "flowtable"]);
/** A Palisade table name as nft will read it: one plain word. */
const PALISADE_NAME = /^palisade[A-Za-z0-9_]{0,55}$/;

export interface TouchedTable {
  family: Family;
  name: string;
  /** Line of the statement, 1-based. */
  line: number;
}

function statements(tokens: Token[]): Token[][] {
  const out: Token[][] = [];
  let cur: Token[] = [];
  let depth = 0;
  const end = () => {
    if (cur.length > 0) out.push(cur);
    cur = [];
  };
  for (const t of tokens) {
    if (depth === 0 && (t.kind === "newline" || t.kind === "semicolon")) {
      end();
      continue;
    }
    if (t.kind === "lbrace") depth++;
    cur.push(t);
    if (t.kind === "rbrace") {
      depth--;
      if (depth < 0) throw forbidden(t, "has an unbalanced '}'");
      // A block closes a statement: `table a { } table b { }` is two statements to us.
      if (depth === 0) end();
    }
  }
  if (depth !== 0) throw new NftError("forbidden_command", "ruleset text has an unclosed '{'");
  end();
  return out;
}

function forbidden(t: Token, why: string): NftError {
  return new NftError("forbidden_command", `ruleset text line ${t.line} ${why}; the driver only sends statements on Palisade's own tables`, {
    location: { line: t.line, column: t.col },
  });
}

/**
 * Every table the text touches, in order. Throws NftError "foreign_table" for a table
 * not named palisade*, "forbidden_command" for anything else it cannot vouch for
 * (flush ruleset, include, define, variables, backslashes, handles in table position).
 */
export function tablesTouched(text: string): TouchedTable[] {
  const r = lex(text);
  if (r.unterminated) {
    throw new NftError("forbidden_command", `ruleset text has an unterminated quoted string at line ${r.unterminated.line}`);
  }
  // Neither the serializer nor `nft list` writes these; refusing them keeps the
  // statement boundaries we see identical to the ones nft sees.
  if (r.comments > 0) throw new NftError("forbidden_command", "ruleset text contains a '#' comment; Palisade never writes one");
  if (r.continuations > 0 || r.tokens.some((t) => t.kind === "word" && t.text.includes("\\"))) {
    throw new NftError("forbidden_command", "ruleset text contains a backslash outside quotes; Palisade never writes one");
  }
  const touched: TouchedTable[] = [];
  for (const st of statements(r.tokens)) {
    const first = st[0]!;
    if (first.kind !== "word") throw forbidden(first, `starts with '${first.text}'`);
    let i = 0;
    let object: string;
    if (first.text === "table") {
      object = "table";
      i = 1;
    } else if (VERBS.has(first.text)) {
      const obj = st[1];
      if (!obj || obj.kind !== "word" || !OBJECTS.has(obj.text)) {
        throw forbidden(first, `uses '${first.text} ${obj?.text ?? ""}', which the driver does not send`);
      }
      object = obj.text;
      i = 2;
    } else {
      throw forbidden(first, `uses '${first.text}', which the driver does not send`);
    }
    let fam: Family = "ip"; // nft's default family when none is written
    const f = st[i];
    if (f && f.kind === "word" && (FAMILIES as readonly string[]).includes(f.text)) {
      fam = f.text as Family;
      i++;
    }
    const name = st[i];
    if (!name) throw forbidden(first, `names no table in '${object}'`);
    if (name.kind !== "word" || !PALISADE_NAME.test(name.text)) {
      throw new NftError(
        "foreign_table",
        `ruleset text line ${name.line} touches table ${JSON.stringify(name.text)}, which is not a Palisade table; only tables named palisade* may be changed`,
        { table: name.text, location: { line: name.line, column: name.col } },
      );
    }
    touched.push({ family: fam, name: name.text, line: first.line });
  }
  return touched;
}

/** Throw unless every statement of `text` is about a palisade* table. */
export function assertPalisadeOnly(text: string): TouchedTable[] {
  return tablesTouched(text);
}
