// The shell-like tokenizer of firewall scripts: quotes, continuations, comments, variables,
// `;`, field splitting, and the shell syntax it reports instead of running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lexScript } from "../../../src/engine/import/lexer.ts";

const words = (src: string, vars: Record<string, string> = {}) => lexScript(src, vars).commands.map((c) => c.words);

test("words, single and double quotes, backslash escapes", () => {
  assert.deepEqual(words(`iptables -A INPUT -j LOG --log-prefix "Port scan: " -m comment --comment 'a "b" c'`), [
    ["iptables", "-A", "INPUT", "-j", "LOG", "--log-prefix", "Port scan: ", "-m", "comment", "--comment", 'a "b" c'],
  ]);
  assert.deepEqual(words(`echo a\\ b "x\\"y" 'z\\'`), [["echo", "a b", 'x"y', "z\\"]]);
  assert.deepEqual(words(`echo ""`), [["echo", ""]]);
});

test("backslash-newline continues a command; the continuation lines are noted", () => {
  const r = lexScript("iptables -A INPUT \\\n    -p tcp \\\n  -j DROP\necho done\n");
  assert.deepEqual(
    r.commands.map((c) => [c.line, c.endLine, c.words]),
    [
      [1, 3, ["iptables", "-A", "INPUT", "-p", "tcp", "-j", "DROP"]],
      [4, 4, ["echo", "done"]],
    ],
  );
  assert.deepEqual(r.notes, [
    { line: 2, kind: "continuation", of: 1 },
    { line: 3, kind: "continuation", of: 1 },
  ]);
  assert.equal(r.lines.length, 4, "a final newline does not add a line");
});

test("comments and blank lines; # inside a word is not a comment", () => {
  const r = lexScript("# heading\n\n  iptables -A INPUT -j DROP # trailing\necho a#b\n");
  assert.deepEqual(
    r.commands.map((c) => c.words),
    [
      ["iptables", "-A", "INPUT", "-j", "DROP"],
      ["echo", "a#b"],
    ],
  );
  assert.deepEqual(r.notes, [
    { line: 1, kind: "comment" },
    { line: 2, kind: "blank" },
  ]);
});

test("; separates commands on one line", () => {
  const r = lexScript("iptables -A FORWARD -j ACCOUNT --addr 0.0.0.0/0 --tname all; iptables -A FORWARD -j DROP;");
  assert.equal(r.commands.length, 2);
  assert.ok(r.commands.every((c) => c.line === 1));
});

test("variables: assignments, $X and ${X}, quoted and unquoted, field splitting, caller-supplied values", () => {
  const src = 'FRIEND=209.81.8.0/24\nIPT="iptables -w"\n$IPT -A INPUT -s ${FRIEND} -j "$TARGET"\nX=\n$X echo "${X}"';
  const r = lexScript(src, { TARGET: "ACCEPT" });
  assert.deepEqual(
    r.commands.map((c) => [c.assignmentOnly, c.words]),
    [
      [true, []],
      [true, []],
      [false, ["iptables", "-w", "-A", "INPUT", "-s", "209.81.8.0/24", "-j", "ACCEPT"]],
      [true, []],
      [false, ["echo", ""]],
    ],
  );
  // Assignments in the script win over the caller's defaults from then on.
  assert.deepEqual(words("A=2\necho $A", { A: "1" })[1], ["echo", "2"]);
});

test("undefined variables are recorded (and expand to nothing, as sh does)", () => {
  const [c] = lexScript("iptables -A INPUT -s $NOPE -j DROP").commands;
  assert.deepEqual(c!.undefinedVars, ["NOPE"]);
  assert.deepEqual(c!.words, ["iptables", "-A", "INPUT", "-s", "-j", "DROP"]);
});

test("shell syntax beyond the subset is reported on its command, never run", () => {
  const cases: Array<[string, string]> = [
    ["iptables -L | grep x", "|"],
    ["true && iptables -F", "&&"],
    ["iptables -A INPUT -s $(cat f) -j DROP", "$("],
    ["iptables -A INPUT -s `cat f` -j DROP", "`"],
    ["iptables -A INPUT -j LOG --log-prefix 'open", "'"],
    ["echo ${A:-x}", "${A:-x}"],
    ["echo $1", "$1"],
  ];
  for (const [src, token] of cases) {
    const c = lexScript(src).commands[0];
    assert.equal(c?.unsupported?.token, token, src);
  }
});

test("CRLF line endings", () => {
  assert.deepEqual(words("iptables -P INPUT DROP\r\niptables -P FORWARD DROP\r\n"), [
    ["iptables", "-P", "INPUT", "DROP"],
    ["iptables", "-P", "FORWARD", "DROP"],
  ]);
});
