// Concurrent adds to one ban list: overlapping prefixes must never both be stored (the
// kernel refuses overlapping intervals in one set, and the whole full update with them).
// Each pair below is sent at once; exactly one of each pair may win, the other is refused
// with overlaps_ban and stores nothing.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestApp, type TestApp } from "../support/app.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
});
after(async () => {
  await t?.close();
});

test("concurrent POSTs of overlapping prefixes on one list: one wins, the other is refused", async () => {
  const pairs = Array.from({ length: 8 }, (_, i) => [`race${i}`, "10.0.0.0/8", "10.1.0.0/16"] as const);
  const post = (list: string, address: string) =>
    t.req("POST", "/v1/bans", { as: "operator", body: { list, addresses: [address], ttlSeconds: 3600 } });
  const results = await Promise.all(pairs.flatMap(([list, a, b]) => [post(list, a), post(list, b)]));
  for (let i = 0; i < pairs.length; i++) {
    const [x, y] = [results[2 * i]!, results[2 * i + 1]!];
    const codes = [x.statusCode, y.statusCode].sort();
    assert.deepEqual(codes, [201, 400], `list ${pairs[i]![0]}: ${x.body} / ${y.body}`);
    const refused = x.statusCode === 400 ? x : y;
    assert.match(refused.body, /overlaps_ban/);
    const stored = await t.db.ban.findMany({ where: { list: pairs[i]![0] } });
    assert.equal(stored.length, 1, `list ${pairs[i]![0]} holds one of the two prefixes`);
  }
  // Another list is independent: the same prefixes side by side on two lists are fine.
  assert.equal((await post("race_other", "10.1.0.0/16")).statusCode, 201);
});
