import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Transaction, type Chain, type Rule } from "../../../src/engine/nft/transaction.ts";
import { serialize } from "../../../src/engine/nft/serialize.ts";
import { replaceChain, replaceElements, replaceTables, type TableDefinition } from "../../../src/engine/nft/replace.ts";
import { comment, logPrefix } from "../../../src/engine/nft/quote.ts";
import { NftModelError } from "../../../src/engine/nft/errors.ts";
import { tablesTouched } from "../../../src/engine/driver/guard.ts";

const T = { family: "inet" as const, table: "palisade" };
const input: Chain = { kind: "chain", ...T, name: "input", type: "filter", hook: "input", priority: 0, policy: "drop" };
const rule = (body: string, c?: string): Rule => ({
  kind: "rule",
  ...T,
  chain: "input",
  body,
  ...(c !== undefined ? { comment: c } : {}),
});

const def: TableDefinition = {
  table: { kind: "table", family: "inet", name: "palisade", comment: "managed by Palisade" },
  counters: [{ kind: "counter", ...T, name: "ssh_hits", packets: 5, bytes: 300 }],
  quotas: [{ kind: "quota", ...T, name: "guest", mode: "over", bytes: 1_000_000, used: 10 }],
  sets: [
    {
      kind: "set",
      ...T,
      name: "blocklist",
      type: "ipv4_addr",
      flags: ["timeout", "interval"],
      size: 65536,
      counter: true,
      elements: [{ key: "192.0.2.0/24" }, { key: "198.51.100.7", timeout: 60, counter: { packets: 1, bytes: 84 } }],
    },
    {
      kind: "map",
      ...T,
      name: "dispatch",
      type: ["ipv4_addr", "inet_service"],
      map: "verdict",
      elements: [{ key: "192.0.2.1 . 22", value: "jump ssh" }],
    },
  ],
  chains: [input, { kind: "chain", ...T, name: "ssh", comment: "ssh checks" }],
  rules: [
    rule("ct state established,related accept"),
    rule("ip saddr @blocklist drop", "block list"),
    rule(`iifname ${'"lo"'} accept`),
    rule(`ip saddr . tcp dport vmap @dispatch`),
  ],
};

const GOLDEN = `add table inet palisade
delete table inet palisade
add table inet palisade { comment "managed by Palisade" ; }
add counter inet palisade ssh_hits { packets 5 bytes 300 ; }
add quota inet palisade guest { over 1000000 bytes used 10 bytes ; }
add chain inet palisade ssh { comment "ssh checks" ; }
add set inet palisade blocklist { type ipv4_addr ; flags interval,timeout ; size 65536 ; counter ; elements = { 192.0.2.0/24, 198.51.100.7 timeout 60s counter packets 1 bytes 84 } ; }
add map inet palisade dispatch { type ipv4_addr . inet_service : verdict ; elements = { 192.0.2.1 . 22 : jump ssh } ; }
add chain inet palisade input { type filter hook input priority 0 ; policy drop ; }
add rule inet palisade input ct state established,related accept
add rule inet palisade input ip saddr @blocklist drop comment "block list"
add rule inet palisade input iifname "lo" accept
add rule inet palisade input ip saddr . tcp dport vmap @dispatch
`;

test("replaceTables renders the add/delete/define idiom, byte for byte", () => {
  assert.equal(serialize(replaceTables([def])), GOLDEN);
});

test("rendering is deterministic and flag order is canonical", () => {
  const a = serialize(replaceTables([def]));
  const b = serialize(replaceTables([structuredClone(def)]));
  assert.equal(a, b);
});

test("replaceTables deletes the tables listed in remove first", () => {
  const out = serialize(replaceTables([], { remove: [{ family: "ip", name: "palisade_old" }] }));
  assert.equal(out, "delete table ip palisade_old\n");
});

test("incremental shapes: one chain rewritten, one set refilled, elements deleted by key", () => {
  const tx = replaceChain({ ...input, policy: "accept" }, [rule("tcp dport 22 accept")]);
  replaceElements({ kind: "set", ...T, name: "blocklist" }, [{ key: "203.0.113.9", comment: "x" }], tx);
  tx.delete({ kind: "element", ...T, set: "blocklist", elements: [{ key: "203.0.113.9", timeout: 5 }] });
  assert.equal(
    serialize(tx),
    `add chain inet palisade input { type filter hook input priority 0 ; policy accept ; }
flush chain inet palisade input
add rule inet palisade input tcp dport 22 accept
flush set inet palisade blocklist
add element inet palisade blocklist { 203.0.113.9 comment "x" }
delete element inet palisade blocklist { 203.0.113.9 }
`,
  );
});

test("large element lists are wrapped, 16 per line, inside one statement", () => {
  const elements = Array.from({ length: 40 }, (_, i) => ({ key: `10.0.${i >> 8}.${i & 255}` }));
  const out = serialize(new Transaction().add({ kind: "element", ...T, set: "blocklist", elements }));
  assert.equal(out.split("\n").length, 1 + 3 + 1 + 1);
  assert.deepEqual(tablesTouched(out), [{ family: "inet", name: "palisade", line: 1 }]);
});

test("priorities: numbers, names, and names with offsets", () => {
  const txt = (p: Chain["priority"]) => serialize(new Transaction().add({ ...input, priority: p, policy: undefined }));
  assert.match(txt(-150), /priority -150 ;/);
  assert.match(txt("dstnat"), /priority dstnat ;/);
  assert.match(txt({ base: "filter", offset: 10 }), /priority filter \+ 10 ;/);
  assert.match(txt({ base: "srcnat", offset: -5 }), /priority srcnat - 5 ;/);
});

const refuses = (code: string, fn: () => unknown) =>
  assert.throws(fn, (e: unknown) => e instanceof NftModelError && e.code === code);

test("rule bodies must be exactly one statement", () => {
  for (const body of [
    "accept; flush ruleset",
    "accept\nadd table ip x",
    "accept # hidden",
    "ip saddr { 1.2.3.4 accept",
    "ip saddr $evil accept",
    "accept }",
    "",
    "define x = 1",
    'log prefix "unterminated',
  ]) {
    refuses("invalid_rule", () => serialize(new Transaction().add(rule(body))));
  }
  // quoted text inside a body is fine, including ; and # inside quotes
  assert.match(
    serialize(new Transaction().add(rule(`log prefix ${logPrefix("a; b # c")} drop`))),
    /log prefix "a; b # c" drop/,
  );
});

test("names, tables, elements and sets are validated", () => {
  refuses("foreign_table", () => serialize(new Transaction().add({ kind: "table", family: "inet", name: "filter" })));
  refuses("invalid_identifier", () => serialize(new Transaction().add({ ...input, name: "in put" })));
  refuses("invalid_identifier", () => serialize(new Transaction().add({ kind: "counter", ...T, name: "counter" })));
  refuses("invalid_family", () =>
    serialize(new Transaction().add({ kind: "table", family: "ipx" as "ip", name: "palisade" })),
  );
  refuses("invalid_element", () =>
    serialize(
      new Transaction().add({ kind: "element", ...T, set: "s", elements: [{ key: "1.2.3.4 } ; flush ruleset ; {" }] }),
    ),
  );
  refuses("invalid_element", () =>
    serialize(new Transaction().add({ kind: "element", ...T, set: "s", elements: [{ key: "1.2.3.4, 5.6.7.8" }] })),
  );
  refuses("invalid_element", () =>
    serialize(
      new Transaction().add({ kind: "element", ...T, set: "m", elements: [{ key: "1.2.3.4", value: "jump x; drop" }] }),
    ),
  );
  refuses("invalid_set", () => serialize(new Transaction().add({ kind: "set", ...T, name: "s" })));
  refuses("invalid_set", () =>
    serialize(new Transaction().add({ kind: "set", ...T, name: "s", type: "ipv4_addr; flush ruleset" })),
  );
  refuses("invalid_chain", () => serialize(new Transaction().add({ ...input, hook: undefined })));
  refuses("invalid_number", () =>
    serialize(new Transaction().add({ kind: "quota", ...T, name: "q", mode: "over", bytes: -1 })),
  );
  assert.equal(
    serialize(new Transaction().add({ kind: "table", family: "inet", name: "other" }), { palisadeOnly: false }),
    "add table inet other\n",
  );
});

test("property: a rule comment can never add a line, a statement or a table", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 120 }), (c) => {
      let out: string;
      try {
        out = serialize(new Transaction().add(rule("counter accept", c)));
      } catch (e) {
        assert.ok(e instanceof NftModelError);
        return;
      }
      if (c === "") return assert.equal(out, "add rule inet palisade input counter accept\n");
      assert.equal(out.split("\n").length, 2, "exactly one line plus the final newline");
      assert.ok(out.startsWith('add rule inet palisade input counter accept comment "'));
      assert.ok(out.endsWith('"\n'));
      assert.equal((out.match(/"/g) ?? []).length, 2);
      assert.equal(tablesTouched(out).length, 1);
      assert.equal(out, `add rule inet palisade input counter accept comment ${comment(c)}\n`);
    }),
    { numRuns: 2000 },
  );
});
