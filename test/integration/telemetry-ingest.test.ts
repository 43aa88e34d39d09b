// Telemetry ingest against real Postgres and Redis: exactly once per (host, epoch, seq)
// (resends, out-of-order seqs, the same batch on two connections at once), totals that
// equal the sum of the deltas, the unattributed remainder, quotas, counters, log
// events (stored and published), 64-bit values, and refusals that store nothing.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { createDb, type Db } from "../../src/api/db/client.ts";
import { LOGS_CHANNEL, type LogEventView } from "../../src/api/telemetry/channels.ts";
import { TelemetryError } from "../../src/api/telemetry/errors.ts";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { addressTotals } from "../../src/api/telemetry/queries.ts";
import { LogEvent, TelemetryBatch } from "../../src/protocol/agent.ts";
import { startTestApp } from "../support/app.ts";
import { createTestDatabase, sql, TEST_REDIS_URL, type TestDatabase } from "../support/db.ts";
import { batch, expectedTotals, makeHost, rng } from "../support/telemetry-batches.ts";

let database: TestDatabase;
let db: Db;
let db2: Db;
let redis: Redis;
before(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
  db2 = createDb(database.url);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
});
after(async () => {
  await db?.$disconnect();
  await db2?.$disconnect();
  redis?.disconnect();
  await database?.drop();
});

const num = (v: unknown) => (typeof v === "string" ? Number(v) : (v as number));
async function rawTotals(hostId: string, table: string) {
  const rows = await sql<{ ip: string; sb: string; sp: string; db: string; dp: string }>(
    database.url,
    `SELECT CASE WHEN address = '0.0.0.0/0'::inet THEN '' ELSE host(address) END AS ip, sum(src_bytes)::text sb, sum(src_packets)::text sp, sum(dst_bytes)::text db, sum(dst_packets)::text dp
     FROM accounting_samples WHERE host_id = $1 AND table_name = $2 GROUP BY 1`,
    [hostId, table],
  );
  return new Map(rows.map((r) => [r.ip, [Number(r.sb), Number(r.sp), Number(r.db), Number(r.dp)]]));
}

describe("telemetry ingest", () => {
  test("the same batch twice is stored once and acknowledged both times", async () => {
    const host = await makeHost(db, "ingest-dup");
    const b = batch(
      "e1",
      1,
      Date.now(),
      [{ table: "lan", ip: "10.0.0.1", srcBytes: 100, srcPackets: 1, dstBytes: 0, dstPackets: 0 }],
      {
        counters: [{ name: "c1", bytes: 10, packets: 1 }],
      },
    );
    const first = await ingestTelemetry({ db }, host, b);
    const second = await ingestTelemetry({ db }, host, b);
    assert.equal(first.duplicate, false);
    assert.equal(second.duplicate, true);
    assert.deepEqual(
      [second.epoch, second.seq],
      ["e1", "1"],
      "the duplicate is acknowledged with its own epoch and seq",
    );
    assert.deepEqual([...(await rawTotals(host, "lan"))], [["10.0.0.1", [100, 1, 0, 0]]]);
    const [c] = await sql<{ bytes: string }>(
      database.url,
      `SELECT bytes::text FROM counter_totals WHERE host_id = $1 AND name = 'c1'`,
      [host],
    );
    assert.equal(c?.bytes, "10");
    // Another epoch (new agent state dir) with the same seq is a different batch.
    assert.equal((await ingestTelemetry({ db }, host, { ...b, epoch: "e2" })).duplicate, false);
    assert.deepEqual([...(await rawTotals(host, "lan"))], [["10.0.0.1", [200, 2, 0, 0]]]);
  });

  test("out-of-order seqs and resends in any order add up to the sum of the deltas", async () => {
    const host = await makeHost(db, "ingest-order");
    const rand = rng(7);
    const ips = ["10.1.0.1", "10.1.0.2", "10.1.0.3", ""];
    const batches = Array.from({ length: 30 }, (_, i) =>
      batch(
        "ep",
        i + 1,
        Date.now() - 3600_000 + i * 1000,
        ips
          .filter(() => rand() < 0.8)
          .map((ip) => ({
            table: "lan",
            ip,
            srcBytes: Math.floor(rand() * 1e6),
            srcPackets: Math.floor(rand() * 1000),
            dstBytes: Math.floor(rand() * 1e6),
            dstPackets: Math.floor(rand() * 1000),
          })),
      ),
    );
    // Every batch sent 1-3 times, shuffled.
    const sends = batches.flatMap((b) => Array.from({ length: 1 + Math.floor(rand() * 3) }, () => b));
    for (let i = sends.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [sends[i], sends[j]] = [sends[j]!, sends[i]!];
    }
    let fresh = 0;
    for (const b of sends) if (!(await ingestTelemetry({ db }, host, b)).duplicate) fresh++;
    assert.equal(fresh, batches.length, "each batch ingested exactly once");
    const want = expectedTotals(batches, "lan");
    assert.deepEqual(await rawTotals(host, "lan"), want);
    // The API's query says the same (rows come from raw or rollups; no rollup ran yet).
    const { items: rows } = await addressTotals(db, { table: "lan", hostId: host }, {}, { limit: 100 });
    assert.deepEqual(
      new Map(rows.map((r) => [r.ip, [num(r.srcBytes), num(r.srcPackets), num(r.dstBytes), num(r.dstPackets)]])),
      want,
    );
    const un = rows.find((r) => r.ip === "");
    assert.ok(un?.unattributed, "the unattributed remainder is a row of its own, flagged");
    const [stored] = await sql<{ a: string }>(
      database.url,
      `SELECT DISTINCT address::text a FROM accounting_samples WHERE host_id = $1 AND address = '0.0.0.0/0'`,
      [host],
    );
    assert.equal(stored?.a, "0.0.0.0/0", "stored as the network 0.0.0.0/0, never a host address");
  });

  test("the same batch on two connections at once is stored once", async () => {
    const host = await makeHost(db, "ingest-race");
    const batches = Array.from({ length: 20 }, (_, i) =>
      batch("race", i + 1, Date.now(), [
        { table: "t", ip: "192.0.2.1", srcBytes: 1000, srcPackets: 10, dstBytes: 0, dstPackets: 0 },
      ]),
    );
    for (const b of batches) {
      const results = await Promise.all([
        ingestTelemetry({ db }, host, b),
        ingestTelemetry({ db: db2 }, host, b),
        ingestTelemetry({ db: db2 }, host, b),
      ]);
      assert.equal(
        results.filter((r) => !r.duplicate).length,
        1,
        `seq ${b.seq}: one copy stored, the others acknowledged as duplicates`,
      );
    }
    assert.deepEqual([...(await rawTotals(host, "t"))], [["192.0.2.1", [20_000, 200, 0, 0]]]);
    const [n] = await sql<{ n: string }>(
      database.url,
      `SELECT count(*)::text n FROM telemetry_batches WHERE host_id = $1`,
      [host],
    );
    assert.equal(n?.n, "20");
  });

  test("quotas keep the newest sample; counters add up; 64-bit values survive and print as strings above 2^53", async () => {
    const host = await makeHost(db, "ingest-quota");
    const t = Date.now();
    const big = "9000000000000000000"; // > 2^53, < 2^63
    await ingestTelemetry(
      { db },
      host,
      batch(
        "q",
        2,
        t,
        [
          {
            table: "big",
            ip: "10.9.0.1",
            srcBytes: big as unknown as number,
            srcPackets: 1,
            dstBytes: 0,
            dstPackets: 0,
          },
        ],
        {
          quotas: [{ name: "q1", mode: "bytes", limit: 1000, used: 600, grow: false }],
          counters: [
            { name: "c", bytes: 5, packets: 1 },
            { name: "c", bytes: 5, packets: 1 },
          ],
        },
      ),
    );
    // An older sample arriving late (spooled) does not overwrite the newer one.
    await ingestTelemetry(
      { db },
      host,
      batch("q", 1, t - 60_000, [], { quotas: [{ name: "q1", mode: "bytes", limit: 1000, used: 100, grow: false }] }),
    );
    const q = await db.quotaState.findUniqueOrThrow({ where: { hostId_name: { hostId: host, name: "q1" } } });
    assert.equal(q.used, 600n);
    await ingestTelemetry(
      { db },
      host,
      batch("q", 3, t + 1000, [], {
        quotas: [{ name: "q1", mode: "packets", limit: "2000" as unknown as number, used: 0, grow: true }],
      }),
    );
    const q2 = await db.quotaState.findUniqueOrThrow({ where: { hostId_name: { hostId: host, name: "q1" } } });
    assert.deepEqual([q2.used, q2.limit, q2.mode, q2.grow], [0n, 2000n, "packets", true]);
    // The agent's clock stepped back an hour: its next batch is still the newer sample.
    const quota = (used: number) => ({
      quotas: [{ name: "q1", mode: "packets" as const, limit: 2000, used, grow: true }],
    });
    await ingestTelemetry({ db }, host, batch("q", 4, t - 3_600_000, [], quota(70)));
    const used = async () =>
      (await db.quotaState.findUniqueOrThrow({ where: { hostId_name: { hostId: host, name: "q1" } } })).used;
    assert.equal(await used(), 70n, "a later batch of the epoch wins, whatever the agent's clock says");
    // A new epoch (the agent's state dir was reset) replaces what the old one held.
    await ingestTelemetry({ db }, host, batch("q-new", 1, t - 7_200_000, [], quota(5)));
    assert.equal(await used(), 5n);
    await ingestTelemetry({ db }, host, batch("q-new", 2, t - 7_200_000, [], quota(9)));
    assert.equal(await used(), 9n);
    const c = await db.counterTotal.findUniqueOrThrow({ where: { hostId_name: { hostId: host, name: "c" } } });
    assert.deepEqual([c.bytes, c.packets], [10n, 2n]);
    const { items: rows } = await addressTotals(db, { table: "big", hostId: host }, {}, { limit: 10 });
    assert.equal(rows[0]?.srcBytes, big, "a total above 2^53 is a decimal string");
    assert.equal(rows[0]?.srcPackets, 1, "a small one is a number");
  });

  test("the agent's losses: the batch's loss fields (through the codec) and an older agent's counters of the same names add up", async () => {
    const host = await makeHost(db, "ingest-losses");
    const t = Date.now();
    // A current agent: the loss fields, as the stream decodes them.
    const wire = TelemetryBatch.decode(
      TelemetryBatch.encode(
        TelemetryBatch.fromPartial({
          epoch: "l",
          seq: "1",
          takenAtUnixMs: String(t),
          spoolDroppedBatches: "2",
          spoolDroppedBytes: "700",
          logsDropped: "5",
        }),
      ).finish(),
    );
    await ingestTelemetry({ db }, host, wire);
    // An agent from before the fields: the same losses as counter deltas with magic names.
    await ingestTelemetry(
      { db },
      host,
      batch("l", 2, t + 1, [], {
        counters: [
          { name: "palisade.agent.spool_dropped", bytes: 300, packets: 1 },
          { name: "palisade.agent.logs_dropped", bytes: 0, packets: 3 },
        ],
      }),
    );
    // No loss: no row is touched.
    await ingestTelemetry({ db }, host, batch("l", 3, t + 2, [], { counters: [{ name: "c", bytes: 1, packets: 1 }] }));
    const rows = await db.counterTotal.findMany({ where: { hostId: host }, orderBy: { name: "asc" } });
    assert.deepEqual(
      rows.map((r) => [r.name, r.bytes, r.packets]),
      [
        ["c", 1n, 1n],
        ["palisade.agent.logs_dropped", 0n, 8n],
        ["palisade.agent.spool_dropped", 1000n, 3n],
      ],
    );
  });

  test("log events are stored and published after the commit", async () => {
    const host = await makeHost(db, "ingest-logs");
    const sub = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const got: LogEventView[] = [];
      await sub.subscribe(LOGS_CHANNEL);
      sub.on("message", (_ch, m) => {
        const e = JSON.parse(m) as LogEventView;
        if (e.hostId === host) got.push(e);
      });
      const t = Date.now();
      await ingestTelemetry(
        { db, redis },
        host,
        batch("l", 1, t, [], {
          logs: [
            {
              unixMs: t - 5,
              prefix: "PAL mark: ",
              level: 4,
              mark: 42,
              ctmark: 7,
              iif: "veth0",
              oif: "",
              saddr: "10.0.0.1",
              daddr: "10.0.0.2",
              protocol: "udp",
              sport: 5000,
              dport: 7777,
              length: 100,
            },
            {
              unixMs: t - 1,
              prefix: "other",
              level: 6,
              mark: 0,
              ctmark: 0,
              iif: "",
              oif: "",
              saddr: "",
              daddr: "",
              protocol: "",
              sport: 0,
              dport: 0,
              length: 0,
            },
          ],
        }),
      );
      for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(got.length, 2);
      assert.equal(got[0]?.mark, 42);
      assert.equal(got[0]?.host, "ingest-logs");
      assert.deepEqual(got[0]?.fields, {
        iif: "veth0",
        saddr: "10.0.0.1",
        daddr: "10.0.0.2",
        protocol: "udp",
        sport: 5000,
        dport: 7777,
        length: 100,
      });
      const stored = await db.logEvent.findMany({ where: { hostId: host }, orderBy: { id: "asc" } });
      assert.deepEqual(
        stored.map((e) => [e.prefix, e.mark, e.ctmark, e.at.getTime()]),
        [
          ["PAL mark: ", 42n, 7n, t - 5],
          ["other", 0n, 0n, t - 1],
        ],
      );
    } finally {
      sub.disconnect();
    }
  });

  test("ctmark: unset on the wire is stored NULL and listed null; a found 0 stays 0", async () => {
    // Through the proto as the gRPC stream decodes it: `optional uint32 ctmark` keeps presence.
    const wire = (v: LogEvent) => LogEvent.decode(LogEvent.encode(v).finish());
    const base = {
      level: 4,
      mark: 1,
      iif: "",
      oif: "",
      saddr: "",
      daddr: "",
      protocol: "",
      sport: 0,
      dport: 0,
      length: 0,
    };
    const t = Date.now();
    const unknown = wire({ ...base, unixMs: String(t - 2), prefix: "CT unknown " });
    const zero = wire({ ...base, unixMs: String(t - 1), prefix: "CT zero ", ctmark: 0 });
    assert.equal(unknown.ctmark, undefined);
    assert.equal(zero.ctmark, 0);
    const app = await startTestApp();
    try {
      const host = await makeHost(app.db, "ingest-ctmark");
      await ingestTelemetry(
        { db: app.db, redis: app.redis },
        host,
        batch("ct", 1, t, [], { logs: [unknown, zero] as never }),
      );
      const stored = await app.db.logEvent.findMany({ where: { hostId: host }, orderBy: { id: "asc" } });
      assert.deepEqual(
        stored.map((e) => [e.prefix, e.ctmark]),
        [
          ["CT unknown ", null],
          ["CT zero ", 0n],
        ],
      );
      const res = await app.req("GET", `/v1/logs?host=${host}`, { as: "viewer" });
      assert.equal(res.statusCode, 200);
      const items = (res.json() as { items: { prefix: string; ctmark: number | null }[] }).items;
      assert.deepEqual(
        items.map((e) => [e.prefix, e.ctmark]),
        [
          ["CT zero ", 0],
          ["CT unknown ", null],
        ],
      );
    } finally {
      await app.close();
    }
  });

  test("IPv6 addresses and aggregate prefixes are stored and queried as such", async () => {
    const app = await startTestApp();
    try {
      const host = await makeHost(app.db, "ingest-v6");
      const row = (table: string, ip: string, n: number) => ({
        table,
        ip,
        srcBytes: n * 100,
        srcPackets: n,
        dstBytes: 0,
        dstPackets: 0,
      });
      await ingestTelemetry(
        { db: app.db },
        host,
        batch("v6", 1, Date.now(), [
          row("h6", "2001:db8:1::1", 3),
          row("n6", "2001:db8:1::/64", 5),
          row("n6", "2001:db8:2::/64", 2),
        ]),
      );
      await ingestTelemetry({ db: app.db }, host, batch("v6", 2, Date.now(), [row("n6", "2001:db8:1::/64", 1)]));
      const items = async (url: string) =>
        (
          (await app.req("GET", url, { as: "viewer" })).json() as { items: { ip: string; srcPackets: number }[] }
        ).items.map((x) => [x.ip, x.srcPackets]);
      assert.deepEqual(await items(`/v1/accounting/tables/h6?host=${host}`), [["2001:db8:1::1", 3]]);
      assert.deepEqual(await items(`/v1/accounting/tables/n6?host=${host}`), [
        ["2001:db8:1::/64", 6],
        ["2001:db8:2::/64", 2],
      ]);
      assert.deepEqual(await items(`/v1/accounting/top?table=n6&host=${host}&limit=1`), [["2001:db8:1::/64", 6]]);
      const series = await app.req(
        "GET",
        `/v1/accounting/series?table=n6&ip=${encodeURIComponent("2001:db8:2::/64")}&step=1m&host=${host}`,
        { as: "viewer" },
      );
      assert.equal(series.statusCode, 200, `a series takes an aggregate's prefix as its ip: ${series.body}`);
    } finally {
      await app.close();
    }
  });

  test("COPY stores table names with tabs, newlines and backslashes exactly", async () => {
    const host = await makeHost(db, "ingest-copy-text");
    const name = "a\tb\nc\\d\re\\N";
    await ingestTelemetry(
      { db },
      host,
      batch("ct", 1, Date.now(), [
        { table: name, ip: "10.0.0.1", srcBytes: 7, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
      ]),
    );
    assert.deepEqual([...(await rawTotals(host, name))], [["10.0.0.1", [7, 1, 0, 0]]]);
  });

  test("a log event outside the limits is dropped alone and counted; a 127-byte prefix (the policy's limit) is kept", async () => {
    const host = await makeHost(db, "ingest-log-limits");
    const event = (prefix: string, iif = "eth0") => ({
      unixMs: Date.now(),
      prefix,
      level: 4,
      mark: 0,
      iif,
      oif: "",
      saddr: "192.0.2.1",
      daddr: "192.0.2.2",
      protocol: "tcp",
      sport: 1,
      dport: 22,
      length: 60,
    });
    const longest = "p".repeat(127);
    await ingestTelemetry(
      { db },
      host,
      batch(
        "lg",
        1,
        Date.now(),
        [{ table: "lan", ip: "10.0.0.1", srcBytes: 9, srcPackets: 1, dstBytes: 0, dstPackets: 0 }],
        {
          logs: [event(longest), event("x".repeat(128)), event("ok", "an-interface-name-too-long")],
        },
      ),
    );
    assert.deepEqual([...(await rawTotals(host, "lan"))], [["10.0.0.1", [9, 1, 0, 0]]], "the accounting is stored");
    const logs = await db.logEvent.findMany({ where: { hostId: host } });
    assert.deepEqual(
      logs.map((l) => l.prefix),
      [longest],
    );
    const dropped = await db.counterTotal.findUniqueOrThrow({
      where: { hostId_name: { hostId: host, name: "palisade.agent.logs_dropped" } },
    });
    assert.equal(dropped.packets, 2n);
  });

  test("a malformed batch is refused whole with invalid_batch and stores nothing", async () => {
    const host = await makeHost(db, "ingest-bad");
    const bad = [
      batch("b", 1, Date.now(), [
        { table: "lan", ip: "not-an-ip", srcBytes: 1, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
      ]),
      batch("b", 2, Date.now(), [
        { table: "lan", ip: "10.0.0.1", srcBytes: -1, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
      ]),
      batch("b", 3, Date.now(), [
        {
          table: "lan",
          ip: "10.0.0.1",
          srcBytes: "18446744073709551615" as unknown as number,
          srcPackets: 1,
          dstBytes: 0,
          dstPackets: 0,
        },
      ]),
      // An aggregate's prefix is a network: host bits set means a broken sender.
      batch("b", 5, Date.now(), [
        { table: "n6", ip: "2001:db8:1::1/64", srcBytes: 1, srcPackets: 1, dstBytes: 0, dstPackets: 0 },
      ]),
      { ...batch("", 4, Date.now(), []) },
    ];
    for (const b of bad) {
      await assert.rejects(
        ingestTelemetry({ db }, host, b),
        (e: unknown) => e instanceof TelemetryError && e.code === "invalid_batch" && e.details.length > 0,
      );
    }
    const [n] = await sql<{ n: string }>(
      database.url,
      `SELECT (SELECT count(*) FROM telemetry_batches WHERE host_id = $1) + (SELECT count(*) FROM accounting_samples WHERE host_id = $1) AS n`,
      [host],
    );
    assert.equal(n?.n, "0");
  });
});
