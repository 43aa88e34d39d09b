// Rollups and partitions against real Postgres (and BullMQ on the real Redis):
// minute/hour/day tables equal the raw sums, a rerun changes nothing, late batches are
// folded in, queries over mixed resolutions equal raw sums, retention drops old
// partitions, inserts never fail for days without a partition, and the BullMQ service
// runs the rollup by itself.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import pg from "pg";
import { loadConfig } from "../../src/api/config.ts";
import { createDb, type Db } from "../../src/api/db/client.ts";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { applyRetention, ensurePartitions } from "../../src/api/telemetry/partitions.ts";
import { addressTotals, series, topTalkers } from "../../src/api/telemetry/queries.ts";
import { DEFAULT_RETENTION } from "../../src/api/telemetry/retention.ts";
import { rollupAll, rollupHorizon, runRollup } from "../../src/api/telemetry/rollups.ts";
import { telemetryService } from "../../src/api/telemetry/service.ts";
import { createTestDatabase, sql, TEST_REDIS_URL, type TestDatabase } from "../support/db.ts";
import { batch, expectedTotals, makeHost, rng } from "../support/telemetry-batches.ts";

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
const num = (v: unknown) => Number(v);

/** Sums of one level grouped by its bucket, and the raw samples grouped the same way. */
async function compareLevel(level: "minute" | "hour" | "day", hostId: string) {
  const q = (from: string, time: string) =>
    sql<{ k: string; v: string }>(
      database.url,
      `SELECT table_name || '|' || address::text || '|' || date_bin('1 ${level}'::interval, ${time}, TIMESTAMPTZ '1970-01-01Z')::text AS k,
              concat_ws(',', sum(src_bytes), sum(src_packets), sum(dst_bytes), sum(dst_packets)) AS v
       FROM ${from} WHERE host_id = $1 GROUP BY 1 ORDER BY 1`,
      [hostId],
    );
  const rolled = await q(`accounting_${level}`, "bucket");
  const raw = await q("accounting_samples", "at");
  return { rolled, raw };
}

describe("telemetry rollups", () => {
  test("an ingest into a minute a rollup run is recomputing does not wait for the run, and the run keeps its mark", async () => {
    const host = await makeHost(db, "rollup-busy");
    const at = Date.now();
    const row = (srcBytes: number) => [
      { table: "busy", ip: "10.4.0.1", srcBytes, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
    ];
    await ingestTelemetry({ db }, host, batch("b", 1, at, row(100)));
    // Hold the run inside its transaction, after it read the marks: its minute totals wait for this lock.
    const blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await blocker.query("COMMIT");
      await blocker.end();
    };
    try {
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE accounting_table_minute IN ACCESS EXCLUSIVE MODE");
      const run = runRollup(db, DEFAULT_RETENTION);
      run.catch(() => {});
      const waiting = (like: string) =>
        sql(
          database.url,
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
          [like],
        );
      for (let i = 0; i < 300 && (await waiting("INSERT INTO accounting_table_minute%")).length === 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(
        (await waiting("INSERT INTO accounting_table_minute%")).length,
        1,
        "the run is held mid-transaction",
      );
      let done = false;
      const ingest = ingestTelemetry({ db }, host, batch("b", 2, at, row(7))).then(() => (done = true));
      ingest.catch(() => {});
      // Either the ingest commits, or its mark upsert is seen queued behind the run (the stall).
      let blocked = false;
      for (let i = 0; i < 600 && !done && !blocked; i++) {
        blocked = (await waiting("INSERT INTO telemetry_dirty%")).length > 0;
        if (!blocked) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(blocked, false, "the ingest's dirty mark waited for the rollup run's transaction");
      assert.equal(done, true);
      await release();
      await run;
      assert.ok((await rollupHorizon(db, host)) !== null, "the mark the ingest bumped mid-run is kept");
      await rollupAll(db, DEFAULT_RETENTION);
      assert.equal(await rollupHorizon(db, host), null);
      const { rolled, raw } = await compareLevel("minute", host);
      assert.deepEqual(rolled, raw);
      assert.equal(num(raw[0]?.v.split(",")[0]), 107);
    } finally {
      await release().catch(() => {});
    }
  });

  test("minute, hour and day rollups equal the raw sums, reruns change nothing, late data is folded in", async () => {
    const host = await makeHost(db, "rollup-a");
    const rand = rng(11);
    const now = Date.now();
    const base = Math.floor((now - 40 * HOUR) / HOUR) * HOUR; // spans two UTC days
    const ips = ["10.2.0.1", "10.2.0.2", "10.2.0.9", ""];
    const sent = [];
    for (let i = 0; i < 60; i++) {
      const t = base + Math.floor(rand() * 38 * HOUR);
      const b = batch(
        "r",
        i + 1,
        t,
        ips
          .filter(() => rand() < 0.7)
          .map((ip) => ({
            table: "lan",
            ip,
            srcBytes: 1 + Math.floor(rand() * 1e5),
            srcPackets: 1 + Math.floor(rand() * 100),
            dstBytes: Math.floor(rand() * 1e5),
            dstPackets: Math.floor(rand() * 100),
          })),
      );
      sent.push(b);
      await ingestTelemetry({ db }, host, b);
    }
    assert.ok((await rollupHorizon(db, host)) !== null, "ingest marked minutes dirty");
    const r1 = await rollupAll(db, DEFAULT_RETENTION, { maxMarks: 7 }); // several small runs
    assert.equal(r1.remaining, 0);
    assert.equal(await rollupHorizon(db, host), null);
    for (const level of ["minute", "hour", "day"] as const) {
      const { rolled, raw } = await compareLevel(level, host);
      assert.ok(rolled.length > 0);
      assert.deepEqual(rolled, raw, `${level} rollup equals the raw sums`);
    }
    // Idempotent: mark every minute dirty again and rerun: identical tables.
    const snapshot = await sql(
      database.url,
      `SELECT * FROM accounting_hour WHERE host_id = $1 ORDER BY table_name, address, bucket`,
      [host],
    );
    await sql(
      database.url,
      `INSERT INTO telemetry_dirty (host_id, bucket) SELECT DISTINCT host_id, date_trunc('minute', at) FROM accounting_samples WHERE host_id = $1 ON CONFLICT DO NOTHING`,
      [host],
    );
    await rollupAll(db, DEFAULT_RETENTION);
    assert.deepEqual(
      await sql(database.url, `SELECT * FROM accounting_hour WHERE host_id = $1 ORDER BY table_name, address, bucket`, [
        host,
      ]),
      snapshot,
    );
    // A late batch (spooled during an outage) for an old minute.
    const late = batch("r", 1000, base + 5 * HOUR + 30_000, [
      { table: "lan", ip: "10.2.0.1", srcBytes: 777, srcPackets: 7, dstBytes: 0, dstPackets: 0 },
    ]);
    sent.push(late);
    await ingestTelemetry({ db }, host, late);
    // Before the rollup catches up, queries read raw data from the oldest dirty minute on: still exact.
    const want = expectedTotals(sent, "lan");
    const { items: before } = await addressTotals(db, { table: "lan", hostId: host }, {}, { limit: 100 });
    assert.deepEqual(
      new Map(before.map((r) => [r.ip, [num(r.srcBytes), num(r.srcPackets), num(r.dstBytes), num(r.dstPackets)]])),
      want,
    );
    await rollupAll(db, DEFAULT_RETENTION);
    for (const level of ["minute", "hour", "day"] as const) {
      const { rolled, raw } = await compareLevel(level, host);
      assert.deepEqual(rolled, raw, `${level} rollup after a late batch`);
    }
    // Queries over ranges that mix day/hour/minute/raw segments equal raw sums of that range.
    for (const [from, to] of [
      [base + 90_000 + 17, now],
      [base + 3 * HOUR + 30_000, base + 30 * HOUR + 45_000],
      [base, base + 24 * HOUR],
    ] as const) {
      const { items: got } = await addressTotals(
        db,
        { table: "lan", hostId: host },
        { from: new Date(from), to: new Date(to) },
        { limit: 100 },
      );
      const raw = await sql<{ ip: string; v: string }>(
        database.url,
        `SELECT CASE WHEN address = '0.0.0.0/0'::inet THEN '' ELSE host(address) END ip, concat_ws(',', sum(src_bytes), sum(src_packets), sum(dst_bytes), sum(dst_packets)) v
         FROM accounting_samples WHERE host_id = $1 AND at >= $2 AND at < $3 GROUP BY 1 ORDER BY 1`,
        [host, new Date(from), new Date(to)],
      );
      assert.deepEqual(
        got.map((r) => [r.ip, [r.srcBytes, r.srcPackets, r.dstBytes, r.dstPackets].join(",")]).sort(),
        raw.map((r) => [r.ip, r.v]).sort(),
        `range ${new Date(from).toISOString()}..${new Date(to).toISOString()}`,
      );
    }
    // Series: per-hour points sum to the same totals; top talkers order by bytes.
    const { items: pts } = await series(db, { table: "lan", hostId: host }, new Date(base), new Date(now), "1h");
    assert.equal(
      pts.reduce((a, p) => a + num(p.srcBytes), 0),
      [...want.values()].reduce((a, v) => a + v[0], 0),
    );
    const { items: top } = await topTalkers(db, { table: "lan", hostId: host }, {}, "bytes", "src", 2);
    const order = [...want]
      .filter(([ip]) => ip !== "")
      .sort((a, b) => b[1][0] - a[1][0])
      .slice(0, 2)
      .map(([ip]) => ip);
    assert.deepEqual(
      top.map((t) => t.ip),
      order,
    );
  });

  test("partitions: created ahead, rows caught by DEFAULT move in, expired days dropped, inserts never fail", async () => {
    const host = await makeHost(db, "part-a");
    const now = new Date(Date.UTC(2031, 5, 15, 12));
    // A sample for a day with no partition lands in DEFAULT (does not fail).
    await sql(
      database.url,
      `INSERT INTO accounting_samples (at, host_id, table_name, address) VALUES ('2031-06-16T01:00:00Z', $1, 'x', '10.0.0.1')`,
      [host],
    );
    const created = await ensurePartitions(db, now, { aheadDays: 2, backDays: 1 });
    assert.ok(created.includes("accounting_samples_p20310616"));
    assert.ok(created.includes("log_events_p20310617") && created.includes("accounting_minute_p20310614"));
    assert.deepEqual(await ensurePartitions(db, now, { aheadDays: 2, backDays: 1 }), [], "idempotent");
    const [where] = await sql<{ p: string }>(
      database.url,
      `SELECT tableoid::regclass::text p FROM accounting_samples WHERE host_id = $1`,
      [host],
    );
    assert.equal(where?.p, "accounting_samples_p20310616", "the DEFAULT partition's row moved into its day");
    // Old data in the DEFAULT partition and in an old day partition.
    await ensurePartitions(db, new Date(Date.UTC(2031, 5, 1)), {
      aheadDays: 0,
      backDays: 0,
      tables: ["accounting_samples"],
    });
    await sql(
      database.url,
      `INSERT INTO accounting_samples (at, host_id, table_name, address) VALUES ('2031-06-01T05:00:00Z', $1, 'x', '10.0.0.1'), ('2031-05-01T05:00:00Z', $1, 'x', '10.0.0.2')`,
      [host],
    );
    const r = await applyRetention(db, DEFAULT_RETENTION, now);
    assert.ok(r.dropped.includes("accounting_samples_p20310601"), `dropped ${r.dropped.join(",")}`);
    assert.ok(!r.dropped.includes("accounting_samples_p20310616"));
    assert.ok((r.deleted.accounting_samples_default ?? 0) >= 1, "expired rows of the DEFAULT partition are deleted");
    const left = await sql<{ at: Date }>(database.url, `SELECT at FROM accounting_samples WHERE host_id = $1`, [host]);
    assert.deepEqual(
      left.map((x) => x.at.toISOString()),
      ["2031-06-16T01:00:00.000Z"],
    );
  });

  test("the BullMQ service rolls up by itself", async () => {
    const host = await makeHost(db, "svc-a");
    const prefix = `palisade-test-bull-${randomBytes(4).toString("hex")}`;
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    const config = loadConfig({ DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL });
    const log = {
      info() {},
      error() {},
      warn() {},
      debug() {},
      child() {
        return log;
      },
    } as never;
    const svc = await telemetryService({ prefix, rollupEveryMs: 200, retention: DEFAULT_RETENTION }).start({
      config,
      db,
      redis,
      log,
    });
    try {
      await ingestTelemetry(
        { db },
        host,
        batch("s", 1, Date.now(), [
          { table: "svc", ip: "10.3.0.1", srcBytes: 5, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
        ]),
      );
      let rows: unknown[] = [];
      for (let i = 0; i < 150 && rows.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        rows = await sql(database.url, `SELECT 1 FROM accounting_day WHERE host_id = $1 AND src_bytes = 5`, [host]);
      }
      assert.equal(rows.length, 1, "the repeatable job rolled the sample up to the day level");
      assert.equal(await rollupHorizon(db, host), null);
    } finally {
      await svc.stop();
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
