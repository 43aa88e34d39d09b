import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicySource, MAX_SOURCE_BYTES, MAX_YAML_ALIAS_EXPANSION } from "../../../src/engine/source.ts";
import { policyChecksum, canonicalJson } from "../../../src/engine/checksum.ts";
import { policyJsonSchema } from "../../../src/engine/schema-export.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";

test("YAML and JSON parse to the same value", () => {
  const y = parsePolicySource("chains:\n  input:\n    hook: input\n    policy: drop\n", "yaml");
  const j = parsePolicySource('{"chains":{"input":{"hook":"input","policy":"drop"}}}', "json");
  assert.deepEqual(y, j);
  assert.equal(y.ok, true);
});

test("YAML 1.2: `no` stays a string", () => {
  const r = parsePolicySource("a: no\n", "yaml");
  assert.deepEqual(r, { ok: true, value: { a: "no" } });
});

test("syntax errors carry line and column", () => {
  const y = parsePolicySource("a: [\n", "yaml");
  assert.equal(y.ok, false);
  if (!y.ok)
    assert.match(y.errors[0]!.message, /^line \d+, column \d+: /), assert.equal(y.errors[0]!.code, "syntax_error");
  const j = parsePolicySource('{"a": 1,\n "b": }', "json");
  assert.equal(j.ok, false);
  if (!j.ok)
    assert.match(j.errors[0]!.message, /^line 2, column \d+: /), assert.equal(j.errors[0]!.code, "syntax_error");
});

test("duplicate keys are refused (YAML and JSON)", () => {
  const y = parsePolicySource("a: 1\na: 2\n", "yaml");
  assert.equal(y.ok, false);
  if (!y.ok) assert.equal(y.errors[0]!.code, "duplicate_key");
  const j = parsePolicySource('{"a": {"x": 1, "y": "x", "x": 2}}', "json");
  assert.equal(j.ok, false);
  if (!j.ok) assert.equal(j.errors[0]!.code, "duplicate_key"), assert.match(j.errors[0]!.message, /line 1, column 26/);
  // Same key in sibling objects and inside strings is fine.
  assert.equal(parsePolicySource('{"a": {"x": 1}, "b": {"x": "\\"x\\":"}, "c": [{"x":1},{"x":2}]}', "json").ok, true);
});

test("YAML alias bombs are refused", () => {
  const bomb = [
    "a: &a [x,x,x,x,x,x,x,x,x]",
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
    "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
  ].join("\n");
  const r = parsePolicySource(bomb, "yaml");
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.errors[0]!.code, "alias_limit");
  assert.equal(parsePolicySource("p: &p [22, 80]\nq: *p\n", "yaml").ok, true);
});

test("YAML whose aliases expand it by more than MAX_YAML_ALIAS_EXPANSION nodes is refused, naming the limit", () => {
  // Few aliases, one large anchor: the alias count is small, the expanded size is not.
  const doc = (ports: number, uses: number) =>
    `sets:\n  a:\n    type: inet_service\n    elements: &p [${Array.from({ length: ports }, (_, i) => i % 65536).join(",")}]\n` +
    Array.from({ length: uses }, (_, i) => `  s${i}:\n    type: inet_service\n    elements: *p\n`).join("");
  const uses = 4;
  const over = Math.floor(MAX_YAML_ALIAS_EXPANSION / uses) + 1;
  const r = parsePolicySource(doc(over, uses), "yaml");
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.errors[0]!.code, "alias_expansion_too_large");
    assert.match(r.errors[0]!.message, new RegExp(`at most ${MAX_YAML_ALIAS_EXPANSION} nodes`));
  }
  // Just under the limit (each alias adds the list and its items) is read as written.
  const under = parsePolicySource(doc(Math.floor(MAX_YAML_ALIAS_EXPANSION / uses) - 1, uses), "yaml");
  assert.equal(under.ok, true);
  if (under.ok)
    assert.equal(
      (under.value as { sets: Record<string, { elements: number[] }> }).sets.s3!.elements.length,
      Math.floor(MAX_YAML_ALIAS_EXPANSION / uses) - 1,
    );
});

test("YAML aliases cannot nest a document deeper than the limit or refer to their own anchor", () => {
  const nested = (n: number) => "[".repeat(n) + "]".repeat(n);
  const deep = parsePolicySource(`a: &x ${nested(60)}\nb: [[[[[[*x]]]]]]\n`, "yaml");
  assert.equal(deep.ok, false);
  if (!deep.ok) assert.equal(deep.errors[0]!.code, "source_too_deep");
  assert.equal(parsePolicySource(`a: &x ${nested(60)}\nb: [[*x]]\n`, "yaml").ok, true);
  const cycle = parsePolicySource("a: &x [1, *x]\n", "yaml");
  assert.equal(cycle.ok, false);
  if (!cycle.ok) assert.equal(cycle.errors[0]!.code, "alias_cycle");
});

test("oversized and absurdly nested documents are refused", () => {
  const big = parsePolicySource(" ".repeat(MAX_SOURCE_BYTES + 1), "json");
  assert.equal(big.ok, false);
  if (!big.ok) assert.equal(big.errors[0]!.code, "source_too_large");
  const deep = parsePolicySource("[".repeat(5000) + "]".repeat(5000), "json");
  assert.equal(deep.ok, false);
  if (!deep.ok) assert.equal(deep.errors[0]!.code, "source_too_deep");
});

test("policyChecksum ignores key order and is sha256 hex", () => {
  const a = validatePolicy({ chains: { input: { hook: "input", policy: "drop", rules: [] } }, description: "x" })
    .policy!;
  const b = validatePolicy({ description: "x", chains: { input: { rules: [], policy: "drop", hook: "input" } } })
    .policy!;
  assert.match(policyChecksum(a), /^[0-9a-f]{64}$/);
  assert.equal(policyChecksum(a), policyChecksum(b));
  assert.notEqual(policyChecksum(a), policyChecksum({ ...a, description: "y" }));
  assert.equal(canonicalJson({ b: 1, a: [2, { d: 1, c: 2 }] }), '{"a":[2,{"c":2,"d":1}],"b":1}');
});

test("policyJsonSchema is a JSON Schema of the input side", () => {
  const s = policyJsonSchema() as { type?: string; properties?: Record<string, unknown>; required?: string[] };
  assert.equal(s.type, "object");
  assert.ok(s.properties?.chains && s.properties.protections);
  assert.deepEqual(s.required ?? [], []); // everything at the top has a default
  assert.doesNotThrow(() => JSON.stringify(s));
});
