import { test } from "node:test";
import assert from "node:assert/strict";
import { tablesTouched } from "../../../src/engine/driver/guard.ts";
import { NftError } from "../../../src/engine/driver/errors.ts";
import { findFullSet, parseNftStderr } from "../../../src/engine/driver/nft.ts";

const refused = (code: string, text: string) =>
  assert.throws(
    () => tablesTouched(text),
    (e: unknown) => e instanceof NftError && e.code === code,
    text,
  );

test("the guard lists the tables of commands and blocks, with nft's default family", () => {
  const text = `add table inet palisade
table ip palisade_nat {
\tchain pre { type nat hook prerouting priority -100; policy accept;
\t\ttcp dport 80 dnat to 192.0.2.1 comment "table inet other { }"
\t}
}
add element inet palisade s { 1.2.3.4,
  5.6.7.8 }
flush set inet palisade s ; delete table palisade_x
add rule inet palisade input tcp dport { 22, 80 } ct state { new, untracked } accept
add rule inet palisade input ip saddr vmap { 192.0.2.1 : drop, 192.0.2.2 : accept } counter
add rule inet palisade input ip saddr { 192.0.2.3 } add @s { ip saddr } comment "x"
`;
  assert.deepEqual(
    tablesTouched(text).map((t) => `${t.family} ${t.name}`),
    [
      "inet palisade",
      "ip palisade_nat",
      "inet palisade",
      "inet palisade",
      "ip palisade_x",
      "inet palisade",
      "inet palisade",
      "inet palisade",
    ],
  );
});

test("foreign tables are refused however they are spelled", () => {
  for (const text of [
    "add table inet other\n",
    "flush table ip filter\n",
    "delete table inet nat\n",
    "table inet palisade { }\ntable inet other { }\n",
    "add table inet palisade ; add table ip other\n",
    "add rule ip filter INPUT accept\n",
    'add table inet "palisade"\n',
    "add table inet palisade-x\n",
    "delete table inet handle 3\n",
    "add chain inet xpalisade c\n",
    "add table inet $t\n",
  ]) {
    refused("foreign_table", text);
  }
});

test("commands the driver never sends are refused", () => {
  for (const text of [
    "flush ruleset\n",
    "list ruleset\n",
    'include "/etc/nftables.conf"\n',
    "define t = other\n",
    "reset counters table inet palisade\n",
    "add table inet palisade # comment hiding things\n",
    "add table inet palisade \\\nadd table ip other\n",
    "add table inet palisade }\n",
    "table inet palisade {\n",
    'add table inet palisade { comment "open\n',
    "{ }\n",
    "table inet palisade { } table inet other { }\n",
    "table inet palisade { } ; table inet other { }\n",
  ]) {
    assert.throws(
      () => tablesTouched(text),
      (e: unknown) => e instanceof NftError && (e.code === "forbidden_command" || e.code === "foreign_table"),
      text,
    );
  }
});

test("nft's stderr is parsed into message and location", () => {
  const stderr = `/dev/stdin:3:18-20: Error: Could not process rule: Numerical result out of range
ip saddr 1.2.3.4 log prefix "aaa"
                 ^^^
`;
  assert.deepEqual(parseNftStderr(stderr), {
    message: "Could not process rule: Numerical result out of range",
    location: { line: 3, column: 18, text: 'ip saddr 1.2.3.4 log prefix "aaa"' },
  });
  assert.deepEqual(parseNftStderr("Error: No such file or directory\nlist table inet nope\n"), {
    message: "No such file or directory",
  });
});

test("a full set is found from the failing line, with its size from the text", () => {
  const text =
    "add table inet palisade\nadd set inet palisade bans { type ipv4_addr ; size 2 ; }\nadd element inet palisade bans { 1.1.1.1, 1.1.1.2, 1.1.1.3 }\n";
  assert.deepEqual(findFullSet(text, { line: 3, column: 40 }), {
    family: "inet",
    table: "palisade",
    set: "bans",
    size: 2,
  });
  const block =
    "table inet palisade {\n\tset bans {\n\t\ttype ipv4_addr\n\t\tsize 7\n\t\telements = { 1.1.1.1,\n1.1.1.2 }\n\t}\n}\n";
  assert.deepEqual(findFullSet(block, { line: 6, column: 1 }), { set: "bans", size: 7 });
});
