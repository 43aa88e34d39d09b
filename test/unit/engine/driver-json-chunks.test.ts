// The driver reads nft's JSON entry by entry and a large set's elements in batches
// (src/engine/driver/json-chunks.ts). The result must equal what one JSON.parse of the
// whole document gives, whatever the strings hold.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRuleset } from "../../../src/engine/driver/index.ts";
import { nftablesEntries } from "../../../src/engine/driver/json-chunks.ts";

// Comments with everything the scanner must not take for structure.
const TRICKY = ["a, b", "x] y", '"elem": [1, 2]', "brace { } ; ", 'back\\slash "q"', "ünïcode"];

function doc(n: number): { nftables: unknown[] } {
  const elem: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    if (i % 7 === 0) elem.push(ip);
    else if (i % 5 === 0) elem.push({ prefix: { addr: ip, len: 32 } });
    else
      elem.push({
        elem: {
          val: ip,
          counter: { packets: i, bytes: i * 60 },
          ...(i % 3 === 0 ? { comment: TRICKY[i % TRICKY.length] } : {}),
          ...(i % 11 === 0 ? { timeout: 60, expires: 30 } : {}),
        },
      });
  }
  return {
    nftables: [
      { metainfo: { version: "1.0.6", release_name: "x", json_schema_version: 1 } },
      { table: { family: "inet", name: "palisade", handle: 1, comment: TRICKY[2] } },
      {
        set: {
          family: "inet",
          name: "big",
          table: "palisade",
          type: "ipv4_addr",
          handle: 2,
          flags: ["dynamic"],
          comment: TRICKY[1],
          stmt: [{ counter: null }],
          elem,
        },
      },
      {
        map: {
          family: "inet",
          name: "m",
          table: "palisade",
          type: "inet_service",
          map: "verdict",
          handle: 3,
          elem: [
            [22, { accept: null }],
            [80, { jump: { target: "web" } }],
          ],
        },
      },
      { set: { family: "inet", name: "empty", table: "palisade", type: ["ipv4_addr", "inet_service"], handle: 4 } },
      {
        counter: { family: "inet", name: "c", table: "palisade", handle: 5, packets: 1, bytes: 2, comment: TRICKY[0] },
      },
      { quota: { family: "inet", name: "q", table: "palisade", handle: 6, bytes: 100, used: 5, inv: true } },
    ],
  };
}

test("entries and batches together are exactly the parsed document", () => {
  for (const spacing of [undefined, 2]) {
    const d = doc(5000);
    const text = JSON.stringify(d, null, spacing);
    assert.ok(text.length > 64 * 1024, "the big set is cut (larger than the whole-entry threshold)");
    const got = [...nftablesEntries(text, 333)].map((p) => {
      const head = p.head as Record<string, { elem?: unknown[] }>;
      const body = head.set ?? head.map;
      const cut = [...p.elements].flat();
      if (body && cut.length) body.elem = [...(body.elem ?? []), ...cut];
      return head;
    });
    assert.deepEqual(got, d.nftables);
  }
});

test("parseRuleset reads a cut set the same as a small one", () => {
  const st = parseRuleset(JSON.stringify(doc(5000)));
  const big = st.sets.find((s) => s.name === "big")!;
  assert.equal(big.elements.length, 5000);
  assert.equal(big.counter, true);
  assert.equal(big.comment, "x] y");
  assert.deepEqual(big.elements[1], { key: "10.0.0.1", packets: 1, bytes: 60 });
  assert.deepEqual(big.elements[3], { key: "10.0.0.3", packets: 3, bytes: 180, comment: TRICKY[3] });
  assert.deepEqual(big.elements[5], { key: "10.0.0.5/32" });
  assert.deepEqual(big.elements[7], { key: "10.0.0.7" });
  assert.deepEqual(big.elements[11], { key: "10.0.0.11", packets: 11, bytes: 660, timeout: 60, expires: 30 });
  assert.deepEqual(st.sets.find((s) => s.name === "m")!.elements, [
    { key: "22", value: "accept" },
    { key: "80", value: "jump web" },
  ]);
  assert.deepEqual(st.sets.find((s) => s.name === "empty")!.elements, []);
  assert.deepEqual(st.counters, [
    { family: "inet", table: "palisade", name: "c", packets: 1, bytes: 2, comment: "a, b" },
  ]);
  assert.deepEqual(st.quotas, [{ family: "inet", table: "palisade", name: "q", mode: "over", bytes: 100, used: 5 }]);
  assert.equal(st.nftVersion, "1.0.6");
});

test("output that is not nft's JSON is unexpected_output, as are malformed elements", () => {
  for (const bad of ["", "not json", '{"nftables": [{"table": {"family": "inet"', '{"other": []}']) {
    assert.throws(
      () => parseRuleset(bad),
      (e: { code?: string }) => e.code === "unexpected_output",
      bad,
    );
  }
  const d = doc(3000);
  (d.nftables[2] as { set: { elem: unknown[] } }).set.elem[2900] = {
    elem: { val: "10.0.0.1", counter: { packets: "1" } },
  };
  assert.throws(() => parseRuleset(JSON.stringify(d)), /counter of 10\.0\.0\.1 is not/);
});

test("rules: what JRule accepts is read as before, anything else is its unexpected_output", () => {
  const listing = (rules: unknown[]) =>
    JSON.stringify({ nftables: [{ table: { family: "inet", name: "palisade" } }, ...rules.map((rule) => ({ rule }))] });
  const expr = [{ match: { op: "==", left: { meta: { key: "iifname" } }, right: "lo" } }, { accept: null }];
  const st = parseRuleset(
    listing([
      { family: "inet", table: "palisade", chain: "input", handle: 4, expr, comment: "c" },
      { family: "inet", table: "palisade", chain: "input", expr: [], extra: { kept: "aside" } },
    ]),
  );
  assert.deepEqual(st.rules, [
    { family: "inet", table: "palisade", chain: "input", expr, handle: 4, comment: "c" },
    { family: "inet", table: "palisade", chain: "input", expr: [] },
  ]);
  for (const bad of [
    { family: "inet", table: "palisade", chain: "input", expr: {} },
    { family: "inet", table: "palisade", chain: "input", handle: "4", expr: [] },
    { family: "inet", table: "palisade", chain: 1, expr: [] },
    { family: "inet", table: "palisade", chain: "input", comment: 5, expr: [] },
    { family: "inet", table: "palisade", expr: [] },
    ["not", "an", "object"],
  ])
    assert.throws(
      () => parseRuleset(listing([bad])),
      (e: { code?: string; message?: string }) =>
        e.code === "unexpected_output" && /printed a rule Palisade cannot read/.test(e.message ?? ""),
      JSON.stringify(bad),
    );
  // JSON.parse reads 1e400 as Infinity, which z.number() refuses (JSON.stringify cannot write it).
  const inf = { family: "inet", table: "palisade", chain: "input", handle: 0, expr: [] };
  for (const big of ["1e400", "-1e400"])
    assert.throws(
      () => parseRuleset(listing([inf]).replace('"handle":0', `"handle":${big}`)),
      (e: { code?: string; message?: string }) =>
        e.code === "unexpected_output" && /printed a rule Palisade cannot read/.test(e.message ?? ""),
      big,
    );
});
