// Keyset paging: a page keeps `limit` rows and the cursor of its last kept row (never the
// probe row past the limit); a cursor round-trips exactly; a forged one is a 400.
import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { ApiError } from "../../../src/api/errors.ts";
import { decodeCursor, encodeCursor, page, PageQuery } from "../../../src/api/paging.ts";

const Key = z.tuple([z.string(), z.number()]);
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `h${i}`, id: i }));
const key = (r: { name: string; id: number }) => [r.name, r.id];

test("limit+1 rows: limit items and the cursor of the last kept row", () => {
  const p = page(rows(4), 3, (r) => r.name, key);
  assert.deepEqual(p.items, ["h0", "h1", "h2"]);
  assert.deepEqual(
    decodeCursor(p.nextCursor!, Key),
    ["h2", 2],
    "the next page starts after h2, not after the probe row h3",
  );
});

test("no probe row: no next page", () => {
  assert.equal(page(rows(3), 3, (r) => r, key).nextCursor, null);
  assert.deepEqual(
    page([], 3, (r) => r, key),
    { items: [], nextCursor: null },
  );
});

test("a cursor round-trips keys with any characters, and none means the first page", () => {
  const k: [string, number] = ['a"/\\ü\n', 2 ** 40];
  assert.deepEqual(decodeCursor(encodeCursor(k), Key), k);
  assert.match(encodeCursor(k), /^[A-Za-z0-9_-]+$/, "URL-safe without escaping");
  assert.equal(decodeCursor(undefined, Key), undefined);
});

test("a cursor of another shape or not base64 JSON is a 400 naming /cursor", () => {
  for (const bad of [
    encodeCursor([1, "x"]),
    encodeCursor(["a"]),
    "!!!",
    Buffer.from("{not json").toString("base64url"),
  ]) {
    assert.throws(
      () => decodeCursor(bad, Key),
      (e: unknown) =>
        e instanceof ApiError &&
        e.status === 400 &&
        e.details[0]?.path === "/cursor" &&
        e.details[0]?.code === "invalid_cursor",
      bad,
    );
  }
});

test("page query: limit defaults to 50, coerced from the query string, bounded 1..500", () => {
  assert.deepEqual(PageQuery.parse({}), { limit: 50 });
  assert.equal(PageQuery.parse({ limit: "500" }).limit, 500);
  for (const limit of ["0", "501", "1.5", "x"]) assert.equal(PageQuery.safeParse({ limit }).success, false, limit);
  assert.equal(PageQuery.safeParse({ limit: "5", offset: "3" }).success, false, "no OFFSET paging");
});
