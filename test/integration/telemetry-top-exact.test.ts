// The fleet top-N (src/api/telemetry/top.ts: sorted lists from the fleet rollups, a
// threshold, exact totals of the candidates) and the table series (per-host table
// totals) against real PostgreSQL, compared with a plain GROUP BY over the raw samples.
// Generated data over ~75 days (three calendar months: month, day, hour, minute and raw
// segments), two hosts, IPv4 and IPv6 (one /64 aggregate), exact ties at the top-N
// boundaries, and one address ("steady", 10.1.0.1) that is never first in any hour, day or
// month bucket but is first over a long range: with K = 1 the first round cannot prove
// the answer, so the rounds must grow K to find it. Candidates whose upper bound is below
// the N-th lower bound are not summed: every answer being exact is what checks it.
// Also: the fleet and table-total rollups equal the sums of the per-host rows, and a
// rerun over the same marks changes nothing (exactly-once).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createDb, type Db } from "../../src/api/db/client.ts";
import { series, topTalkers, type QueryOptions } from "../../src/api/telemetry/queries.ts";
import type { Retention } from "../../src/api/telemetry/retention.ts";
import { rollupAll } from "../../src/api/telemetry/rollups.ts";
import type { TopStats } from "../../src/api/telemetry/top.ts";
import { createTestDatabase, sql, type TestDatabase } from "../support/db.ts";
import { makeHost, rng } from "../support/telemetry-batches.ts";

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const NOW = new Date(Date.UTC(2026, 2, 12, 12, 34, 56)); // mid-March: Jan, Feb and March hold data
const START = NOW.getTime() - 72 * DAY;
const TABLE = "edge";
const STEADY = "10.1.0.1";
// Nothing expires within the data: every level holds all of it.
const RETENTION: Retention = {
  rawDays: 400,
  minuteDays: 400,
  hourDays: 400,
  dayDays: 400,
  monthMonths: 20,
  logDays: 30,
  ledgerDays: 30,
};
const opts = (o: QueryOptions = {}): QueryOptions => ({ now: NOW, retention: RETENTION, ...o });

let database: TestDatabase;
let db: Db;
let hosts: string[] = [];

interface Sample {
  at: number;
  host: number;
  ip: string;
  sb: number;
  sp: number;
  db: number;
  dp: number;
}

function generate(): Sample[] {
  const r = rng(15);
  const out: Sample[] = [];
  const hourStart = Math.ceil(START / HOUR) * HOUR;
  const end = Math.floor(NOW.getTime() / HOUR) * HOUR;
  const monthOf = (t: number) => new Date(t).getUTCMonth();
  for (let h = hourStart; h < end; h += HOUR) {
    const hi = (h - hourStart) / HOUR;
    // steady: 100 bytes src every hour, alternating hosts. Never first in a bucket: the
    // month's burst address has 150 in every hour of its month (and so in every day and month).
    out.push({ at: h + 7 * MIN, host: hi % 2, ip: STEADY, sb: 100, sp: 1, db: 10, dp: 1 });
    out.push({ at: h + 7 * MIN + 5_000, host: 0, ip: `10.2.0.${monthOf(h) + 1}`, sb: 150, sp: 2, db: 0, dp: 0 });
    // Ties: three addresses (one IPv6) with identical traffic, every 6 hours.
    if (hi % 6 === 0) {
      for (const ip of ["10.3.0.1", "10.3.0.2", "2001:db8::3"])
        out.push({ at: h + 37 * MIN, host: 1, ip, sb: 390, sp: 3, db: 390, dp: 3 });
    }
    // Noise: a few random addresses per hour, IPv4 and IPv6 (one of them a /64 aggregate).
    for (let i = 0; i < 3; i++) {
      const n = Math.floor(r() * 40);
      const ip = n < 28 ? `10.4.0.${n}` : n < 38 ? `2001:db8:4::${n}` : "2001:db8:7::/64";
      out.push({
        at: h + Math.floor(r() * 60) * MIN + 20_000,
        host: Math.floor(r() * 2),
        ip,
        sb: Math.floor(r() * 120),
        sp: Math.floor(r() * 3),
        db: Math.floor(r() * 200),
        dp: Math.floor(r() * 4),
      });
    }
  }
  // The current hour up to NOW, minute by minute (minute and raw segments at the end).
  for (let t = end; t < NOW.getTime(); t += MIN) {
    out.push({ at: t + 1_000, host: 0, ip: "2001:db8:4::1", sb: 5, sp: 1, db: 7, dp: 1 });
    out.push({ at: t + 2_000, host: 1, ip: STEADY, sb: 3, sp: 1, db: 0, dp: 0 });
  }
  // An unattributed remainder (never a talker).
  out.push({ at: START + 3 * HOUR, host: 0, ip: "0.0.0.0/0", sb: 1e9, sp: 1e6, db: 1e9, dp: 1e6 });
  return out;
}

async function insert(samples: Sample[]) {
  await sql(
    database.url,
    `INSERT INTO accounting_samples (at, host_id, table_name, address, src_bytes, src_packets, dst_bytes, dst_packets)
     SELECT to_timestamp(at / 1000.0), (($2::uuid[]))[host + 1], $1, ip::inet, sb, sp, db, dp
     FROM unnest($3::float8[], $4::int[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) AS s(at, host, ip, sb, sp, db, dp)`,
    [
      TABLE,
      hosts,
      samples.map((s) => s.at),
      samples.map((s) => s.host),
      samples.map((s) => s.ip),
      samples.map((s) => s.sb),
      samples.map((s) => s.sp),
      samples.map((s) => s.db),
      samples.map((s) => s.dp),
    ],
  );
  await sql(
    database.url,
    `INSERT INTO telemetry_dirty (host_id, bucket)
     SELECT DISTINCT (($1::uuid[]))[host + 1], date_bin('1 minute', to_timestamp(at / 1000.0), TIMESTAMPTZ '1970-01-01Z')
     FROM unnest($2::float8[], $3::int[]) AS s(at, host) ON CONFLICT DO NOTHING`,
    [hosts, samples.map((s) => s.at), samples.map((s) => s.host)],
  );
}

/** The reference: a plain GROUP BY over the raw samples. */
async function rawTop(from: Date, to: Date, by: "bytes" | "packets", dir: "src" | "dst" | "both", limit: number) {
  const metric = dir === "both" ? `sum(src_${by}) + sum(dst_${by})` : `sum(${dir}_${by})`;
  const rows = await sql<{ ip: string; v: string }>(
    database.url,
    `SELECT host(address) || CASE WHEN masklen(address) IN (32, 128) THEN '' ELSE '/' || masklen(address) END AS ip, (${metric})::text AS v
     FROM accounting_samples WHERE table_name = $1 AND at >= $2 AND at < $3 AND address <> '0.0.0.0/0'::inet
     GROUP BY address ORDER BY ${metric} DESC, address LIMIT $4`,
    [TABLE, from, to, limit],
  );
  return rows.map((r) => `${r.ip}=${r.v}`);
}

const RANGES: [string, Date, Date][] = [
  ["24 h", new Date(NOW.getTime() - DAY), new Date(NOW.getTime() + MIN)],
  ["30 d", new Date(NOW.getTime() - 30 * DAY), new Date(NOW.getTime() + MIN)],
  ["all (3 months)", new Date(START - DAY), new Date(NOW.getTime() + MIN)],
  [
    "odd edges",
    new Date(NOW.getTime() - 47 * DAY + 13 * MIN + 7_000),
    new Date(NOW.getTime() - 2 * DAY - 5 * HOUR - 3_000),
  ],
];

before(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
  hosts = [await makeHost(db, "top-a"), await makeHost(db, "top-b")];
  await insert(generate());
  await rollupAll(db, RETENTION, { now: NOW });
  // Two minutes not rolled up yet (still marked): the queries read them from the raw samples.
  await insert([
    { at: NOW.getTime() - 30_000, host: 0, ip: "10.4.0.9", sb: 4000, sp: 9, db: 1, dp: 1 },
    { at: NOW.getTime() - 70_000, host: 1, ip: "2001:db8::3", sb: 11, sp: 1, db: 11, dp: 1 },
  ]);
});
after(async () => {
  await db?.$disconnect();
  await database?.drop();
});

describe("fleet top-N and table series are exact", () => {
  test("the data has the shape the test needs: steady is never first in a bucket, first over the range", async () => {
    const firsts = await sql<{ n: string }>(
      database.url,
      `SELECT count(*)::text AS n FROM (
         SELECT bucket, (array_agg(address ORDER BY src_bytes DESC, address))[1] AS top FROM accounting_fleet_hour WHERE table_name = $1 GROUP BY bucket
         UNION ALL SELECT bucket, (array_agg(address ORDER BY src_bytes DESC, address))[1] FROM accounting_fleet_day WHERE table_name = $1 GROUP BY bucket
         UNION ALL SELECT bucket, (array_agg(address ORDER BY src_bytes DESC, address))[1] FROM accounting_fleet_month WHERE table_name = $1 GROUP BY bucket) x
       WHERE top = $2::inet`,
      [TABLE, STEADY],
    );
    assert.equal(firsts[0]!.n, "0", "steady is first in no hour, day or month bucket");
    const [from, to] = [RANGES[2]![1], RANGES[2]![2]];
    assert.match(
      (await rawTop(from, to, "bytes", "src", 1))[0]!,
      new RegExp(`^${STEADY}=`),
      "steady is first over the whole range",
    );
  });

  test("fleet and table-total rollups equal the per-host sums; a rerun over the same marks changes nothing", async () => {
    const check = async () => {
      for (const level of ["hour", "day", "month"]) {
        const diff = await sql<{ n: string }>(
          database.url,
          `SELECT count(*)::text AS n FROM (
             SELECT table_name, address, bucket, sum(src_bytes) sb, sum(src_packets) sp, sum(dst_bytes) db, sum(dst_packets) dp FROM accounting_${level} GROUP BY 1, 2, 3
           ) a FULL JOIN accounting_fleet_${level} f USING (table_name, address, bucket)
           WHERE a.sb IS DISTINCT FROM f.src_bytes OR a.sp IS DISTINCT FROM f.src_packets OR a.db IS DISTINCT FROM f.dst_bytes OR a.dp IS DISTINCT FROM f.dst_packets`,
        );
        assert.equal(diff[0]!.n, "0", `accounting_fleet_${level} = sum of accounting_${level} over hosts`);
      }
      for (const level of ["minute", "hour", "day"]) {
        const diff = await sql<{ n: string }>(
          database.url,
          `SELECT count(*)::text AS n FROM (
             SELECT host_id, table_name, bucket, sum(src_bytes) sb, sum(src_packets) sp, sum(dst_bytes) db, sum(dst_packets) dp FROM accounting_${level} GROUP BY 1, 2, 3
           ) a FULL JOIN accounting_table_${level} t USING (host_id, table_name, bucket)
           WHERE a.sb IS DISTINCT FROM t.src_bytes OR a.sp IS DISTINCT FROM t.src_packets OR a.db IS DISTINCT FROM t.dst_bytes OR a.dp IS DISTINCT FROM t.dst_packets`,
        );
        assert.equal(diff[0]!.n, "0", `accounting_table_${level} = sum of accounting_${level} over addresses`);
      }
    };
    await check();
    // Mark every rolled-up minute of a few days again (as late batches would) and rerun.
    await sql(
      database.url,
      `INSERT INTO telemetry_dirty (host_id, bucket) SELECT DISTINCT host_id, bucket FROM accounting_minute WHERE bucket >= $1 AND bucket < $2 ON CONFLICT DO NOTHING`,
      [new Date(NOW.getTime() - 40 * DAY), new Date(NOW.getTime() - 37 * DAY)],
    );
    await rollupAll(db, RETENTION, { now: NOW });
    await check();
  });

  let pruned = 0;
  for (const [name, from, to] of RANGES) {
    test(`top-N over ${name}: every metric, direction and N equals the GROUP BY over raw samples`, async () => {
      for (const by of ["bytes", "packets"] as const) {
        for (const dir of ["src", "dst", "both"] as const) {
          for (const limit of [1, 2, 3, 5, 10, 40]) {
            for (const k of [undefined, 1]) {
              const stats: TopStats[] = [];
              const got = await topTalkers(
                db,
                { table: TABLE },
                { from, to },
                by,
                dir,
                limit,
                opts({ ...(k && { top: { k } }), onTopStats: (s) => stats.push(s) }),
              );
              assert.deepEqual([got.from, got.to], [from, to], "nothing widened: every level holds the range");
              const want = await rawTop(from, to, by, dir, limit);
              assert.deepEqual(
                got.items.map((r) => `${r.ip}=${r.value}`),
                want,
                `${name} ${by} ${dir} top-${limit} k=${k ?? "default"}`,
              );
              assert.equal(stats.length, 1, "the fleet path ran");
              if (stats[0]!.summed < stats[0]!.candidates) pruned++;
            }
          }
        }
      }
    });
  }

  test("candidates bounded out by their upper bound were left unsummed in some of the cases above", () => {
    // The exactness of those answers is what checks the bounds; this checks they were used.
    assert.ok(pruned > 0, "no case dropped a candidate");
  });

  test("steady is found by growing K: several rounds, no fallback to the full GROUP BY", async () => {
    const [, from, to] = RANGES[2]!;
    const stats: TopStats[] = [];
    const got = await topTalkers(
      db,
      { table: TABLE },
      { from, to },
      "bytes",
      "src",
      1,
      opts({ top: { k: 1 }, onTopStats: (s) => stats.push(s) }),
    );
    assert.equal(got.items[0]?.ip, STEADY);
    assert.ok(stats[0]!.rounds > 1, `rounds ${stats[0]!.rounds}`);
    assert.equal(stats[0]!.fallback, false);
  });

  test("the per-statement rounds (steps, the bench's baseline) and the full GROUP BY fallback are exact too", async () => {
    for (const [name, from, to] of RANGES) {
      for (const dir of ["src", "both"] as const) {
        for (const limit of [1, 10]) {
          const want = await rawTop(from, to, "bytes", dir, limit);
          for (const top of [{ steps: true }, { steps: true, k: 1 }, { maxEntries: 1 }]) {
            const stats: TopStats[] = [];
            const got = await topTalkers(
              db,
              { table: TABLE },
              { from, to },
              "bytes",
              dir,
              limit,
              opts({ top, onTopStats: (s) => stats.push(s) }),
            );
            const label = `${name} ${dir} top-${limit} ${JSON.stringify(top)}`;
            assert.deepEqual(
              got.items.map((r) => `${r.ip}=${r.value}`),
              want,
              label,
            );
            assert.equal(stats[0]?.fallback, top.maxEntries === 1, label);
          }
        }
      }
    }
  });

  test("a table's series from the table totals equals the series from every address's rows", async () => {
    const cases: [Date, Date, "1m" | "1h" | "1d"][] = [
      [new Date(NOW.getTime() - 3 * HOUR), NOW, "1m"],
      [new Date(NOW.getTime() - 2 * DAY), NOW, "1h"],
      [new Date(START), NOW, "1d"],
    ];
    for (const [from, to, step] of cases) {
      for (const scope of [{ table: TABLE }, { table: TABLE, hostId: hosts[1]! }]) {
        const fast = await series(db, scope, from, to, step, opts());
        const scan = await series(db, scope, from, to, step, opts({ path: "scan" }));
        assert.deepEqual(fast, scan, `${step} ${scope.hostId ? "one host" : "fleet"}`);
        assert.ok(fast.items.some((p) => Number(p.srcBytes) > 0));
      }
    }
  });
});
