// deferred(): policy schemas built on first use (src/engine/policy/primitives.ts), so that
// `palisade render` does not build the sections and match keys a policy leaves out.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as z from "zod";
import { deferred } from "../../../src/engine/policy/primitives.ts";
import { actionType } from "../../../src/engine/policy/action.ts";
import { validatePolicy } from "../../../src/engine/validate/index.ts";

function counted() {
  const calls = { n: 0 };
  const schema = deferred(() => {
    calls.n++;
    return z.strictObject({ port: z.number().int().min(1) });
  });
  return { calls, schema };
}

test("an absent optional key does not build its deferred schema; a present one builds it once", () => {
  const { calls, schema } = counted();
  const doc = z.strictObject({ name: z.string(), opt: schema.optional(), def: schema.default({ port: 1 }) });
  assert.equal(calls.n, 0, "not built by declaring it");
  assert.deepEqual(doc.parse({ name: "a" }), { name: "a", def: { port: 1 } });
  assert.equal(calls.n, 0, "not built by a document without the key");
  assert.deepEqual(doc.parse({ name: "a", opt: { port: 2 } }), { name: "a", opt: { port: 2 }, def: { port: 1 } });
  assert.equal(calls.n, 1);
  doc.parse({ name: "a", opt: { port: 3 }, def: { port: 4 } });
  assert.equal(calls.n, 1, "built once");
});

test("a deferred schema parses, fails and infers as the schema it builds", () => {
  const { schema } = counted();
  const r = z.strictObject({ opt: schema.optional() }).safeParse({ opt: { port: 0, x: 1 } });
  assert.equal(r.success, false);
  assert.deepEqual(r.error?.issues.map((i) => [i.code, i.path.join(".")]).sort(), [
    ["too_small", "opt.port"],
    ["unrecognized_keys", "opt"],
  ]);
  const v: z.infer<typeof schema> = schema.parse({ port: 5 });
  assert.equal(v.port, 5);
});

test("a deferred schema that is optional or defaulted itself is refused when built", () => {
  assert.throws(() => deferred(() => z.string().optional()).parse("x"), /must not be optional or defaulted/);
  assert.throws(() => deferred(() => z.string().default("y")).parse("x"), /must not be optional or defaulted/);
});

test("action objects (each deferred behind its `type`) are refused as before", () => {
  const errors = (action: unknown) =>
    validatePolicy({ chains: { input: { hook: "input", rules: [{ action }] } } }).errors.map((e) => [e.code, e.path]);
  const at = "/chains/input/rules/0/action";
  assert.deepEqual(errors({ type: "frobnicate" }), [["invalid_value", `${at}/type`]]);
  assert.deepEqual(errors({ nope: 1 }), [["invalid_value", `${at}/type`]]);
  assert.deepEqual(errors({ type: "log", prefix: 5, bogus: 1 }), [
    ["unknown_field", `${at}/bogus`],
    ["invalid_type", `${at}/prefix`],
  ]);
  assert.deepEqual(errors({ type: "tos", value: 0, mask: 0 }), [["invalid_value", `${at}/mask`]]);
  assert.match(
    validatePolicy({ chains: { input: { hook: "input", rules: [{ action: { type: "x" } }] } } }).errors[0]!.message,
    /must be one of "accept", "drop", .*"netmap"; got "x"/,
  );
  assert.deepEqual(errors({ type: "log", prefix: "ok", level: "info" }), []);
});

test("an action option whose built schema's type literal is not the type it is routed by fails loudly when built", () => {
  const wrong = z.discriminatedUnion("type", [
    actionType("accept", () => z.strictObject({ type: z.literal("drop") })),
    actionType("reject", () => z.strictObject({ kind: z.literal("reject") })),
  ]);
  assert.throws(() => wrong.safeParse({ type: "accept" }), /actionType\(accept\): the built schema's type is drop/);
  assert.throws(
    () => wrong.safeParse({ type: "reject" }),
    /actionType\(reject\): the built schema's type is not a literal/,
  );
  const right = z.discriminatedUnion("type", [
    actionType("accept", () => z.strictObject({ type: z.literal("accept") })),
  ]);
  assert.deepEqual(right.parse({ type: "accept" }), { type: "accept" });
});

test("every extra match key of an object schema is deferred (built on first use), routingHeader included", async () => {
  const { extraMatchKeys } = await import("../../../src/engine/policy/match-extra.ts");
  const eager = Object.entries(extraMatchKeys)
    .filter(([, s]) => {
      const inner = (s as z.ZodOptional<z.ZodType>).unwrap();
      return inner._zod.def.type !== "lazy" && inner._zod.def.type !== "boolean";
    })
    .map(([k]) => k);
  assert.deepEqual(eager, []);
});
