// Rollout strategy: batch numbers of targets in rollout order (the canary batch first),
// defaults for stored rows written before a field existed, and the result timeout.
import assert from "node:assert/strict";
import { test } from "node:test";
import { batchOf, resultTimeoutMs, storedStrategy, Strategy } from "../../../src/api/deploy/strategy.ts";

const s = (o: Partial<Strategy>) => Strategy.parse(o);

test("with a canary of 1 and batches of 25: host 0 alone, then 25 per batch", () => {
  const st = s({ canary: 1, batchSize: 25 });
  assert.deepEqual(
    [0, 1, 25, 26, 50, 51].map((i) => batchOf(i, st)),
    [0, 1, 1, 2, 2, 3],
  );
});

test("a canary of 3 with batches of 2", () => {
  const st = s({ canary: 3, batchSize: 2 });
  assert.deepEqual(
    Array.from({ length: 8 }, (_, i) => batchOf(i, st)),
    [0, 0, 0, 1, 1, 2, 2, 3],
  );
});

test("no canary: batch 0 is the first full batch", () => {
  const st = s({ canary: 0, batchSize: 10 });
  assert.deepEqual(
    [0, 9, 10, 19, 20].map((i) => batchOf(i, st)),
    [0, 0, 1, 1, 2],
  );
});

test("every batch but the last is full, and batch numbers never skip", () => {
  for (const canary of [0, 1, 4]) {
    for (const batchSize of [1, 3, 25]) {
      const st = s({ canary, batchSize });
      const sizes = new Map<number, number>();
      for (let i = 0; i < 100; i++) sizes.set(batchOf(i, st), (sizes.get(batchOf(i, st)) ?? 0) + 1);
      const nums = [...sizes.keys()];
      assert.deepEqual(
        nums,
        nums.map((_, k) => k),
        `contiguous (canary ${canary}, size ${batchSize})`,
      );
      for (const [b, n] of sizes) {
        const last = b === nums.length - 1;
        const want = canary > 0 && b === 0 ? canary : batchSize;
        if (!last) assert.equal(n, want, `batch ${b} (canary ${canary}, size ${batchSize})`);
        else assert.ok(n <= want);
      }
    }
  }
});

test("a stored strategy gets the defaults for missing fields; an unreadable one is all defaults", () => {
  const d = Strategy.parse({});
  assert.deepEqual(d, { batchSize: 25, canary: 1, confirmTimeoutSeconds: 30, haltOnFailure: true, retries: 1 });
  assert.deepEqual(storedStrategy({ batchSize: 5 }), { ...d, batchSize: 5 });
  assert.deepEqual(storedStrategy(null), d);
  assert.deepEqual(storedStrategy({ batchSize: 0 }), d);
  assert.deepEqual(storedStrategy("garbage"), d);
});

test("the result timeout covers the agent's confirm window twice plus slack", () => {
  assert.equal(resultTimeoutMs(s({ confirmTimeoutSeconds: 30 })), 70_000);
  assert.ok(resultTimeoutMs(s({ confirmTimeoutSeconds: 1 })) > 2_000);
});

test("requests outside the bounds are refused, not clamped", () => {
  for (const bad of [{ batchSize: 0 }, { canary: -1 }, { confirmTimeoutSeconds: 3601 }, { retries: 6 }, { extra: 1 }]) {
    assert.equal(Strategy.safeParse(bad).success, false, JSON.stringify(bad));
  }
});
