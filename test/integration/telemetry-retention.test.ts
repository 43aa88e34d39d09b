// Retention-aware planning and the month rollup, against real Postgres:
// - a range starting (or ending) inside a day whose hours, minutes and samples have
//   expired is served by that day's row, whole, and the answer says so (widened from/to),
//   through the query functions and the REST routes;
// - accounting_month equals the sum of accounting_day per calendar month, a rerun
//   changes nothing, and a year query (months + days + hours + minutes + raw) equals the
//   raw sums;
// - the planner itself: calendar months, a day horizon inside a month, series narrowing.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { applyRetention } from "../../src/api/telemetry/partitions.ts";
import { ALL_AVAILABLE, planSegments, type Availability } from "../../src/api/telemetry/plan.ts";
import { addressTotals, series, topTalkers } from "../../src/api/telemetry/queries.ts";
import { availability, DEFAULT_RETENTION, retentionFromEnv } from "../../src/api/telemetry/retention.ts";
import { rollupAll } from "../../src/api/telemetry/rollups.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { sql } from "../support/db.ts";
import { batch, expectedTotals, makeHost, rng } from "../support/telemetry-batches.ts";

let t: TestApp;
before(async () => {
  t = await startTestApp();
});
after(async () => {
  await t?.close();
});

const HOUR = 3600_000;
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const today = () => Math.floor(Date.now() / DAY) * DAY;

/** Day rows written directly (what is left of old traffic once hours/minutes/samples expired). */
async function insertDays(host: string, table: string, rows: { day: number; ip: string; sb: number; db: number }[]) {
  for (const r of rows) {
    await sql(
      t.database.url,
      `INSERT INTO accounting_day (host_id, table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets) VALUES ($1, $2, $3::inet, $4, $5, $6, $7, $8)`,
      [host, table, r.ip || "0.0.0.0/0", new Date(r.day), r.sb, Math.ceil(r.sb / 100), r.db, Math.ceil(r.db / 100)],
    );
  }
  // ... and what the rollup derived with those days (rollups.ts): the fleet rows and the table totals.
  await sql(
    t.database.url,
    `INSERT INTO accounting_fleet_day AS f (table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT table_name, address, bucket, src_bytes, src_packets, dst_bytes, dst_packets FROM accounting_day WHERE host_id = $1 AND table_name = $2
     ON CONFLICT (table_name, address, bucket) DO UPDATE SET src_bytes = f.src_bytes + EXCLUDED.src_bytes, src_packets = f.src_packets + EXCLUDED.src_packets,
       dst_bytes = f.dst_bytes + EXCLUDED.dst_bytes, dst_packets = f.dst_packets + EXCLUDED.dst_packets`,
    [host, table],
  );
  await sql(
    t.database.url,
    `INSERT INTO accounting_table_day (host_id, table_name, bucket, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT host_id, table_name, bucket, sum(src_bytes), sum(src_packets), sum(dst_bytes), sum(dst_packets) FROM accounting_day WHERE host_id = $1 AND table_name = $2
     GROUP BY host_id, table_name, bucket`,
    [host, table],
  );
  // As an ingest would have: mark a minute of each day dirty, so the rollup (re)computes
  // that day's month from the days.
  await sql(
    t.database.url,
    `INSERT INTO telemetry_dirty (host_id, bucket) SELECT $1, b FROM unnest($2::timestamptz[]) b ON CONFLICT DO NOTHING`,
    [host, [...new Set(rows.map((r) => r.day))].map((d) => new Date(d + 6 * HOUR))],
  );
  await sql(
    t.database.url,
    `INSERT INTO accounting_tables (host_id, table_name, first_at, last_at) VALUES ($1, $2, now(), now()) ON CONFLICT DO NOTHING`,
    [host, table],
  );
}

describe("retention-aware planning", () => {
  test("a range starting mid-day in a day only accounting_day still holds counts that day whole, and says so", async () => {
    const host = await makeHost(t.db, "old-a");
    const D = today() - 100 * DAY; // hours (35 d), minutes and samples of it are gone
    await insertDays(host, "old", [
      { day: D, ip: "10.9.0.1", sb: 5000, db: 700 },
      { day: D, ip: "10.9.0.2", sb: 300, db: 0 },
      { day: D + DAY, ip: "10.9.0.1", sb: 11, db: 0 },
    ]);
    await rollupAll(t.db, DEFAULT_RETENTION);
    const from = new Date(D + 6 * HOUR + 30_000);

    // To now: day D whole, then days, months, ... up to now.
    const all = await addressTotals(t.db, { table: "old", hostId: host }, { from }, { limit: 10 });
    assert.deepEqual(
      all.items.map((r) => [r.ip, r.srcBytes, r.dstBytes]),
      [
        ["10.9.0.1", 5011, 700],
        ["10.9.0.2", 300, 0],
      ],
      "day D's bytes are counted",
    );
    assert.equal(all.from.toISOString(), iso(D), "the answer covers day D from its start");

    // Both edges inside old days: widened to whole days on both sides.
    const inner = await topTalkers(
      t.db,
      { table: "old", hostId: host },
      { from, to: new Date(D + DAY + 2 * HOUR) },
      "bytes",
      "src",
      5,
    );
    assert.deepEqual(
      inner.items.map((r) => [r.ip, r.value]),
      [
        ["10.9.0.1", 5011],
        ["10.9.0.2", 300],
      ],
    );
    assert.deepEqual([inner.from.toISOString(), inner.to.toISOString()], [iso(D), iso(D + 2 * DAY)]);

    // A range aligned to whole days is not widened.
    const exact = await addressTotals(
      t.db,
      { table: "old", hostId: host },
      { from: new Date(D + DAY), to: new Date(D + 2 * DAY) },
      { limit: 10 },
    );
    assert.deepEqual(
      exact.items.map((r) => [r.ip, r.srcBytes]),
      [["10.9.0.1", 11]],
    );
    assert.deepEqual([exact.from.toISOString(), exact.to.toISOString()], [iso(D + DAY), iso(D + 2 * DAY)]);

    // A series cannot widen past its step: an hourly one starts where hours are kept.
    const s = await series(t.db, { table: "old", hostId: host }, from, new Date(today() + HOUR), "1h");
    const hourHorizon = availability(new Date(), DEFAULT_RETENTION).hour;
    assert.equal(s.from.toISOString(), hourHorizon.toISOString());
    assert.equal(s.items[0]?.t, hourHorizon.toISOString());
    const d = await series(t.db, { table: "old", hostId: host }, from, new Date(D + 3 * DAY), "1d");
    assert.deepEqual(
      d.items.map((p) => [p.t, p.srcBytes]),
      [
        [iso(D), 5300],
        [iso(D + DAY), 11],
        [iso(D + 2 * DAY), 0],
      ],
    );
  });

  test("the REST answers carry the range they cover", async () => {
    const host = await makeHost(t.db, "old-b");
    const D = today() - 60 * DAY;
    await insertDays(host, "oldrest", [{ day: D, ip: "10.8.0.1", sb: 900, db: 100 }]);
    await rollupAll(t.db, DEFAULT_RETENTION);
    const from = iso(D + 13 * HOUR);
    const to = iso(D + 20 * HOUR);
    const rows = (await t.req("GET", `/v1/accounting/tables/oldrest?host=${host}&from=${from}&to=${to}`)).json() as {
      items: { ip: string; srcBytes: number }[];
      from: string;
      to: string;
    };
    assert.deepEqual(
      rows.items.map((r) => [r.ip, r.srcBytes]),
      [["10.8.0.1", 900]],
    );
    assert.deepEqual([rows.from, rows.to], [iso(D), iso(D + DAY)]);
    const top = (await t.req("GET", `/v1/accounting/top?table=oldrest&host=${host}&from=${from}`)).json() as {
      items: { ip: string }[];
      from: string;
      to: string;
    };
    assert.deepEqual(
      top.items.map((r) => r.ip),
      ["10.8.0.1"],
    );
    assert.equal(top.from, iso(D));
    const ser = (
      await t.req("GET", `/v1/accounting/series?table=oldrest&host=${host}&step=1d&from=${from}&to=${iso(D + 2 * DAY)}`)
    ).json() as { items: { t: string; srcBytes: number }[]; from: string; to: string };
    assert.deepEqual(
      ser.items.map((p) => [p.t, p.srcBytes]),
      [
        [iso(D), 900],
        [iso(D + DAY), 0],
      ],
    );
    assert.deepEqual([ser.from, ser.to], [iso(D), iso(D + 2 * DAY)]);
  });
});

describe("month rollup", () => {
  test("months equal the sums of days, a rerun changes nothing, a year query equals the raw sums", async () => {
    const host = await makeHost(t.db, "month-a");
    const rand = rng(5);
    // Old traffic, only day rows left: 40..330 days ago, spread over ~10 calendar months.
    const ips = ["10.7.0.1", "10.7.0.2", "10.7.0.3", ""];
    const oldRows: { day: number; ip: string; sb: number; db: number }[] = [];
    for (let k = 0; k < 80; k++) {
      const day = today() - (40 + Math.floor(rand() * 290)) * DAY;
      const ip = ips[Math.floor(rand() * ips.length)]!;
      if (oldRows.some((r) => r.day === day && r.ip === ip)) continue;
      oldRows.push({ day, ip, sb: 1 + Math.floor(rand() * 1e6), db: Math.floor(rand() * 1e6) });
    }
    await insertDays(host, "yr", oldRows);
    // Recent traffic through the ingest (raw -> minute -> hour -> day -> month).
    const sent = [];
    const base = Math.floor((Date.now() - 40 * HOUR) / HOUR) * HOUR;
    for (let i = 0; i < 40; i++) {
      const b = batch(
        "m",
        i + 1,
        base + Math.floor(rand() * 39 * HOUR),
        ips
          .filter(() => rand() < 0.7)
          .map((ip) => ({
            table: "yr",
            ip,
            srcBytes: 1 + Math.floor(rand() * 1e5),
            srcPackets: 1 + Math.floor(rand() * 100),
            dstBytes: Math.floor(rand() * 1e5),
            dstPackets: Math.floor(rand() * 100),
          })),
      );
      sent.push(b);
      await ingestTelemetry(t, host, b);
    }
    const r = await rollupAll(t.db, DEFAULT_RETENTION, { maxMarks: 9 });
    assert.ok(r.months > 0, "the rollup wrote months");

    const byMonth = (from: string, time: string) =>
      sql<{ k: string; v: string }>(
        t.database.url,
        `SELECT table_name || '|' || address::text || '|' || (date_trunc('month', ${time} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::text AS k,
                concat_ws(',', sum(src_bytes), sum(src_packets), sum(dst_bytes), sum(dst_packets)) AS v
         FROM ${from} WHERE host_id = $1 GROUP BY 1 ORDER BY 1`,
        [host],
      );
    const months = await byMonth("accounting_month", "bucket");
    assert.ok(months.length >= 8, `${months.length} month rows`);
    assert.deepEqual(months, await byMonth("accounting_day", "bucket"), "each month row is the sum of its days");
    const buckets = await sql<{ b: Date }>(
      t.database.url,
      `SELECT DISTINCT bucket AS b FROM accounting_month WHERE host_id = $1`,
      [host],
    );
    for (const { b } of buckets)
      assert.equal(
        b.getUTCDate() === 1 && b.getTime() % DAY === 0,
        true,
        `month bucket ${b.toISOString()} is a UTC month start`,
      );

    // Idempotent: every day marked dirty again, rerun: identical months.
    const snap = await sql(
      t.database.url,
      `SELECT * FROM accounting_month WHERE host_id = $1 ORDER BY table_name, address, bucket`,
      [host],
    );
    await sql(
      t.database.url,
      `INSERT INTO telemetry_dirty (host_id, bucket) SELECT DISTINCT host_id, bucket FROM accounting_day WHERE host_id = $1 ON CONFLICT DO NOTHING`,
      [host],
    );
    await rollupAll(t.db, DEFAULT_RETENTION);
    assert.deepEqual(
      await sql(
        t.database.url,
        `SELECT * FROM accounting_month WHERE host_id = $1 ORDER BY table_name, address, bucket`,
        [host],
      ),
      snap,
    );

    // A year: months in the middle, days/hours/minutes/raw at the edges; equals what was sent.
    const now = new Date();
    const yearFrom = new Date(now.getTime() - 365 * DAY);
    const plan = planSegments(yearFrom, now, null, { avail: availability(now, DEFAULT_RETENTION) });
    assert.ok(
      plan.segments.some((s) => s.level === "month"),
      "the year is read mostly from months",
    );
    const want = expectedTotals(sent, "yr");
    for (const o of oldRows) {
      const cur = want.get(o.ip) ?? [0, 0, 0, 0];
      want.set(o.ip, [cur[0] + o.sb, cur[1] + Math.ceil(o.sb / 100), cur[2] + o.db, cur[3] + Math.ceil(o.db / 100)]);
    }
    const got = await addressTotals(t.db, { table: "yr", hostId: host }, { from: yearFrom, to: now }, { limit: 100 });
    assert.deepEqual(
      new Map(got.items.map((x) => [x.ip, [x.srcBytes, x.srcPackets, x.dstBytes, x.dstPackets].map(Number)])),
      want,
    );
    const top = await topTalkers(t.db, { table: "yr", hostId: host }, { from: yearFrom, to: now }, "bytes", "both", 2);
    const order = [...want]
      .filter(([ip]) => ip !== "")
      .sort((a, b) => b[1][0] + b[1][2] - (a[1][0] + a[1][2]))
      .slice(0, 2);
    assert.deepEqual(
      top.items.map((x) => [x.ip, Number(x.value)]),
      order.map(([ip, v]) => [ip, v[0] + v[2]]),
    );
  });
});

describe("month retention", () => {
  test("month rows before the month horizon are deleted, later ones kept", async () => {
    const host = await makeHost(t.db, "month-ret");
    const now = new Date(Date.UTC(2031, 5, 15, 12));
    await sql(
      t.database.url,
      `INSERT INTO accounting_month (host_id, table_name, address, bucket, src_bytes) VALUES ($1, 'm', '10.1.0.1', '2028-05-01Z', 1), ($1, 'm', '10.1.0.1', '2028-06-01Z', 2)`,
      [host],
    );
    const r = await applyRetention(t.db, DEFAULT_RETENTION, now); // 36 months: from 2028-06-01
    assert.ok((r.deleted.accounting_month ?? 0) >= 1, "expired month rows deleted");
    const left = await sql<{ b: Date }>(t.database.url, `SELECT bucket AS b FROM accounting_month WHERE host_id = $1`, [
      host,
    ]);
    assert.deepEqual(
      left.map((x) => x.b.toISOString()),
      ["2028-06-01T00:00:00.000Z"],
    );
    // Months must outlive days (800 days by default).
    assert.throws(() => retentionFromEnv({ PALISADE_RETENTION_MONTH_MONTHS: "25" }), /do not outlive/);
    assert.equal(
      retentionFromEnv({ PALISADE_RETENTION_MONTH_MONTHS: "25", PALISADE_RETENTION_DAY_DAYS: "400" }).monthMonths,
      25,
    );
  });
});

describe("planner", () => {
  const at = (s: string) => new Date(s);
  const show = (p: ReturnType<typeof planSegments>) =>
    p.segments.map((s) => `${s.level} ${s.from.toISOString()} ${s.to.toISOString()}`);

  test("calendar months in the middle, finer levels at the edges, nothing expired", () => {
    const p = planSegments(at("2026-01-30T22:59:30Z"), at("2026-04-02T01:00:10Z"), null, { avail: ALL_AVAILABLE });
    assert.deepEqual(show(p), [
      "raw 2026-01-30T22:59:30.000Z 2026-01-30T23:00:00.000Z",
      "hour 2026-01-30T23:00:00.000Z 2026-01-31T00:00:00.000Z",
      "day 2026-01-31T00:00:00.000Z 2026-02-01T00:00:00.000Z",
      "month 2026-02-01T00:00:00.000Z 2026-04-01T00:00:00.000Z",
      "day 2026-04-01T00:00:00.000Z 2026-04-02T00:00:00.000Z",
      "hour 2026-04-02T00:00:00.000Z 2026-04-02T01:00:00.000Z",
      "raw 2026-04-02T01:00:00.000Z 2026-04-02T01:00:10.000Z",
    ]);
    assert.deepEqual([p.from, p.to], [at("2026-01-30T22:59:30Z"), at("2026-04-02T01:00:10Z")]);
    // February of a leap year is 29 days.
    assert.deepEqual(show(planSegments(at("2028-02-01Z"), at("2028-03-01Z"), null)), [
      "month 2028-02-01T00:00:00.000Z 2028-03-01T00:00:00.000Z",
    ]);
  });

  test("a day horizon inside a month: the month is counted whole; before every horizon nothing", () => {
    const avail: Availability = {
      month: at("2023-01-01Z"),
      day: at("2024-09-15Z"),
      hour: at("2024-10-20Z"),
      minute: at("2024-11-10Z"),
      raw: at("2024-11-21Z"),
    };
    const p = planSegments(at("2024-09-03T05:00:00Z"), at("2024-09-20T10:00:00Z"), null, { avail });
    assert.deepEqual(show(p), ["month 2024-09-01T00:00:00.000Z 2024-10-01T00:00:00.000Z"]);
    const q = planSegments(at("2024-09-16T05:00:00Z"), at("2024-10-21T00:30:00Z"), null, { avail });
    assert.deepEqual(show(q), [
      "day 2024-09-16T00:00:00.000Z 2024-10-21T00:00:00.000Z",
      "hour 2024-10-21T00:00:00.000Z 2024-10-21T01:00:00.000Z",
    ]);
    assert.deepEqual([q.from, q.to], [at("2024-09-16Z"), at("2024-10-21T01:00:00Z")]);
    const r = planSegments(at("2020-01-01Z"), at("2023-02-10T03:00:00Z"), null, { avail });
    assert.deepEqual(show(r), ["month 2023-01-01T00:00:00.000Z 2023-03-01T00:00:00.000Z"]);
    assert.deepEqual(show(planSegments(at("2020-01-01Z"), at("2021-01-01Z"), null, { avail })), [], "entirely expired");
    // A dirty minute: rollups before it, raw from it on.
    const s = planSegments(at("2024-11-22T00:00:00Z"), at("2024-11-22T02:00:00Z"), at("2024-11-22T01:30:00Z"), {
      avail,
    });
    assert.deepEqual(show(s), [
      "hour 2024-11-22T00:00:00.000Z 2024-11-22T01:00:00.000Z",
      "minute 2024-11-22T01:00:00.000Z 2024-11-22T01:30:00.000Z",
      "raw 2024-11-22T01:30:00.000Z 2024-11-22T02:00:00.000Z",
    ]);
  });
});
