// Fails when prisma/schema.prisma and the database the SQL migrations build disagree:
// tables, columns (type, nullability, default present), primary keys, unique and plain
// indexes, foreign keys (with ON DELETE), and enums. Both are written by hand, so this
// is what keeps the Prisma client honest about the real tables.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { createTestDatabase, sql, type TestDatabase } from "../support/db.ts";
import { parsePrismaSchema, type PrismaField, type PrismaSchema } from "../support/prisma-schema.ts";

const schema: PrismaSchema = parsePrismaSchema(
  readFileSync(new URL("../../prisma/schema.prisma", import.meta.url), "utf8"),
);
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

// Indexes with INCLUDE columns, which Prisma's schema cannot express (its comments name
// them): migration 20261204220000_accounting_fleet_lists_covering makes the fleet top-N's
// sorted lists index-only. Keyed by table, "key columns INCLUDE included columns".
const FLEET_LISTS = ["src_bytes", "src_packets", "dst_bytes", "dst_packets"].map(
  (c) => `table_name,bucket,${c} INCLUDE address`,
);
const COVERING: Record<string, string[]> = {
  accounting_fleet_hour: FLEET_LISTS,
  accounting_fleet_day: FLEET_LISTS,
  accounting_fleet_month: FLEET_LISTS,
};

const SCALARS: Record<string, string> = {
  String: "text",
  Int: "integer",
  BigInt: "bigint",
  Boolean: "boolean",
  Json: "jsonb",
  Float: "double precision",
  DateTime: "timestamp(3) without time zone",
};
const NATIVE: Record<string, string> = {
  Uuid: "uuid",
  Inet: "inet",
  "Timestamptz(3)": "timestamp(3) with time zone",
  Text: "text",
};
const ON_DELETE: Record<string, string> = {
  Cascade: "CASCADE",
  Restrict: "RESTRICT",
  SetNull: "SET NULL",
  NoAction: "NO ACTION",
};

function expectedType(f: PrismaField): string {
  const e = schema.enums.get(f.type);
  if (e) return e.dbName;
  if (f.nativeType) {
    const t = NATIVE[f.nativeType];
    assert.ok(t, `test does not know @db.${f.nativeType}; add it to NATIVE`);
    return t;
  }
  const t = SCALARS[f.type];
  assert.ok(t, `test does not know Prisma type ${f.type}; add it to SCALARS`);
  return t;
}

const scalarFields = (fields: PrismaField[]) => fields.filter((f) => !f.relation && !schema.models.has(f.type));
const key = (cols: string[]) => cols.join(",");

describe("schema.prisma agrees with the migrated database", () => {
  test("the same tables", async () => {
    const rows = await sql<{ relname: string }>(
      db.url,
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> '_prisma_migrations'`,
    );
    assert.deepEqual(rows.map((r) => r.relname).sort(), [...schema.models.values()].map((m) => m.table).sort());
  });

  test("the same enums with the same values in the same order", async () => {
    const rows = await sql<{ typname: string; values: string[] }>(
      db.url,
      `SELECT t.typname::text AS typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS values
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = 'public' GROUP BY t.typname`,
    );
    const actual = Object.fromEntries(rows.map((r) => [r.typname, r.values]));
    const expected = Object.fromEntries([...schema.enums.values()].map((e) => [e.dbName, e.values]));
    assert.deepEqual(actual, expected);
  });

  for (const model of schema.models.values()) {
    test(`${model.name} (${model.table}): columns, types, nullability, defaults`, async () => {
      const rows = await sql<{ attname: string; type: string; notnull: boolean; hasdefault: boolean }>(
        db.url,
        `SELECT a.attname::text AS attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull, a.atthasdef AS hasdefault
         FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
        [`"${model.table}"`],
      );
      const actual = Object.fromEntries(
        rows.map((r) => [r.attname, { type: r.type, nullable: !r.notnull, hasDefault: r.hasdefault }]),
      );
      const expected = Object.fromEntries(
        // A Prisma list is an array column, which Prisma creates nullable (bans.host_ids: NULL = any host).
        scalarFields(model.fields).map((f) => [
          f.column,
          { type: expectedType(f) + (f.list ? "[]" : ""), nullable: f.optional || f.list, hasDefault: f.hasDefault },
        ]),
      );
      assert.deepEqual(actual, expected);
    });

    test(`${model.name} (${model.table}): primary key, unique and plain indexes`, async () => {
      // Key columns only: Prisma cannot declare INCLUDE columns, checked against COVERING below.
      const rows = await sql<{ cols: string[]; included: string[] | null; isunique: boolean; isprimary: boolean }>(
        db.url,
        `SELECT array_agg(a.attname::text ORDER BY k.ord) FILTER (WHERE k.ord <= i.indnkeyatts) AS cols,
                array_agg(a.attname::text ORDER BY k.ord) FILTER (WHERE k.ord > i.indnkeyatts) AS included,
                i.indisunique AS isunique, i.indisprimary AS isprimary
         FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = $1::regclass GROUP BY i.indexrelid, i.indisunique, i.indisprimary, i.indnkeyatts`,
        [`"${model.table}"`],
      );
      assert.deepEqual(
        rows
          .filter((r) => r.included)
          .map((r) => `${key(r.cols)} INCLUDE ${key(r.included!)}`)
          .sort(),
        (COVERING[model.table] ?? []).slice().sort(),
        "covering indexes (INCLUDE columns)",
      );
      assert.deepEqual(
        rows.filter((r) => r.isprimary).map((r) => key(r.cols)),
        [key(model.id)],
        "primary key",
      );
      assert.deepEqual(
        rows
          .filter((r) => r.isunique && !r.isprimary)
          .map((r) => key(r.cols))
          .sort(),
        model.uniques.map(key).sort(),
        "unique indexes",
      );
      assert.deepEqual(
        rows
          .filter((r) => !r.isunique)
          .map((r) => key(r.cols))
          .sort(),
        model.indexes.map(key).sort(),
        "plain indexes",
      );
    });

    test(`${model.name} (${model.table}): foreign keys`, async () => {
      const rows = await sql<{ cols: string[]; ref: string; refcols: string[]; ondelete: string }>(
        db.url,
        `SELECT (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) AS cols,
                c.confrelid::regclass::text AS ref,
                (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(n, ord)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n) AS refcols,
                CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'r' THEN 'RESTRICT' WHEN 'n' THEN 'SET NULL' WHEN 'a' THEN 'NO ACTION' ELSE 'SET DEFAULT' END AS ondelete
         FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = $1::regclass`,
        [`"${model.table}"`],
      );
      const col = (f: string) => model.fields.find((x) => x.name === f)?.column ?? f;
      const expected = model.fields
        .filter((f) => f.relation && f.relation.fields.length > 0)
        .map((f) => {
          const target = schema.models.get(f.type)!;
          const refCol = (r: string) => target.fields.find((x) => x.name === r)?.column ?? r;
          return `${key(f.relation!.fields.map(col))} -> ${target.table}(${key(f.relation!.references.map(refCol))}) ON DELETE ${ON_DELETE[f.relation!.onDelete ?? "Restrict"]}`;
        })
        .sort();
      const actual = rows
        .map((r) => `${key(r.cols)} -> ${r.ref.replace(/"/g, "")}(${key(r.refcols)}) ON DELETE ${r.ondelete}`)
        .sort();
      assert.deepEqual(actual, expected);
    });
  }

  test("the reader sees the whole schema (a parsing slip would make the checks above vacuous)", () => {
    assert.ok(schema.models.size >= 11, `only ${schema.models.size} models parsed`);
    const fieldCount = [...schema.models.values()].reduce((n, m) => n + scalarFields(m.fields).length, 0);
    assert.ok(fieldCount >= 80, `only ${fieldCount} scalar fields parsed`);
    assert.equal(schema.enums.size, 5);
  });
});
