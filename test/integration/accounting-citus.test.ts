// The path past one database (docs/scaling.md): the accounting tables can be distributed
// by host_id with Citus and the same SQL. Citus is not installed here, so this checks
// what Citus requires, on the real schema and on the SQL Palisade really sends:
// - catalog (migrated database): every primary key / unique index of a distributed table
//   includes host_id; no triggers on them; foreign keys only to hosts (a reference table);
// - statements: every statement the ingest (COPY included), rollups, retention and the
//   read queries send is captured at the node-postgres client; those touching a
//   distributed table use none of the constructs Citus cannot distribute over host_id:
//   row locks (FOR UPDATE/SHARE), window functions, WITH RECURSIVE, LOCK TABLE,
//   TABLESAMPLE, ctid; an upsert's conflict target includes host_id; an INSERT ... SELECT
//   between distributed tables groups by host_id (so it runs shard by shard).
// Views over the distributed tables are checked with the same rules.
// telemetry_dirty is deliberately not distributed (the rollup takes marks of every host
// FOR UPDATE SKIP LOCKED): it stays on the coordinator (docs/scaling.md says why).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { createDb, type Db } from "../../src/api/db/client.ts";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { applyRetention, ensurePartitions } from "../../src/api/telemetry/partitions.ts";
import { addressTotals, listTables, series, topTalkers } from "../../src/api/telemetry/queries.ts";
import { DEFAULT_RETENTION } from "../../src/api/telemetry/retention.ts";
import { rollupAll } from "../../src/api/telemetry/rollups.ts";
import { createTestDatabase, sql, type TestDatabase } from "../support/db.ts";
import { batch, makeHost } from "../support/telemetry-batches.ts";

/** Distributed by host_id (co-located); docs/scaling.md. */
const DISTRIBUTED = [
  "accounting_samples",
  "accounting_minute",
  "accounting_hour",
  "accounting_day",
  "accounting_month",
  "accounting_tables",
  "telemetry_batches",
  "accounting_table_minute",
  "accounting_table_hour",
  "accounting_table_day",
];
// accounting_fleet_hour/_day/_month (per address over all hosts) have no host_id: they
// stay coordinator tables (docs/scaling.md), written by the rollup from the shards.

const touches = (text: string) => DISTRIBUTED.filter((t) => new RegExp(`\\b${t}\\b`, "i").test(text));

/** Why Citus could not run `text` distributed by host_id, or [] when it can. */
function citusProblems(text: string): string[] {
  const t = text.replace(/\s+/g, " ");
  if (touches(t).length === 0) return [];
  const out: string[] = [];
  if (/\bFOR (NO KEY )?(UPDATE|SHARE|KEY SHARE)\b/i.test(t)) out.push("row lock (FOR UPDATE/SHARE) over shards");
  if (/\bOVER\s*\(/i.test(t) && !/\bOVER\s*\(\s*PARTITION BY[^)]*\bhost_id\b/i.test(t))
    out.push("window function not partitioned by host_id");
  if (/\bWITH RECURSIVE\b/i.test(t)) out.push("WITH RECURSIVE");
  if (/\bLOCK TABLE\b/i.test(t)) out.push("LOCK TABLE");
  if (/\bTABLESAMPLE\b/i.test(t)) out.push("TABLESAMPLE");
  if (/\bctid\b/i.test(t)) out.push("ctid");
  const ins = /^\s*INSERT INTO (\w+)[^]*?\bSELECT\b([^]*)$/i.exec(t);
  const into = /^\s*INSERT INTO (\w+)/i.exec(t)?.[1]?.toLowerCase();
  // An upsert into a distributed table must name a key that routes to one shard.
  const conflict = /\bON CONFLICT\s*\(([^)]*)\)/i.exec(t);
  if (conflict && (into === undefined || DISTRIBUTED.includes(into)) && !/\bhost_id\b/.test(conflict[1]!))
    out.push("ON CONFLICT target without host_id");
  if (ins && DISTRIBUTED.includes(ins[1]!.toLowerCase())) {
    const select = ins[2]!.split(/\bON CONFLICT\b/i)[0]!;
    const from = [...select.matchAll(/\b(?:FROM|JOIN)\s+(\w+)/gi)]
      .map((m) => m[1]!.toLowerCase())
      .filter((x) => DISTRIBUTED.includes(x));
    if (from.length > 0 && !/\bGROUP BY\b[^]*\bhost_id\b/i.test(select))
      out.push("INSERT ... SELECT between distributed tables not grouped by host_id");
  }
  return out;
}

let database: TestDatabase;
let db: Db;
const seen: string[] = [];
const original = pg.Client.prototype.query;

before(async () => {
  database = await createTestDatabase();
  // Capture every statement any node-postgres client sends (Prisma's adapter and our COPY).
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0] as string | { text?: string };
    const text = typeof q === "string" ? q : q?.text;
    if (typeof text === "string") seen.push(text);
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  db = createDb(database.url);
});
after(async () => {
  pg.Client.prototype.query = original;
  await db?.$disconnect();
  await database?.drop();
});

describe("accounting SQL stays distributable by host_id (Citus)", () => {
  test("the checker flags what Citus cannot distribute (it can fail)", () => {
    assert.deepEqual(citusProblems("SELECT * FROM accounting_day WHERE host_id = $1 FOR UPDATE"), [
      "row lock (FOR UPDATE/SHARE) over shards",
    ]);
    assert.deepEqual(citusProblems("SELECT address, rank() OVER (ORDER BY src_bytes) FROM accounting_hour"), [
      "window function not partitioned by host_id",
    ]);
    assert.deepEqual(
      citusProblems(
        "INSERT INTO accounting_tables (host_id, table_name) VALUES ($1, $2) ON CONFLICT (table_name) DO NOTHING",
      ),
      ["ON CONFLICT target without host_id"],
    );
    assert.deepEqual(
      citusProblems(
        "INSERT INTO accounting_day (host_id, bucket) SELECT host_id, b FROM accounting_hour GROUP BY table_name, b",
      ),
      ["INSERT ... SELECT between distributed tables not grouped by host_id"],
    );
    assert.deepEqual(
      citusProblems("SELECT 1 FROM telemetry_dirty FOR UPDATE SKIP LOCKED"),
      [],
      "telemetry_dirty is not distributed",
    );
    assert.deepEqual(
      citusProblems(
        "INSERT INTO accounting_fleet_day AS f (table_name) SELECT n.table_name FROM rollup_new n LEFT JOIN accounting_day o ON o.host_id = n.host_id GROUP BY 1 ON CONFLICT (table_name, address, bucket) DO NOTHING",
      ),
      [],
      "an upsert into a coordinator table may read the shards",
    );
  });

  test("catalog: unique keys include host_id, no triggers, foreign keys only to hosts", async () => {
    const uniques = await sql<{ tbl: string; idx: string; cols: string[] }>(
      database.url,
      `SELECT c.relname AS tbl, i.relname AS idx, array_agg(a.attname::text) AS cols
       FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (x.indkey)
       WHERE x.indisunique AND c.relname = ANY ($1) GROUP BY 1, 2`,
      [DISTRIBUTED],
    );
    assert.ok(uniques.length >= DISTRIBUTED.length - 1, "the distributed tables' keys were found");
    for (const u of uniques)
      assert.ok(
        u.cols.includes("host_id"),
        `${u.tbl}: unique index ${u.idx} (${u.cols.join(", ")}) must include host_id`,
      );
    const triggers = await sql<{ t: string }>(
      database.url,
      `SELECT tgname AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE NOT tgisinternal AND c.relname = ANY ($1)`,
      [DISTRIBUTED],
    );
    assert.deepEqual(triggers, []);
    const fks = await sql<{ tbl: string; ref: string }>(
      database.url,
      `SELECT c.relname AS tbl, r.relname AS ref FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid
       WHERE k.contype = 'f' AND c.relname = ANY ($1)`,
      [DISTRIBUTED],
    );
    for (const f of fks)
      assert.equal(f.ref, "hosts", `${f.tbl} references ${f.ref}: only hosts (a reference table) is allowed`);
    // Views over them (Grafana's, for example) are planned like any query: same rules.
    const views = await sql<{ name: string; def: string }>(
      database.url,
      `SELECT viewname AS name, definition AS def FROM pg_views WHERE schemaname = 'public'`,
    );
    const bad = views
      .map((v) => ({ view: v.name, problems: citusProblems(v.def) }))
      .filter((v) => v.problems.length > 0);
    assert.deepEqual(bad, []);
  });

  test("every statement of ingest, rollups, retention and queries is distributable", async () => {
    await ensurePartitions(db);
    const host = await makeHost(db, "citus-1");
    const now = Date.now();
    for (let i = 0; i < 3; i++) {
      await ingestTelemetry(
        { db },
        host,
        batch(
          "c",
          i + 1,
          now - 120_000 + i * 1000,
          [
            { table: "lan", ip: "10.0.0.1", srcBytes: 100, srcPackets: 1, dstBytes: 5, dstPackets: 1 },
            { table: "lan6", ip: "2001:db8:1::/64", srcBytes: 70, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
          ],
          {
            quotas: [{ name: "q", mode: "bytes", limit: 10, used: 1, grow: false }],
            counters: [{ name: "c", bytes: 1, packets: 1 }],
          },
        ),
      );
    }
    await rollupAll(db, DEFAULT_RETENTION);
    const scope = { table: "lan", hostId: host };
    const to = new Date(now + 60_000);
    await topTalkers(db, scope, { from: new Date(now - 86_400_000), to }, "bytes", "both", 10);
    await topTalkers(db, { table: "lan" }, { from: new Date(now - 365 * 86_400_000), to }, "packets", "src", 10);
    await addressTotals(db, scope, { from: new Date(now - 30 * 86_400_000), to }, { limit: 10 });
    await series(db, { ...scope, address: "10.0.0.1" }, new Date(now - 86_400_000), to, "1h");
    await series(db, { table: "lan6" }, new Date(now - 3600_000), to, "1m");
    await listTables(db, { limit: 10 });
    await applyRetention(db, DEFAULT_RETENTION);

    const relevant = seen.filter((s) => touches(s).length > 0);
    for (const t of DISTRIBUTED)
      assert.ok(
        relevant.some((s) => touches(s).includes(t)),
        `a statement touching ${t} was captured`,
      );
    assert.ok(
      relevant.some((s) => /^\s*COPY accounting_samples/i.test(s)),
      "the ingest's COPY was captured",
    );
    const bad = relevant
      .map((s) => ({ sql: s.replace(/\s+/g, " ").slice(0, 300), problems: citusProblems(s) }))
      .filter((x) => x.problems.length > 0);
    assert.deepEqual(bad, []);
  });
});
