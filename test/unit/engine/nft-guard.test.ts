import { test } from "node:test";
import assert from "node:assert/strict";
import { tablesTouched } from "../../../src/engine/driver/guard.ts";
import { NftError } from "../../../src/engine/driver/errors.ts";
import { featureRefusal, findFullSet, parseNftStderr } from "../../../src/engine/driver/nft.ts";

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

test("nothing may follow the block that ends a table, chain, set, element, counter, quota or flowtable command", () => {
  // nft ends a command only at a newline or ';', and its grammar has nothing after such a
  // block; the guard is exact about it rather than leaving it to nft's syntax error.
  for (const [text, col] of [
    ["table inet palisade { } foo\n", 25],
    ["table inet palisade { } , \n", 25],
    ["table inet palisade { }{ }\n", 24],
    ['table inet palisade { } "x"\n', 25],
    ["add table inet palisade { flags dormant; } foo\n", 44],
    ["add chain inet palisade c { type filter hook input priority 0; } accept\n", 66],
    ["add set inet palisade s { type ipv4_addr; } delete table ip filter\n", 45],
    ["add element inet palisade s { 1.2.3.4 } 5.6.7.8\n", 41],
    ["delete element inet palisade s { 1.2.3.4 },\n", 43],
    ["add counter inet palisade c { packets 0 bytes 0 } x\n", 51],
    ["add quota inet palisade q { 5 bytes } { }\n", 39],
    ["create set inet palisade s {\n type ipv4_addr\n} x\n", 3],
  ] as const) {
    assert.throws(
      () => tablesTouched(text),
      (e: unknown) =>
        e instanceof NftError &&
        e.code === "forbidden_command" &&
        /after the '}' that ends its block/.test(e.message) &&
        e.location?.column === col,
      text,
    );
  }
  // A rule's block (an anonymous set or map) is one part of the rule: words may follow it.
  assert.deepEqual(
    tablesTouched(
      "add rule inet palisade c tcp dport { 22, 80 } accept\ninsert rule inet palisade c ip saddr vmap { 192.0.2.1 : drop } counter\nadd set inet palisade s { type ipv4_addr; } ; add element inet palisade s { 1.2.3.4 }  \n",
    ).map((t) => t.line),
    [1, 2, 3, 3],
  );
});

test("after a statement's first words the guard still finds what ends or hides a statement", () => {
  // The scan stops reading words after a statement's head (verb, object, family, table) and
  // jumps to the next character that matters: these all sit after a head.
  for (const text of [
    "add rule inet palisade c ip saddr 1.2.3.4 accept # flush ruleset\n",
    "add rule inet palisade c ip saddr 1.2.3.4 accept \\\nadd table ip other\n",
    "add rule inet palisade c accept }\n",
    "add rule inet palisade c accept ; add rule ip filter INPUT accept\n",
    'add rule inet palisade c accept comment "x\ny" ; delete table ip filter\n',
    "add rule inet palisade c tcp dport { 22,\n80 } accept\nflush table ip filter\n",
    "add rule inet palisade c accept {\n",
  ]) {
    assert.throws(
      () => tablesTouched(text),
      (e: unknown) => e instanceof NftError && (e.code === "forbidden_command" || e.code === "foreign_table"),
      text,
    );
  }
  assert.deepEqual(
    tablesTouched(
      'add rule inet palisade c ip saddr { 1.2.3.4,\n 5.6.7.8 } comment "a ; b\n#c" counter ; add rule ip palisade_x c accept\nadd chain inet palisade d\n',
    ),
    [
      { family: "inet", name: "palisade", line: 1 },
      { family: "ip", name: "palisade_x", line: 3 },
      { family: "inet", name: "palisade", line: 4 },
    ],
  );
  const foreign = () =>
    tablesTouched('add rule inet palisade c comment "a\nb"\nadd rule inet palisade c accept\nadd rule ip other c\n');
  assert.throws(foreign, (e: unknown) => e instanceof NftError && e.code === "foreign_table" && e.location?.line === 4);
});

test("a plain line (one native match) gets the answer of the word-by-word walk", () => {
  // A line that starts with a space never takes the one-match path, and the walk skips the
  // space: both forms of every generated text must touch the same tables on the same lines,
  // or be refused with the same code on the same line.
  const heads = [
    ...Array(6).fill("add rule inet palisade c"),
    "add element ip6 palisade_x s",
    "delete table inet palisade",
    "flush set palisade s",
    "add rule ip other c",
  ];
  // Mostly what a plain line may hold, now and then what ends one or is refused.
  const tails = [
    ...Array(5).fill([" ip saddr 1.2.3.4", " drop", ' comment "a # { ; \\ b"', ",x"]).flat(),
    ' comment "x\ny"',
    " { 1, 2 }",
    "\t",
    " ; add rule inet palisade d",
    " }",
    " #",
    " \\",
    '"',
  ];
  let seed = 11;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 16) % n;
  };
  const outcome = (text: string) => {
    try {
      return tablesTouched(text).map((t) => `${t.family} ${t.name} @${t.line}`);
    } catch (e) {
      return e instanceof NftError ? [`${e.code} @${e.location?.line}`] : [String(e)];
    }
  };
  let accepted = 0;
  for (let k = 0; k < 3000; k++) {
    let text = "";
    for (let j = 0, n = 1 + next(6); j < n; j++) {
      text += heads[next(heads.length)];
      for (let t = 0, m = next(3); t < m; t++) text += tails[next(tails.length)];
      text += next(8) ? "\n" : "";
    }
    const a = outcome(text);
    if (a.length > 2) accepted++;
    assert.deepEqual(a, outcome(text.replace(/^/gm, " ")), JSON.stringify(text));
  }
  assert.ok(accepted > 300, `only ${accepted} of the texts were accepted with three statements or more`);
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

test("ENOENT at a queue statement names the missing kernel feature; at anything else, none", () => {
  // Recorded: nft 1.0.6 on a kernel without CONFIG_NFT_QUEUE (test/kernel/driver-kernel-feature.test.ts).
  const stderr =
    "/dev/stdin:4:43-47: Error: Could not process rule: No such file or directory\n" +
    'add rule inet palisade_t i udp dport 7201 queue num 3-5 fanout,bypass comment "x"\n' +
    "                                          ^^^^^\n";
  const { message, location } = parseNftStderr(stderr);
  const r = featureRefusal(message!, location!);
  assert.equal(r?.feature, "queue");
  assert.match(r!.message, /no nftables queue support .* line 4 \(add rule .*queue num 3-5.*modprobe nft_queue/);
  // The same message at a jump to a missing chain, or another message at the queue: not a feature.
  assert.equal(featureRefusal(message!, { line: 2, column: 5, text: "jump nowhere ; queue num 1" }), undefined);
  assert.equal(featureRefusal("Could not process rule: Invalid argument", location!), undefined);
});

test("the guard lets the agent add and delete ct helper objects in Palisade's tables only", () => {
  const text = `delete ct helper inet palisade helper_ftp_tcp
add ct helper inet palisade helper_tftp_udp { type "tftp" protocol udp ; l3proto inet ; }
delete ct helper palisade_x h ; flush table inet palisade
`;
  assert.deepEqual(
    tablesTouched(text).map((t) => `${t.family} ${t.name} ${t.line}`),
    ["inet palisade 1", "inet palisade 2", "ip palisade_x 3", "inet palisade 3"],
  );
  refused("foreign_table", "delete ct helper inet filter h\n");
  refused("foreign_table", "delete ct helper ip foreign_fw ftp_foreign\n");
  refused("forbidden_command", "delete ct timeout inet palisade t\n");
  refused("forbidden_command", "delete ct\n");
  refused("forbidden_command", 'delete "ct" helper inet palisade h\n');
  refused("forbidden_command", 'add ct helper inet palisade h { type "ftp" protocol tcp ; } add table inet x\n');
  // Each measured refused (review): the family left out (a foreign table, read as ip), other
  // ct objects, a quoted second word, the object split over lines, a second command after ';'.
  refused("foreign_table", "delete ct helper foreign h\n");
  refused("forbidden_command", "delete ct expectation inet palisade e\n");
  refused("forbidden_command", 'delete ct "helper" inet palisade h\n');
  refused("forbidden_command", "delete ct\nhelper inet palisade h\n");
  refused("foreign_table", "delete ct helper inet palisade h; delete table ip foreign\n");
});
