// Keyset paging for every list endpoint: `limit` + an opaque `cursor` that encodes the
// sort key of the last item returned. Stable under concurrent inserts, no OFFSET scans.
import { z } from "zod";
import { ApiError } from "./errors.ts";

export const PageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(512).optional(),
});

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}

export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

/** Decodes a cursor made by encodeCursor whose elements have the given types. */
export function decodeCursor<T extends z.ZodTuple>(cursor: string | undefined, shape: T): z.infer<T> | undefined {
  if (cursor === undefined) return undefined;
  try {
    return shape.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
  } catch {
    throw new ApiError(400, "invalid_request", "cursor is not one this API issued", [
      { path: "/cursor", code: "invalid_cursor", message: "pass back nextCursor from a previous page unchanged" },
    ]);
  }
}

/** Fetch limit+1 rows, return limit of them and the cursor of the last one if more exist. */
export function page<R, I>(rows: R[], limit: number, toItem: (r: R) => I, keyOf: (r: R) => (string | number)[]) {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return { items: kept.map(toItem), nextCursor: more && last !== undefined ? encodeCursor(keyOf(last)) : null };
}

/**
 * Keyset paging of a list sorted newest first by (createdAt, id), id breaking ties between
 * rows created in the same millisecond: Prisma's `where` and `orderBy` for the page after
 * `cursor`, and the key page() encodes for each row.
 */
export function newestFirst(cursor: string | undefined) {
  const before = decodeCursor(cursor, z.tuple([z.iso.datetime(), z.uuid()]));
  const at = before && new Date(before[0]);
  return {
    where: before ? { OR: [{ createdAt: { lt: at } }, { createdAt: at, id: { lt: before[1] } }] } : {},
    orderBy: [{ createdAt: "desc" as const }, { id: "desc" as const }],
    keyOf: (r: { createdAt: Date; id: string }) => [r.createdAt.toISOString(), r.id],
  };
}

/** Keyset paging of a list sorted by its unique `name`: `where`, `orderBy` and the cursor key, as newestFirst. */
export function byName(cursor: string | undefined) {
  const after = decodeCursor(cursor, z.tuple([z.string()]));
  return {
    where: after ? { name: { gt: after[0] } } : {},
    orderBy: { name: "asc" as const },
    keyOf: (r: { name: string }) => [r.name],
  };
}
