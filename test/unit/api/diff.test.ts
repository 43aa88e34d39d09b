// diffJson: changes addressed by JSON pointer, arrays aligned so an inserted rule is one
// "add" also in long rule lists, and equality that ignores key order.
import assert from "node:assert/strict";
import { test } from "node:test";
import { diffJson } from "../../../src/api/diff.ts";

const rule = (i: number, port = i) => ({ comment: `r${i}`, match: { protocol: "tcp", dport: port }, action: "accept" });
const doc = (rules: unknown[]) => ({ chains: { input: { hook: "input", rules } } });

test("one rule inserted into a 2,000-rule chain is one add (prefix and suffix matched without a table)", () => {
  const before = Array.from({ length: 2000 }, (_, i) => rule(i));
  const after = [...before.slice(0, 1000), rule(9999), ...before.slice(1000)];
  assert.deepEqual(diffJson(doc(before), doc(after)), [
    { op: "add", path: "/chains/input/rules/1000", to: rule(9999) },
  ]);
  assert.deepEqual(diffJson(doc(after), doc(before)), [
    { op: "remove", path: "/chains/input/rules/1000", from: rule(9999) },
  ]);
});

test("every rule edited: each pair diffed field by field", () => {
  const before = Array.from({ length: 2000 }, (_, i) => rule(i));
  const after = Array.from({ length: 2000 }, (_, i) => rule(i, i + 1));
  const changes = diffJson(doc(before), doc(after));
  assert.equal(changes.length, 2000);
  assert.deepEqual(changes[7], { op: "change", path: "/chains/input/rules/7/match/dport", from: 7, to: 8 });
});

test("a moved rule and unchanged rules in the middle are aligned", () => {
  const a = [rule(1), rule(2), rule(3), rule(4)];
  const b = [rule(2), rule(3), rule(1), rule(4)];
  assert.deepEqual(diffJson(a, b), [
    { op: "remove", path: "/0", from: rule(1) },
    { op: "add", path: "/2", to: rule(1) },
  ]);
});

test("key order does not make a change; keys are escaped in paths", () => {
  assert.deepEqual(diffJson([{ a: 1, b: [1, 2] }], [{ b: [1, 2], a: 1 }]), []);
  assert.deepEqual(diffJson({ "x/y~z": 1 }, { "x/y~z": 2 }), [{ op: "change", path: "/x~1y~0z", from: 1, to: 2 }]);
});
