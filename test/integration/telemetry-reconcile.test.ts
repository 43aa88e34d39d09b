// The rollup reconcile (reconcile.ts) against real Postgres and BullMQ: rollup rows
// corrupted behind the rollup's back (per-host, fleet and table-total rows changed,
// deleted, invented) are repaired to exactly what a clean rollup wrote, a second run
// repairs nothing, a bucket still marked dirty is left to the rollup, a row outside the
// window is not touched, and the BullMQ service repairs by itself.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { loadConfig } from "../../src/api/config.ts";
import { createDb, type Db } from "../../src/api/db/client.ts";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { topTalkers } from "../../src/api/telemetry/queries.ts";
import { reconcileRollups, repairedRows } from "../../src/api/telemetry/reconcile.ts";
import { DEFAULT_RETENTION } from "../../src/api/telemetry/retention.ts";
import { rollupAll } from "../../src/api/telemetry/rollups.ts";
import { telemetryService } from "../../src/api/telemetry/service.ts";
import { createTestDatabase, sql, TEST_REDIS_URL, type TestDatabase } from "../support/db.ts";
import { batch, expectedTotals, makeHost, rng, type Row } from "../support/telemetry-batches.ts";

let database: TestDatabase;
let db: Db;
before(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
});
after(async () => {
  await db?.$disconnect();
  await database?.drop();
});

const HOUR = 3600_000;
const TABLES = [
  "accounting_minute",
  "accounting_hour",
  "accounting_day",
  "accounting_month",
  "accounting_fleet_hour",
  "accounting_fleet_day",
  "accounting_fleet_month",
  "accounting_table_minute",
  "accounting_table_hour",
  "accounting_table_day",
];

/** Every rollup row, as sorted text: equal snapshots mean equal tables. */
async function snapshot(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of TABLES) {
    const rows = await sql<{ r: string }>(database.url, `SELECT t::text AS r FROM ${t} t ORDER BY 1`);
    out[t] = rows.map((x) => x.r);
  }
  return out;
}

const sent: ReturnType<typeof batch>[] = [];
let hosts: string[] = [];

describe("rollup reconcile", () => {
  before(async () => {
    hosts = [await makeHost(db, "rec-a"), await makeHost(db, "rec-b")];
    const rand = rng(7);
    const now = Date.now();
    // Two hosts sharing addresses (so fleet rows sum over hosts), over the last 5 hours,
    // and one batch 30 h ago, outside the 6 h window.
    for (let i = 0; i < 40; i++) {
      const host = hosts[i % 2]!;
      const t = i === 0 ? now - 30 * HOUR : now - Math.floor(rand() * 5 * HOUR);
      const rows: Row[] = ["10.9.0.1", "10.9.0.2", "10.9.0.3", "2001:db8::7", ""]
        .filter(() => rand() < 0.8)
        .map((ip) => ({
          table: "lan",
          ip,
          srcBytes: 1 + Math.floor(rand() * 1e6),
          srcPackets: 1 + Math.floor(rand() * 1000),
          dstBytes: Math.floor(rand() * 1e6),
          dstPackets: Math.floor(rand() * 1000),
        }));
      const b = batch(`rec-${host}`, i + 1, t, rows);
      sent.push(b);
      await ingestTelemetry({ db }, host, b);
    }
    await rollupAll(db, DEFAULT_RETENTION);
  });

  test("a clean rollup needs no repair; corrupted rows are repaired to what the rollup wrote", async () => {
    const clean = await snapshot();
    const first = await reconcileRollups(db, DEFAULT_RETENTION);
    assert.equal(repairedRows(first), 0, `nothing to repair after a clean rollup: ${JSON.stringify(first.repaired)}`);

    // Corrupt the newest rows (always inside the window): changed, deleted, invented.
    const newest = (t: string) => `(SELECT max(bucket) FROM ${t})`;
    await sql(
      database.url,
      `UPDATE accounting_hour SET src_bytes = src_bytes + 1000 WHERE bucket = ${newest("accounting_hour")} AND address = '10.9.0.1'`,
    );
    await sql(
      database.url,
      `DELETE FROM accounting_minute WHERE ctid = (SELECT ctid FROM accounting_minute WHERE bucket = ${newest("accounting_minute")} LIMIT 1)`,
    );
    await sql(
      database.url,
      `UPDATE accounting_fleet_day SET dst_packets = dst_packets + 5 WHERE bucket = ${newest("accounting_fleet_day")}`,
    );
    await sql(
      database.url,
      `UPDATE accounting_fleet_hour SET src_bytes = src_bytes * 3 WHERE bucket = ${newest("accounting_fleet_hour")} AND address = '10.9.0.2'`,
    );
    await sql(
      database.url,
      `INSERT INTO accounting_fleet_hour (table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
       VALUES ('lan', '10.9.9.9', date_trunc('hour', now()) - interval '2 hours', 999999999, 1, 0, 0)`,
    );
    await sql(database.url, `DELETE FROM accounting_table_minute WHERE bucket = ${newest("accounting_table_minute")}`);
    await sql(
      database.url,
      `UPDATE accounting_month SET dst_bytes = 0 WHERE bucket = ${newest("accounting_month")} AND address = '10.9.0.3'`,
    );
    const corrupted = await snapshot();
    for (const t of [
      "accounting_hour",
      "accounting_minute",
      "accounting_fleet_day",
      "accounting_fleet_hour",
      "accounting_table_minute",
      "accounting_month",
    ])
      assert.notDeepEqual(corrupted[t], clean[t], `${t} was corrupted`);
    // The drift shows: the fleet top-N (read from the fleet rows) names an address nobody sent.
    const hour = Math.floor(Date.now() / HOUR) * HOUR;
    const whole = { from: new Date(hour - 4 * HOUR), to: new Date(hour) }; // read from the fleet hour rows
    const bad = await topTalkers(db, { table: "lan" }, whole, "bytes", "src", 1);
    assert.equal(bad.items[0]?.ip, "10.9.9.9");

    const r = await reconcileRollups(db, DEFAULT_RETENTION);
    assert.deepEqual(await snapshot(), clean, "every rollup table is back to what the clean rollup wrote");
    for (const t of [
      "accounting_hour",
      "accounting_minute",
      "accounting_fleet_day",
      "accounting_fleet_hour",
      "accounting_table_minute",
      "accounting_month",
    ])
      assert.ok((r.repaired[t]?.written ?? 0) + (r.repaired[t]?.deleted ?? 0) > 0, `${t} repaired`);
    assert.equal(r.repaired.accounting_fleet_hour?.deleted, 1, "the invented fleet row is deleted");
    assert.equal(repairedRows(await reconcileRollups(db, DEFAULT_RETENTION)), 0, "a second run repairs nothing");

    // And the answers equal what was sent again.
    const want = expectedTotals(sent, "lan");
    const top = await topTalkers(db, { table: "lan" }, {}, "bytes", "src", 10);
    const exp = [...want.entries()]
      .filter(([ip]) => ip !== "")
      .map(([ip, v]) => `${ip}=${v[0]}`)
      .sort();
    assert.deepEqual(top.items.map((i) => `${i.ip}=${i.value}`).sort(), exp);
  });

  test("a bucket still marked dirty is left to the rollup; a row outside the window is not touched", async () => {
    const clean = await snapshot();
    // A new batch: its minute is marked dirty and its rows are not rolled up yet.
    const b = batch(`rec-${hosts[0]}`, 1000, Date.now(), [
      { table: "lan", ip: "10.9.0.1", srcBytes: 77, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
    ]);
    sent.push(b);
    await ingestTelemetry({ db }, hosts[0]!, b);
    // The oldest hour (30 h ago, outside a 6 h window) corrupted.
    await sql(
      database.url,
      `UPDATE accounting_hour SET src_bytes = src_bytes + 1 WHERE bucket = (SELECT min(bucket) FROM accounting_hour)`,
    );
    const r = await reconcileRollups(db, DEFAULT_RETENTION, { hours: 6 });
    assert.equal(r.repaired.accounting_minute?.written, 0, "the dirty minute is not written by the reconcile");
    assert.equal(r.repaired.accounting_hour?.written, 0);
    const [old] = await sql<{ n: string }>(
      database.url,
      `SELECT count(*) AS n FROM accounting_hour o WHERE bucket = (SELECT min(bucket) FROM accounting_hour)
       AND src_bytes <> (SELECT sum(src_bytes) FROM accounting_minute m WHERE m.host_id = o.host_id AND m.address = o.address
                         AND m.bucket >= o.bucket AND m.bucket < o.bucket + interval '1 hour')`,
    );
    assert.equal(Number(old!.n) > 0, true, "the hour outside the window keeps its corruption");
    const [mark] = await sql<{ n: string }>(database.url, `SELECT count(*) AS n FROM telemetry_dirty`);
    assert.equal(Number(mark!.n), 1, "the mark stays for the rollup");
    // The rollup then takes the dirty minute; a 48 h reconcile repairs the old hour too.
    await rollupAll(db, DEFAULT_RETENTION);
    const wide = await reconcileRollups(db, DEFAULT_RETENTION, { hours: 48 });
    assert.ok((wide.repaired.accounting_hour?.written ?? 0) >= 1);
    assert.notDeepEqual(await snapshot(), clean, "the new batch is in");
    assert.equal(repairedRows(await reconcileRollups(db, DEFAULT_RETENTION, { hours: 48 })), 0);
  });

  test("the BullMQ service runs the reconcile by itself", async () => {
    const prefix = `palisade-test-bull-${randomBytes(4).toString("hex")}`;
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    const config = loadConfig({ DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL });
    const warned: unknown[] = [];
    const log = {
      info() {},
      error() {},
      warn(o: unknown) {
        warned.push(o);
      },
      debug() {},
      child() {
        return log;
      },
    } as never;
    const pick = `(SELECT ctid FROM accounting_fleet_day WHERE bucket = (SELECT max(bucket) FROM accounting_fleet_day) ORDER BY address LIMIT 1)`;
    const [want] = await sql<{ v: string }>(
      database.url,
      `SELECT src_bytes::text AS v FROM accounting_fleet_day WHERE ctid = ${pick}`,
    );
    await sql(database.url, `UPDATE accounting_fleet_day SET src_bytes = 1 WHERE ctid = ${pick}`);
    const svc = await telemetryService({
      prefix,
      rollupEveryMs: 3_600_000,
      reconcileEveryMs: 200,
      retention: DEFAULT_RETENTION,
    }).start({ config, db, redis, log });
    try {
      let v = "1";
      for (let i = 0; i < 150 && v === "1"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const [row] = await sql<{ v: string }>(
          database.url,
          `SELECT f.src_bytes::text AS v FROM accounting_fleet_day f
           WHERE bucket = (SELECT max(bucket) FROM accounting_fleet_day) ORDER BY address LIMIT 1`,
        );
        v = row!.v;
      }
      assert.equal(v, want!.v, "the repeatable reconcile job repaired the fleet row");
      // Each level commits on its own, so the row is repaired before the run ends and logs.
      for (let i = 0; i < 150 && warned.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(warned.length > 0, "the repair is logged as a warning");
    } finally {
      await svc.stop();
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
