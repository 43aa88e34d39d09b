// The rollup's plans on tables without statistics, against real Postgres: a fresh
// database (or a new day's partition) has none until autovacuum analyzes it, and here
// autovacuum is kept off the accounting tables so the test sees that state whatever the
// server's settings. Every plan the run's statements get is captured through the
// server's auto_explain (plain EXPLAIN, sent to this client as a NOTICE), so what is
// checked is the plan of the statement the rollup really sent, not a copy of it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import pg from "pg";
import { createDb, type Db, poolOf } from "../../src/api/db/client.ts";
import { DEFAULT_RETENTION } from "../../src/api/telemetry/retention.ts";
import { runRollup } from "../../src/api/telemetry/rollups.ts";
import { createTestDatabase, sql, type TestDatabase } from "../support/db.ts";

const HOSTS = 100;
const ADDRS = 1000;

let database: TestDatabase;
let db: Db;
const plans: { text: string; plan: PlanNode }[] = [];

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Index Cond"?: string;
  Filter?: string;
  Plans?: PlanNode[];
}

before(async () => {
  database = await createTestDatabase();
  const name = pg.escapeIdentifier(database.name);
  for (const [k, v] of [
    ["session_preload_libraries", "auto_explain"],
    ["auto_explain.log_min_duration", "0"],
    ["auto_explain.log_level", "notice"],
    ["auto_explain.log_format", "json"],
  ])
    await sql(database.url, `ALTER DATABASE ${name} SET ${k} = ${pg.escapeLiteral(v!)}`);
  const tables = await sql<{ t: string }>(
    database.url,
    `SELECT c.oid::regclass::text AS t FROM pg_class c
     WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'accounting\\_%'`,
  );
  for (const { t } of tables) await sql(database.url, `ALTER TABLE ${t} SET (autovacuum_enabled = false)`);
  db = createDb(database.url);
  poolOf(db).on("connect", (client) =>
    client.on("notice", (n) => {
      const json = n.message?.replace(/^duration: [0-9.]+ ms\s+plan:\s*/, "");
      if (!json?.startsWith("{")) return;
      const p = JSON.parse(json) as { "Query Text": string; Plan: PlanNode };
      plans.push({ text: p["Query Text"], plan: p.Plan });
    }),
  );
});
after(async () => {
  await db?.$disconnect();
  await database?.drop();
});

const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

test("the fleet rollup probes the per-host rows by their key on tables never analyzed", async () => {
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const minute = new Date(hour + 60_000);
  // A previous run's hour rows for every host and address (100,000 rows, no statistics),
  // and one new minute of samples in that hour, marked dirty, for every host.
  await sql(database.url, `INSERT INTO hosts (name) SELECT 'plan-' || g FROM generate_series(1, ${HOSTS}) g`);
  await sql(
    database.url,
    `INSERT INTO accounting_hour (host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT h.id, 'lan', '10.0.0.0'::inet + a, $1, 100, 1, 0, 0 FROM hosts h, generate_series(1, ${ADDRS}) a`,
    [new Date(hour)],
  );
  await sql(
    database.url,
    `INSERT INTO accounting_fleet_hour (table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT 'lan', '10.0.0.0'::inet + a, $1, 100 * ${HOSTS}, ${HOSTS}, 0, 0 FROM generate_series(1, ${ADDRS}) a`,
    [new Date(hour)],
  );
  await sql(
    database.url,
    `INSERT INTO accounting_samples (at, host_id, table_name, address, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT $1, h.id, 'lan', '10.0.0.0'::inet + a, 7, 1, 0, 0 FROM hosts h, generate_series(1, ${ADDRS}) a`,
    [minute],
  );
  await sql(database.url, `INSERT INTO telemetry_dirty (host_id, bucket) SELECT id, $1 FROM hosts`, [minute]);

  plans.length = 0;
  const r = await runRollup(db, DEFAULT_RETENTION, { maxMarks: HOSTS });
  assert.equal(r.hours, HOSTS);

  const fleet = plans.filter((p) => p.text.includes("INSERT INTO accounting_fleet_hour"));
  assert.equal(fleet.length, 1, `one fleet-hour insert planned; saw ${plans.length} plans`);
  const probes = nodes(fleet[0]!.plan).filter((n) => n["Relation Name"] === "accounting_hour");
  assert.ok(probes.length > 0, "the fleet insert reads accounting_hour");
  for (const n of probes) {
    // A hash join reads the table once; an index probe must be by the whole key. A probe
    // through another index filters host_id (and address) over every row it reads.
    if (n["Node Type"] === "Seq Scan") continue;
    assert.equal(n["Index Name"], "accounting_hour_pkey", `accounting_hour probed by ${JSON.stringify(n)}`);
    assert.doesNotMatch(n.Filter ?? "", /host_id/);
  }

  // The minute level reads each marked minute's samples through the (host_id, at) key,
  // never a scan of the whole partition (as a join it hashed the marks and scanned the
  // day's partition every run, growing with the day).
  const minute0 = plans.filter(
    (p) => p.text.includes("INSERT INTO rollup_new") && /accounting_samples s\b/.test(p.text),
  );
  assert.equal(minute0.length, 1, "one minute-level read of the samples");
  const reads = nodes(minute0[0]!.plan).filter((n) => n["Relation Name"]?.startsWith("accounting_samples"));
  assert.ok(reads.length > 0, "the minute level reads accounting_samples");
  for (const n of reads) {
    assert.notEqual(n["Node Type"], "Seq Scan", `accounting_samples read by ${JSON.stringify(n)}`);
  }
  const scans = nodes(minute0[0]!.plan).filter((n) => n["Index Cond"]?.includes("host_id"));
  assert.ok(scans.length > 0, "the samples are read by their host_id key");

  // And the answer is still exact: each fleet row is its old value plus one minute of every host.
  const [f] = await sql<{ n: string; s: string }>(
    database.url,
    `SELECT count(*)::text AS n, sum(src_bytes)::text AS s FROM accounting_fleet_hour WHERE bucket = $1`,
    [new Date(hour)],
  );
  assert.equal(f!.n, String(ADDRS));
  // The recomputed hour of each host is its minute rows only (7 bytes): the previous
  // hour rows were not from these minutes, so the fleet sum moves by 7 - 100 per host.
  assert.equal(f!.s, String(ADDRS * HOSTS * 7));
});
