// Property tests: validatePolicy never throws and always explains itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { validatePolicy } from "../../../src/engine/validate/index.ts";
import { parsePolicySource } from "../../../src/engine/source.ts";
import { expandPolicy } from "../../../src/engine/expand/index.ts";

const VALID = {
  failsafe: { enabled: false, ports: [50051] },
  sets: { bl: { type: "ipv4_addr", interval: true, elements: ["10.0.0.0/8", "192.0.2.1"] } },
  quotas: { monthly: { limit: 1000000 } },
  counters: { hits: {} },
  accounting: { lan: { prefix: "192.168.1.0/24" } },
  chains: {
    input: {
      hook: "input",
      policy: "drop",
      rules: [
        { match: { ctState: ["established", "related"] }, action: "accept" },
        { match: { saddr: "@bl" }, action: "drop" },
        { match: { protocol: "tcp", dport: [22, "8000-8080"] }, action: { type: "jump", chain: "svc" } },
        { match: { quota: { name: "monthly" } }, action: { type: "counter", name: "hits" } },
      ],
    },
    svc: {
      rules: [
        { match: { recent: { name: "ssh", mode: "update", seconds: 60, hitcount: 4 } }, action: "drop" },
        { action: "accept" },
      ],
    },
    fwd: { hook: "forward", rules: [{ action: { type: "account", table: "lan" } }] },
    pre: {
      table: "nat",
      hook: "prerouting",
      rules: [
        { match: { protocol: "tcp", dport: 80 }, action: { type: "dnat", to: { address: "10.0.0.2", port: 8080 } } },
      ],
    },
  },
  protections: {
    bogusPackets: {},
    synFlood: {},
    portScanTrap: {},
    portKnock: [{ name: "k", knockPorts: [7000, 8000], port: 2222 }],
  },
  forwarding: {
    portForwards: [
      { protocol: "tcp", port: 443, backends: [{ address: "10.0.0.5", weight: 2 }, { address: "10.0.0.6" }] },
    ],
  },
};

function wellFormed(r: ReturnType<typeof validatePolicy>): void {
  assert.equal(typeof r.ok, "boolean");
  assert.equal(r.ok, r.errors.length === 0);
  for (const d of [...r.errors, ...r.warnings]) {
    assert.equal(typeof d.path, "string");
    assert.ok(d.path === "" || d.path.startsWith("/"), `path ${d.path} is a JSON pointer`);
    assert.match(d.code, /^[a-z][a-z0-9_]*$/);
    assert.ok(d.message.length > 0);
    assert.notEqual(d.code, "internal_error", d.message);
  }
  for (const d of r.errors) assert.equal(d.severity, "error");
  for (const d of r.warnings) assert.equal(d.severity, "warning");
}

test("the reference policy is valid, and so is its expansion", () => {
  const r = validatePolicy(VALID);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(validatePolicy(expandPolicy(r.policy!)).errors, []);
});

test("arbitrary JSON never throws", () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => wellFormed(validatePolicy(v))),
    { numRuns: 500 },
  );
});

test("arbitrary objects under the policy's own keys never throw", () => {
  const key = fc.constantFrom(
    "chains",
    "sets",
    "quotas",
    "counters",
    "accounting",
    "protections",
    "forwarding",
    "failsafe",
    "description",
  );
  fc.assert(
    fc.property(fc.dictionary(key, fc.jsonValue({ maxDepth: 5 })), (v) => wellFormed(validatePolicy(v))),
    { numRuns: 500 },
  );
});

/** Replace the value at a random path of the valid policy with a random value (or delete it). */
function mutate(doc: unknown, choices: number[], replacement: unknown, remove: boolean): unknown {
  const copy = structuredClone(doc) as Record<string, unknown>;
  let node: unknown = copy;
  for (let i = 0; i < choices.length; i++) {
    if (node === null || typeof node !== "object") break;
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const k = keys[choices[i]! % keys.length]!;
    const child = (node as Record<string, unknown>)[k];
    if (i === choices.length - 1 || child === null || typeof child !== "object") {
      if (remove) delete (node as Record<string, unknown>)[k];
      else (node as Record<string, unknown>)[k] = replacement;
      break;
    }
    node = child;
  }
  return copy;
}

test("mutations of a valid policy never throw", () => {
  const scalar = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.integer(),
    fc.constantFrom(
      "accept",
      "drop",
      "input",
      "nat",
      "10.0.0.1/8",
      "@bl",
      "@nope",
      "tcp",
      "svc",
      "input",
      0,
      65536,
      -1,
      "",
      ".x",
      "a/b",
    ),
  );
  fc.assert(
    fc.property(
      fc.array(fc.nat(50), { minLength: 1, maxLength: 8 }),
      fc.oneof(scalar, fc.jsonValue({ maxDepth: 3 })),
      fc.boolean(),
      (choices, value, remove) => {
        const r = validatePolicy(mutate(VALID, choices, value, remove));
        wellFormed(r);
        if (r.ok) assert.doesNotThrow(() => validatePolicy(expandPolicy(r.policy!)));
      },
    ),
    { numRuns: 1000 },
  );
});

test("arbitrary text never throws the source parser", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), fc.constantFrom("json" as const, "yaml" as const), (text, format) => {
      const r = parsePolicySource(text, format);
      if (!r.ok) for (const e of r.errors) assert.ok(e.code), assert.ok(e.message);
    }),
    { numRuns: 500 },
  );
});
