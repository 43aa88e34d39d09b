import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  delta,
  deltas,
  readingFromJson,
  readingToJson,
  unattributed,
  type Reading,
} from "../../../src/agent/telemetry/delta.ts";

const r = (o: Record<string, [number, number]>): Reading =>
  new Map(Object.entries(o).map(([k, [b, p]]) => [k, { bytes: b, packets: p }]));

describe("telemetry delta math", () => {
  it("differences of cumulative counters", () => {
    assert.deepEqual(delta({ bytes: 100, packets: 2 }, { bytes: 250, packets: 5 }), { bytes: 150, packets: 3 });
  });
  it("a new key counts from zero", () => {
    assert.deepEqual(delta(undefined, { bytes: 7, packets: 1 }), { bytes: 7, packets: 1 });
  });
  it("a counter that went down was reset: the new value is the delta", () => {
    assert.deepEqual(delta({ bytes: 1000, packets: 10 }, { bytes: 40, packets: 1 }), { bytes: 40, packets: 1 });
    // bytes down but packets up is still a reset (either going down is impossible otherwise)
    assert.deepEqual(delta({ bytes: 1000, packets: 1 }, { bytes: 40, packets: 2 }), { bytes: 40, packets: 2 });
  });
  it("deltas omits zero changes and vanished keys", () => {
    const d = deltas(r({ a: [10, 1], b: [5, 1], gone: [9, 9] }), r({ a: [10, 1], b: [8, 2], c: [1, 1] }));
    assert.deepEqual(
      [...d],
      [
        ["b", { bytes: 3, packets: 1 }],
        ["c", { bytes: 1, packets: 1 }],
      ],
    );
  });
  it("deltas summed over readings equal the last cumulative value, across a reset", () => {
    const readings = [r({ x: [10, 1] }), r({ x: [30, 3] }), r({ x: [5, 1] }), r({ x: [25, 4] })];
    let prev: Reading = new Map();
    let sum = 0;
    for (const cur of readings) {
      sum += deltas(prev, cur).get("x")?.bytes ?? 0;
      prev = cur;
    }
    // 30 counted before the reset + 25 after it.
    assert.equal(sum, 55);
  });
  it("unattributed nets a negative remainder against the next interval", () => {
    let carry = { bytes: 0, packets: 0 };
    const steps: [number, number][] = [
      [100, 95],
      [50, 57],
      [80, 70],
    ]; // [total delta, per-address delta] bytes
    let emitted = 0;
    for (const [t, a] of steps) {
      const u = unattributed({ bytes: t, packets: 0 }, { bytes: a, packets: 0 }, carry);
      assert.ok(u.emit.bytes >= 0);
      emitted += u.emit.bytes;
      carry = u.carry;
    }
    assert.equal(emitted, 230 - 222); // total - per-address, exactly
    assert.deepEqual(carry, { bytes: 0, packets: 0 });
  });
  it("readings round-trip through JSON", () => {
    const a = r({ "a\tt\t10.0.0.1\tsrc": [1, 2] });
    assert.deepEqual(readingFromJson(JSON.parse(JSON.stringify(readingToJson(a)))), a);
  });
});
