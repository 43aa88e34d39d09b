// The accounting, quota and log routes over a real app, Postgres and Redis: what each
// answers, paging and filters (host by id or by name), 4xx with the envelope, the role
// matrix, quota reset (request row, audit row, message on the host channel, the agent's
// answer), and the SSE stream delivering a new event.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { hostChannel } from "../../src/api/telemetry/channels.ts";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { recordQuotaReset } from "../../src/api/telemetry/quota-reset.ts";
import { rollupAll } from "../../src/api/telemetry/rollups.ts";
import { DEFAULT_RETENTION } from "../../src/api/telemetry/retention.ts";
import { errorOf, startTestApp, type TestApp } from "../support/app.ts";
import { TEST_REDIS_URL } from "../support/db.ts";
import { batch, makeHost } from "../support/telemetry-batches.ts";

let t: TestApp;
let h1: string;
let h2: string;
const T0 = Date.now() - 3 * 3600_000;

before(async () => {
  t = await startTestApp();
  h1 = await makeHost(t.db, "edge-1");
  h2 = await makeHost(t.db, "edge-2");
  const row = (ip: string, sb: number, db: number, table = "lan") => ({
    table,
    ip,
    srcBytes: sb,
    srcPackets: sb / 100,
    dstBytes: db,
    dstPackets: db / 100,
  });
  await ingestTelemetry(
    t,
    h1,
    batch(
      "e",
      1,
      T0,
      [row("10.0.0.1", 1000, 200), row("10.0.0.2", 5000, 100), row("", 300, 300), row("", 700, 700, "all")],
      {
        quotas: [
          { name: "q1", mode: "bytes", limit: 10_000, used: 2_500, grow: false },
          { name: "up", mode: "packets", limit: 0, used: 7, grow: true },
        ],
      },
    ),
  );
  await ingestTelemetry(t, h1, batch("e", 2, T0 + 3600_000, [row("10.0.0.1", 2000, 0), row("10.0.0.3", 100, 9000)]));
  await ingestTelemetry(t, h2, batch("f", 1, T0 + 60_000, [row("10.0.0.1", 400, 400), row("10.0.0.4", 800, 0)]));
  await rollupAll(t.db, DEFAULT_RETENTION);
  // One more after the rollup: answers must include it (read from raw).
  await ingestTelemetry(t, h1, batch("e", 3, T0 + 2 * 3600_000, [row("10.0.0.2", 100, 0)]));
});
after(async () => {
  await t?.close();
});

const json = (r: { json(): unknown }) => r.json() as { items: Record<string, unknown>[]; nextCursor: string | null };

describe("accounting routes", () => {
  test("tables across the fleet and per host (by id or name), paged", async () => {
    const all = json(await t.req("GET", "/v1/accounting/tables", { as: "viewer" }));
    assert.deepEqual(
      all.items.map((x) => [x.name, x.hosts]),
      [
        ["all", 1],
        ["lan", 2],
      ],
    );
    const p1 = json(await t.req("GET", "/v1/accounting/tables?limit=1"));
    assert.equal(p1.items.length, 1);
    assert.ok(p1.nextCursor);
    const p2 = json(await t.req("GET", `/v1/accounting/tables?limit=1&cursor=${p1.nextCursor}`));
    assert.deepEqual(
      p2.items.map((x) => x.name),
      ["lan"],
    );
    assert.equal(p2.nextCursor, null);
    for (const host of ["edge-2", h2])
      assert.deepEqual(
        json(await t.req("GET", `/v1/accounting/tables?host=${host}`)).items.map((x) => x.name),
        ["lan"],
      );
    const missing = await t.req("GET", "/v1/accounting/tables?host=nope");
    assert.equal(missing.statusCode, 404);
    assert.equal(errorOf(missing).code, "not_found");
  });

  test("per-address rows over a range, with the unattributed remainder, paged and filtered", async () => {
    const r = json(await t.req("GET", "/v1/accounting/tables/lan?host=edge-1"));
    const by = Object.fromEntries(
      r.items.map((x) => [x.ip, [x.srcBytes, x.srcPackets, x.dstBytes, x.dstPackets, x.unattributed]]),
    );
    assert.deepEqual(by, {
      "": [300, 3, 300, 3, true],
      "10.0.0.1": [3000, 30, 200, 2, false],
      "10.0.0.2": [5100, 51, 100, 1, false],
      "10.0.0.3": [100, 1, 9000, 90, false],
    });
    // Without a host: both hosts summed per address.
    const fleet = json(await t.req("GET", "/v1/accounting/tables/lan"));
    assert.equal(fleet.items.find((x) => x.ip === "10.0.0.1")?.srcBytes, 3400);
    // Pages of 2 walk the same rows.
    const seen: unknown[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const p = json(await t.req("GET", `/v1/accounting/tables/lan?limit=2${cursor ? `&cursor=${cursor}` : ""}`));
      seen.push(...p.items);
      cursor = p.nextCursor;
      if (!cursor) break;
    }
    assert.deepEqual(seen, fleet.items);
    // A range: only the first batch of edge-1.
    const from = new Date(T0 - 1000).toISOString();
    const to = new Date(T0 + 1000).toISOString();
    const ranged = json(await t.req("GET", `/v1/accounting/tables/lan?host=${h1}&from=${from}&to=${to}`));
    assert.deepEqual(
      ranged.items.map((x) => [x.ip, x.srcBytes]),
      [
        ["", 300],
        ["10.0.0.1", 1000],
        ["10.0.0.2", 5000],
      ],
    );
    // The 0.0.0.0/0 table is its one slot.
    assert.deepEqual(
      json(await t.req("GET", "/v1/accounting/tables/all")).items.map((x) => [x.ip, x.srcBytes, x.unattributed]),
      [["", 700, true]],
    );
  });

  test("bad input is a 4xx with the envelope", async () => {
    const cases: [string, number, string][] = [
      ["/v1/accounting/tables/nope", 404, "not_found"],
      [
        `/v1/accounting/tables/lan?from=${new Date(T0).toISOString()}&to=${new Date(T0 - 1).toISOString()}`,
        400,
        "invalid_request",
      ],
      ["/v1/accounting/tables/lan?from=yesterday", 400, "invalid_request"],
      ["/v1/accounting/tables/lan?cursor=garbage", 400, "invalid_request"],
      ["/v1/accounting/tables/lan?bogus=1", 400, "invalid_request"],
      ["/v1/accounting/top", 400, "invalid_request"],
      ["/v1/accounting/top?table=lan&by=furlongs", 400, "invalid_request"],
      ["/v1/accounting/series?table=lan&step=5m", 400, "invalid_request"],
      ["/v1/accounting/series?table=lan&ip=10.0.0.256", 400, "invalid_request"],
      ["/v1/quotas?host=nope", 404, "not_found"],
      ["/v1/logs?limit=0", 400, "invalid_request"],
    ];
    for (const [url, status, code] of cases) {
      const r = await t.req("GET", url);
      assert.equal(r.statusCode, status, `${url}: ${r.body}`);
      assert.equal(errorOf(r).code, code, url);
    }
  });

  test("top talkers by bytes or packets and direction", async () => {
    const top = json(await t.req("GET", "/v1/accounting/top?table=lan&host=edge-1&by=bytes&direction=src&limit=2"));
    assert.deepEqual(
      top.items.map((x) => [x.ip, x.value]),
      [
        ["10.0.0.2", 5100],
        ["10.0.0.1", 3000],
      ],
    );
    const dst = json(await t.req("GET", "/v1/accounting/top?table=lan&direction=dst&by=packets&limit=1"));
    assert.deepEqual(
      dst.items.map((x) => [x.ip, x.value]),
      [["10.0.0.3", 90]],
    );
    const both = json(await t.req("GET", "/v1/accounting/top?table=lan&limit=10"));
    assert.equal(both.items[0]?.ip, "10.0.0.3");
    assert.ok(
      both.items.every((x) => x.ip !== ""),
      "the unattributed remainder is not a talker",
    );
    assert.equal(both.items.length, 4);
  });

  test("series per step, for a table or one address, paged along time", async () => {
    const from = new Date(Math.floor(T0 / 3600_000) * 3600_000).toISOString();
    const to = new Date(Math.floor(T0 / 3600_000) * 3600_000 + 3 * 3600_000).toISOString();
    const h = json(await t.req("GET", `/v1/accounting/series?table=lan&host=edge-1&step=1h&from=${from}&to=${to}`));
    assert.deepEqual(
      h.items.map((p) => p.srcBytes),
      [6300, 2100, 100],
    );
    const one = json(await t.req("GET", `/v1/accounting/series?table=lan&ip=10.0.0.1&step=1h&from=${from}&to=${to}`));
    assert.deepEqual(
      one.items.map((p) => p.srcBytes),
      [1400, 2000, 0],
      "both hosts, one address",
    );
    // 1m steps over 3 hours = 180 points: pages of 100.
    const p1 = json(
      await t.req("GET", `/v1/accounting/series?table=lan&host=edge-1&step=1m&from=${from}&to=${to}&limit=100`),
    );
    assert.equal(p1.items.length, 100);
    assert.ok(p1.nextCursor);
    const p2 = json(
      await t.req(
        "GET",
        `/v1/accounting/series?table=lan&host=edge-1&step=1m&from=${from}&to=${to}&limit=100&cursor=${p1.nextCursor}`,
      ),
    );
    assert.equal(p2.items.length, 80);
    assert.equal(p2.nextCursor, null);
    const sum = [...p1.items, ...p2.items].reduce((a, p) => a + Number(p.srcBytes), 0);
    assert.equal(sum, 8500);
    const d = json(
      await t.req(
        "GET",
        `/v1/accounting/series?table=lan&step=1d&from=${new Date(T0 - 86_400_000).toISOString()}&to=${new Date(T0 + 86_400_000).toISOString()}`,
      ),
    );
    assert.equal(
      d.items.reduce((a, p) => a + Number(p.srcBytes), 0),
      9700,
    );
  });
});

describe("quota routes", () => {
  test("quota state per host with remaining", async () => {
    const q = json(await t.req("GET", "/v1/quotas?host=edge-1", { as: "viewer" }));
    assert.deepEqual(
      q.items.map((x) => [x.host, x.name, x.mode, x.limit, x.used, x.remaining]),
      [
        ["edge-1", "q1", "bytes", 10_000, 2_500, 7_500],
        ["edge-1", "up", "packets", 0, 7, null],
      ],
    );
    const p = json(await t.req("GET", "/v1/quotas?limit=1"));
    assert.ok(p.nextCursor);
    assert.deepEqual(
      json(await t.req("GET", `/v1/quotas?limit=1&cursor=${p.nextCursor}`)).items.map((x) => x.name),
      ["up"],
    );
  });

  test("reset: operator+, audited, published to the agent's host channel, answered by the agent", async () => {
    const sub = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const got: string[] = [];
      await sub.subscribe(hostChannel(h1));
      sub.on("message", (_c, m) => got.push(m));
      assert.equal((await t.req("POST", "/v1/hosts/edge-1/quotas/q1/reset", { as: "viewer" })).statusCode, 403);
      assert.equal((await t.req("POST", "/v1/hosts/edge-1/quotas/q1/reset", { as: null })).statusCode, 401);
      assert.equal((await t.req("POST", "/v1/hosts/edge-1/quotas/nope/reset", { as: "operator" })).statusCode, 404);
      assert.equal((await t.req("POST", "/v1/hosts/nope/quotas/q1/reset", { as: "operator" })).statusCode, 404);
      const r = await t.req("POST", `/v1/hosts/${h1}/quotas/q1/reset`, { as: "operator" });
      assert.equal(r.statusCode, 202, r.body);
      const body = r.json() as { requestId: string; status: string; delivered: boolean };
      assert.equal(body.status, "pending");
      assert.equal(body.delivered, true, "a subscriber (the stream holder) received it");
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
      assert.deepEqual(
        got.map((m) => JSON.parse(m)),
        [{ type: "quota_reset", requestId: body.requestId, name: "q1" }],
      );
      const audit = await t.db.auditLog.findFirst({
        where: { action: "quota.reset.request" },
        orderBy: { id: "desc" },
      });
      assert.equal(audit?.actor, "test-operator");
      assert.equal(audit?.target, "host:edge-1");
      // The agent's answer, via the stream handler; another host cannot answer for it.
      assert.equal(await recordQuotaReset(t, h2, { requestId: body.requestId, ok: true }), false);
      assert.equal(await recordQuotaReset(t, h1, { requestId: body.requestId, ok: true }), true);
      assert.equal(await recordQuotaReset(t, h1, { requestId: body.requestId, ok: true }), false, "answered once");
      const row = await t.db.quotaResetRequest.findUniqueOrThrow({ where: { id: body.requestId } });
      assert.deepEqual([row.status, row.requestedBy], ["done", "test-operator"]);
    } finally {
      sub.disconnect();
    }
  });
});

describe("log routes", () => {
  test("list filtered by host and prefix, newest first, paged", async () => {
    const ev = (ms: number, prefix: string, mark: number) => ({
      unixMs: ms,
      prefix,
      level: 4,
      mark,
      ctmark: 0,
      iif: "eth0",
      oif: "",
      saddr: "10.0.0.1",
      daddr: "10.0.0.2",
      protocol: "tcp",
      sport: 1,
      dport: 22,
      length: 60,
    });
    await ingestTelemetry(
      t,
      h1,
      batch("e", 10, T0, [], { logs: [ev(T0, "SSH ", 1), ev(T0 + 1, "WEB ", 2), ev(T0 + 2, "SSH ", 3)] }),
    );
    await ingestTelemetry(t, h2, batch("f", 10, T0, [], { logs: [ev(T0 + 3, "SSH ", 4)] }));
    const all = json(await t.req("GET", "/v1/logs?prefix=SSH", { as: "viewer" }));
    assert.deepEqual(
      all.items.map((e) => e.mark),
      [4, 3, 1],
    );
    assert.deepEqual(
      json(await t.req("GET", "/v1/logs?prefix=SSH&host=edge-1")).items.map((e) => [e.host, e.mark]),
      [
        ["edge-1", 3],
        ["edge-1", 1],
      ],
    );
    const p1 = json(await t.req("GET", `/v1/logs?host=${h1}&limit=2`));
    const p2 = json(await t.req("GET", `/v1/logs?host=${h1}&limit=2&cursor=${p1.nextCursor}`));
    assert.deepEqual(
      [...p1.items, ...p2.items].map((e) => e.mark),
      [3, 2, 1],
    );
    assert.equal(p2.nextCursor, null);
    const ranged = json(
      await t.req("GET", `/v1/logs?from=${new Date(T0 + 1).toISOString()}&to=${new Date(T0 + 3).toISOString()}`),
    );
    assert.deepEqual(
      ranged.items.map((e) => e.mark),
      [3, 2],
    );
  });

  test("the SSE stream delivers a new event (host and prefix filters) and ends cleanly", async () => {
    const addr = await t.app.listen({ host: "127.0.0.1", port: 0 });
    assert.equal((await fetch(`${addr}/v1/logs/stream`)).status, 401);
    const ac = new AbortController();
    const res = await fetch(`${addr}/v1/logs/stream?host=edge-2&prefix=DROP&heartbeat=1&maxEvents=1`, {
      headers: { authorization: "Bearer test-viewer-secret-0000000000000000" },
      signal: ac.signal,
    });
    try {
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
      const reader = res.body!.getReader();
      let text = "";
      const readUntil = async (re: RegExp) => {
        for (let i = 0; i < 200 && !re.test(text); i++) {
          const { value, done } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
      };
      await readUntil(/stream open/);
      await readUntil(/: ping/); // the heartbeat (1 s here)
      assert.match(text, /: ping/);
      const ev = {
        unixMs: Date.now(),
        prefix: "DROP in: ",
        level: 4,
        mark: 42,
        ctmark: 5,
        iif: "",
        oif: "",
        saddr: "",
        daddr: "",
        protocol: "",
        sport: 0,
        dport: 0,
        length: 0,
      };
      await ingestTelemetry(t, h1, batch("e", 20, Date.now(), [], { logs: [{ ...ev, mark: 1 }] })); // other host: filtered out
      await ingestTelemetry(t, h2, batch("f", 20, Date.now(), [], { logs: [{ ...ev, prefix: "ACCEPT", mark: 2 }] })); // other prefix
      await ingestTelemetry(t, h2, batch("f", 21, Date.now(), [], { logs: [ev] }));
      await readUntil(/data: .*\n\n/);
      const data = /data: (.*)\n/.exec(text)?.[1];
      assert.ok(data, text);
      const e = JSON.parse(data) as { mark: number; host: string; prefix: string; ctmark: number };
      assert.deepEqual([e.mark, e.ctmark, e.host, e.prefix], [42, 5, "edge-2", "DROP in: "]);
      // maxEvents=1: the server ends the stream.
      let done = false;
      for (let i = 0; i < 100 && !done; i++) done = (await reader.read()).done;
      assert.ok(done, "the stream ended after maxEvents");
    } finally {
      ac.abort();
    }
  });
});

describe("role matrix", () => {
  test("viewers read every telemetry route; no token is 401; reset needs operator or admin", async () => {
    for (const url of [
      "/v1/accounting/tables",
      "/v1/accounting/tables/lan",
      "/v1/accounting/top?table=lan",
      "/v1/accounting/series?table=lan",
      "/v1/quotas",
      "/v1/logs",
    ]) {
      for (const as of ["viewer", "operator", "admin"] as const)
        assert.equal((await t.req("GET", url, { as })).statusCode, 200, `${as} ${url}`);
      assert.equal((await t.req("GET", url, { as: null })).statusCode, 401, url);
    }
    assert.equal((await t.req("POST", "/v1/hosts/edge-1/quotas/q1/reset", { as: "viewer" })).statusCode, 403);
    for (const as of ["operator", "admin"] as const)
      assert.equal((await t.req("POST", "/v1/hosts/edge-1/quotas/q1/reset", { as })).statusCode, 202, as);
  });
});

test("the OpenAPI document lists the telemetry routes", async () => {
  const r = await t.req("GET", "/openapi.json", { as: null });
  assert.equal(r.statusCode, 200);
  const paths = Object.keys((r.json() as { paths: Record<string, unknown> }).paths);
  for (const p of [
    "/v1/accounting/tables",
    "/v1/accounting/tables/{name}",
    "/v1/accounting/top",
    "/v1/accounting/series",
    "/v1/quotas",
    "/v1/hosts/{id}/quotas/{name}/reset",
    "/v1/logs",
    "/v1/logs/stream",
  ]) {
    assert.ok(paths.includes(p), `${p} in ${paths.join(" ")}`);
  }
});
