// 64-bit counters: JSON numbers exactly up to 2^53 and decimal strings above (no client
// rounds a large total); uint64 from the protocol in every shape, refused outside 0..2^63-1.
import assert from "node:assert/strict";
import { test } from "node:test";
import { counterJson, MAX_U63, toU63, U63 } from "../../../src/api/telemetry/u64.ts";

test("counterJson: a number up to 2^53, a decimal string above", () => {
  assert.equal(counterJson(0n), 0);
  assert.equal(counterJson(null), 0);
  assert.equal(counterJson(2n ** 53n), 2 ** 53);
  assert.equal(counterJson(2n ** 53n + 1n), "9007199254740993", "would round to 2^53 as a number");
  assert.equal(counterJson("18446744073709551615"), "18446744073709551615");
  assert.equal(counterJson(12), 12);
});

test("toU63 accepts bigint, safe integers, decimal strings and Long-like objects", () => {
  assert.equal(toU63(5n), 5n);
  assert.equal(toU63(2 ** 53 - 1), 2n ** 53n - 1n);
  assert.equal(toU63("9223372036854775807"), MAX_U63);
  const long = { low: 1, high: 1, toString: () => "4294967297" };
  assert.equal(toU63(long), 4294967297n);
});

test("toU63 refuses what is not an unsigned integer below 2^63", () => {
  for (const v of [
    -1,
    -1n,
    1.5,
    2 ** 53,
    Number.NaN,
    "9223372036854775808",
    "18446744073709551615",
    "-1",
    "1e3",
    " 1",
    "",
    "0x10",
    true,
    {},
    { low: 0, high: 0, toString: () => "-1" },
  ]) {
    assert.equal(toU63(v), undefined, String(typeof v === "object" ? JSON.stringify(v) : v));
  }
});

test("U63: absent is 0, out of range is an issue", () => {
  assert.equal(U63.parse(undefined), 0n);
  assert.equal(U63.parse(null), 0n);
  assert.equal(U63.parse("42"), 42n);
  assert.equal(U63.safeParse("9223372036854775808").success, false);
  assert.equal(U63.safeParse(-3).success, false);
});
