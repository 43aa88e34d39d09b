// parseRuleset with `keep` (readWithoutElements: one listing of every table, Palisade's kept).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRuleset } from "../../../src/engine/driver/read.ts";
import { NftError } from "../../../src/engine/driver/errors.ts";

const doc = (...entries: unknown[]) =>
  JSON.stringify({ nftables: [{ metainfo: { version: "1.0.6", json_schema_version: 1 } }, ...entries] });
const palisade = (name: string) => name.startsWith("palisade");

test("another table's entries are skipped before they are parsed, whatever they hold", () => {
  const st = parseRuleset(
    doc(
      { table: { family: "inet", name: "palisade", handle: 1 } },
      { table: { family: "ip", name: "filter", handle: 2 } },
      // What Palisade's schemas refuse, in a foreign table: never read.
      { set: { family: "ip", table: "filter", name: "s", type: 42, elem: "not a list" } },
      { rule: { family: "ip", table: "filter", chain: "c", expr: "not a list" } },
      { chain: { family: "inet", table: "palisade", name: "input", handle: 1 } },
      { counter: { family: "inet", table: "palisade", name: "c1", packets: 3, bytes: 180 } },
    ),
    (_family, table) => palisade(table),
  );
  assert.equal(st.nftVersion, "1.0.6");
  assert.equal(st.otherRules, 1, "the foreign rule is counted, not read");
  assert.deepEqual(
    st.tables.map((t) => t.name),
    ["palisade"],
  );
  assert.deepEqual(
    st.chains.map((c) => c.name),
    ["input"],
  );
  assert.deepEqual(
    st.counters.map((c) => [c.name, c.packets, c.bytes]),
    [["c1", 3, 180]],
  );
  // Without `keep` the foreign set is read, and refused.
  assert.throws(
    () => parseRuleset(doc({ set: { family: "ip", table: "filter", name: "s", type: 42, elem: "not a list" } })),
    NftError,
  );
});

test("an entry that names no table as a string is not skipped: the reader refuses it as before", () => {
  assert.throws(
    () => parseRuleset(doc({ chain: { family: "inet", table: 7, name: "input", handle: 1 } }), (_f, t) => palisade(t)),
    (e: unknown) => e instanceof NftError && e.code === "unexpected_output",
  );
});
