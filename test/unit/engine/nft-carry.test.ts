import { test } from "node:test";
import assert from "node:assert/strict";
import {
  carryReplace,
  carryState,
  replaceTables,
  serialize,
  type CarriedState,
  type TableDefinition,
} from "../../../src/engine/nft/index.ts";

const T = { family: "inet" as const, table: "palisade" };
const def: TableDefinition = {
  table: { kind: "table", family: "inet", name: "palisade" },
  counters: [
    { kind: "counter", ...T, name: "a" },
    { kind: "counter", ...T, name: "b", packets: 1, bytes: 2 },
  ],
  quotas: [{ kind: "quota", ...T, name: "q", mode: "over", bytes: 100 }],
  sets: [
    {
      kind: "set",
      ...T,
      name: "dyn",
      type: "ipv4_addr",
      flags: ["dynamic", "timeout"],
      counter: true,
      elements: [{ key: "192.0.2.1" }],
    },
    { kind: "set", ...T, name: "stat", type: "ipv4_addr", counter: true, elements: [{ key: "192.0.2.9" }] },
    { kind: "set", ...T, name: "retyped", type: "ipv6_addr", flags: ["dynamic"] },
  ],
  chains: [],
  rules: [],
};
const state: CarriedState = {
  counters: [
    { ...T, name: "a", packets: 5, bytes: 50 },
    { ...T, name: "b", packets: 9, bytes: 90 },
    { ...T, name: "gone", packets: 1, bytes: 1 },
  ],
  quotas: [{ ...T, name: "q", used: 40 }],
  sets: [
    {
      ...T,
      name: "dyn",
      type: ["ipv4_addr"],
      elements: [
        { key: "192.0.2.1", packets: 3, bytes: 30 },
        { key: "192.0.2.2", packets: 1, bytes: 10, expires: 0 },
      ],
    },
    {
      ...T,
      name: "stat",
      type: ["ipv4_addr"],
      elements: [
        { key: "192.0.2.9", packets: 7, bytes: 70 },
        { key: "192.0.2.8", packets: 1, bytes: 1 },
      ],
    },
    { ...T, name: "retyped", type: ["ipv4_addr"], elements: [{ key: "192.0.2.3" }] },
  ],
};

test("carryState: kernel values fill what the definition leaves open", () => {
  const [out] = carryState([def], state);
  assert.deepEqual(
    out!.counters!.map((c) => [c.name, c.packets, c.bytes]),
    [
      ["a", 5, 50],
      ["b", 1, 2],
    ],
  );
  assert.equal(out!.quotas![0]!.used, 40);
  const [dyn, stat, retyped] = out!.sets!;
  assert.deepEqual(dyn!.elements, [
    { key: "192.0.2.1", counter: { packets: 3, bytes: 30 } },
    { key: "192.0.2.2", counter: { packets: 1, bytes: 10 }, timeout: 1 },
  ]);
  assert.deepEqual(
    stat!.elements,
    [{ key: "192.0.2.9", counter: { packets: 7, bytes: 70 } }],
    "static sets keep only their own keys",
  );
  assert.equal(retyped!.elements, undefined, "nothing carried into a set whose type changed");
  assert.deepEqual(def.counters![0], { kind: "counter", ...T, name: "a" }, "the input is not mutated");
});

test("carryReplace: one transaction that replaces the tables with carried values and deletes the kernel's other Palisade tables", () => {
  const text = serialize(
    carryReplace([def], {
      ...state,
      tables: [
        { family: "inet", name: "palisade" },
        { family: "ip", name: "palisade_tee" },
      ],
    }),
  );
  const lines = text.trim().split("\n");
  assert.equal(lines[0], "delete table ip palisade_tee", "a table the definitions no longer have goes, first");
  assert.deepEqual(lines.slice(1, 3), ["add table inet palisade", "delete table inet palisade"]);
  assert.match(text, /^add counter inet palisade a \{ packets 5 bytes 50 ; \}$/m);
  assert.match(text, /^add counter inet palisade b \{ packets 1 bytes 2 ; \}$/m, "a definition's own values win");
  assert.match(text, /^add quota inet palisade q \{ over 100 bytes used 40 bytes ; \}$/m);
  assert.match(text, /192\.0\.2\.2 timeout 1s counter packets 1 bytes 10/);
  assert.doesNotMatch(text, /gone/, "a counter the definitions dropped is not carried");
  assert.doesNotMatch(text, /192\.0\.2\.3/);
});

test("carryReplace with an empty kernel is the plain replace", () => {
  assert.equal(
    serialize(carryReplace([def], { tables: [], counters: [], quotas: [], sets: [] })),
    serialize(replaceTables([def])),
  );
});
