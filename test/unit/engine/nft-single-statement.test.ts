// singleStatementProblem, the serializer's guard that a rule body or element is one nft
// statement: its quick path (a few regexes) must answer exactly as the lexer does.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lexedStatementProblem, singleStatementProblem } from "../../../src/engine/nft/lex.ts";

// Fragments that matter to the lexer, and plain words, glued in any order.
const PIECE = fc.constantFrom(
  " ",
  "  ",
  "\t",
  "\n",
  "\\\n",
  "\\",
  '"',
  '"a b"',
  '"#;{}$"',
  "#",
  ";",
  "$x",
  "{",
  "}",
  ",",
  "include",
  "define",
  "redefine",
  "undefine",
  "includes",
  "ip",
  "saddr",
  "@office",
  "accept",
  "comment",
  "tcp dport { 22, 80 }",
  "é",
);
const TEXT = fc.array(PIECE, { maxLength: 12 }).map((ps) => ps.join(""));

test("the quick path answers as the lexer for any text", () => {
  fc.assert(
    fc.property(TEXT, (text) => {
      assert.equal(singleStatementProblem(text), lexedStatementProblem(text), JSON.stringify(text));
    }),
    { numRuns: 20_000 },
  );
});

test("rendered rule bodies pass; each kind of problem is still named", () => {
  for (const ok of [
    'ip saddr @office tcp dport 22 accept comment "ssh from the office"',
    'meta l4proto tcp th dport { 22, 80 } counter accept comment "a; b # c { $d"',
    'add element inet palisade bl { 10.0.0.0/8 comment "define" }',
  ])
    assert.equal(singleStatementProblem(ok), undefined, ok);
  const problems: [string, string][] = [
    ["   ", "is empty"],
    ["accept\naccept", "contains a control character (line break, tab...)"],
    ['accept comment "x', "has an unterminated quoted string at column 16"],
    ["accept # x", "contains a '#' comment outside quotes"],
    ["accept; drop", "contains ';' outside quotes"],
    ["tcp dport 22 } accept", "has an unbalanced '}' at column 14"],
    ["tcp dport { 22 accept", "has an unbalanced '{'"],
    ["ip saddr $lan accept", "uses a variable ($lan); Palisade never emits nft variables"],
    ["include x", "contains the top-level keyword 'include'"],
  ];
  for (const [text, problem] of problems) assert.equal(singleStatementProblem(text), problem, text);
});
