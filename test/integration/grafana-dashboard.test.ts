// deploy/grafana/palisade-dashboard.json: every PostgreSQL panel's SQL (and template
// variable query) runs against a freshly migrated database holding ingested, rolled-up
// telemetry, with Grafana's macros expanded as Grafana expands them, and returns the
// bytes that were ingested, at each rollup level the range selects. Every Prometheus
// panel's PromQL parses (promtool check rules) and names metrics /metrics exports.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ingestTelemetry } from "../../src/api/telemetry/ingest.ts";
import { retentionFromEnv } from "../../src/api/telemetry/retention.ts";
import { rollupAll } from "../../src/api/telemetry/rollups.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { batch, makeHost } from "../support/telemetry-batches.ts";

interface Target {
  expr?: string;
  rawSql?: string;
  format?: string;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
const DASHBOARD = join(import.meta.dirname, "../../deploy/grafana/palisade-dashboard.json");
const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
  panels: Panel[];
  templating: { list: { name: string; query: string; datasource?: { type: string } }[] };
};
const sqlPanels = dash.panels.filter((p) => p.datasource?.type === "grafana-postgresql-datasource");
const promPanels = dash.panels.filter((p) => p.datasource?.type === "prometheus");

/** Grafana's PostgreSQL macros and single-value template variables, as Grafana interpolates them. */
function expand(sql: string, from: Date, to: Date, vars: Record<string, string>): string {
  const lit = (d: Date) => `'${d.toISOString()}'`;
  return sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_m, col: string) => `${col} BETWEEN ${lit(from)} AND ${lit(to)}`)
    .replace(/\$__timeFrom\(\)/g, lit(from))
    .replace(/\$__timeTo\(\)/g, lit(to))
    .replace(/\$(\w+)/g, (m, name: string) => {
      if (!(name in vars)) throw new Error(`unknown variable ${m} in: ${sql}`);
      return vars[name]!;
    });
}

let t: TestApp;
const now = Date.now();
const HOUR = 3600_000;
before(async () => {
  t = await startTestApp();
  const host = await makeHost(t.db, "gr-edge");
  await makeHost(t.db, "gr-idle");
  const row = (ip: string, src: number, dst = 0) => ({
    table: "lan",
    ip,
    srcBytes: src,
    srcPackets: src / 100,
    dstBytes: dst,
    dstPackets: dst / 100,
  });
  await ingestTelemetry({ db: t.db }, host, batch("g1", 1, now - 36 * HOUR, [row("10.0.0.1", 7000)]));
  await ingestTelemetry(
    { db: t.db },
    host,
    batch("g1", 2, now - 0.5 * HOUR, [row("10.0.0.1", 1000), row("10.0.0.2", 500, 200)]),
  );
  await ingestTelemetry(
    { db: t.db },
    host,
    batch("g1", 3, now - 0.2 * HOUR, [row("10.0.0.1", 300)], {
      quotas: [{ name: "daily", mode: "bytes", limit: 1000, used: 250, grow: false }],
    }),
  );
  await rollupAll(t.db, retentionFromEnv(), { maxRuns: 50 });
});
after(async () => {
  await t?.close();
});

async function run(
  sql: string,
  fromAgo: number,
  vars: Partial<Record<string, string>> = {},
): Promise<Record<string, unknown>[]> {
  const text = expand(sql, new Date(now - fromAgo), new Date(now + 60_000), {
    table: "lan",
    host: "%",
    address: "",
    ...vars,
  });
  return t.db.$queryRawUnsafe<Record<string, unknown>[]>(text);
}
const panel = (title: string) => {
  const p = sqlPanels.find((x) => x.title === title);
  assert.ok(p, `panel ${title}`);
  return p.targets![0]!.rawSql!;
};

describe("Grafana dashboard", () => {
  test("the dashboard has both kinds of panels, every target a query", () => {
    assert.ok(
      sqlPanels.length >= 4 && promPanels.length >= 10,
      `${sqlPanels.length} SQL, ${promPanels.length} PromQL panels`,
    );
    for (const p of sqlPanels)
      assert.ok(
        p.targets?.every((x) => x.rawSql),
        p.title,
      );
    for (const p of promPanels)
      assert.ok(
        p.targets?.every((x) => x.expr),
        p.title,
      );
  });

  test("every SQL panel and variable query runs on the migrated database and returns rows", async () => {
    for (const p of sqlPanels)
      for (const target of p.targets!) {
        const rows = await run(target.rawSql!, HOUR);
        assert.ok(rows.length > 0, `${p.title}: no rows`);
      }
    for (const v of dash.templating.list.filter((x) => x.datasource?.type === "grafana-postgresql-datasource")) {
      const rows = await t.db.$queryRawUnsafe<Record<string, unknown>[]>(v.query);
      assert.ok(rows.length > 0, `variable ${v.name}`);
    }
  });

  test("top talkers: the ingested bytes per address, at the minute, hour, day and month levels", async () => {
    const sql = panel("Top talkers");
    const totals = async (rangeMs: number, vars = {}) =>
      Object.fromEntries(
        (await run(sql, rangeMs, vars)).map((r) => [r.address, [Number(r.sent_bytes), Number(r.received_bytes)]]),
      );
    assert.deepEqual(await totals(HOUR), { "10.0.0.1": [1300, 0], "10.0.0.2": [500, 200] }, "last hour, from minutes");
    for (const days of [7, 30, 400])
      assert.deepEqual(
        await totals(days * 24 * HOUR),
        { "10.0.0.1": [8300, 0], "10.0.0.2": [500, 200] },
        `last ${days} days`,
      );
    assert.deepEqual(await totals(HOUR, { host: "gr-idle" }), {}, "another host's filter");
  });

  test("traffic over time: buckets add up to the bytes sent, for the table and for one address", async () => {
    const sql = panel("Traffic over time");
    const sum = (rows: Record<string, unknown>[], k: string) => rows.reduce((a, r) => a + Number(r[k]), 0);
    const all = await run(sql, HOUR);
    assert.ok(
      all.every((r) => r.time instanceof Date),
      "a time column",
    );
    assert.equal(sum(all, "sent"), 1800);
    assert.equal(sum(all, "received"), 200);
    assert.equal(sum(await run(sql, 7 * 24 * HOUR, { address: "10.0.0.1" }), "sent"), 8300);
  });

  test("quota usage and hosts", async () => {
    const [q] = await run(panel("Quota usage"), HOUR);
    assert.deepEqual(
      [q?.host, q?.name, Number(q?.used), Number(q?.limit), Number(q?.used_percent)],
      ["gr-edge", "daily", 250, 1000, 25],
    );
    const hosts = await run(panel("Hosts"), HOUR);
    assert.deepEqual(hosts.map((h) => h.host).sort(), ["gr-edge", "gr-idle"]);
  });

  test("every PromQL expression parses and names metrics that /metrics exports", async () => {
    const exported = (await t.req("GET", "/metrics", { as: null })).body;
    const exprs = promPanels.flatMap((p) =>
      p.targets!.map((x) => ({ title: p.title, expr: x.expr!.replace(/\$__rate_interval/g, "5m") })),
    );
    for (const { title, expr } of exprs) {
      for (const [name] of expr.matchAll(/palisade_[a-z_]+/g)) {
        const base = name.replace(/_(bucket|sum|count)$/, "");
        assert.match(exported, new RegExp(`^# TYPE (${name}|${base}) `, "m"), `${title}: ${name} is not exported`);
      }
    }
    const dir = mkdtempSync(join(tmpdir(), "palisade-promql-"));
    try {
      const rules = exprs
        .map((e, i) => `      - record: palisade:panel_${i}\n        expr: ${JSON.stringify(e.expr)}`)
        .join("\n");
      writeFileSync(join(dir, "rules.yml"), `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
      const r = spawnSync("promtool", ["check", "rules", join(dir, "rules.yml")], { encoding: "utf8" });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("views: an aggregated prefix keeps its length, a single address stays bare; the fleet view shows disabled", async () => {
    const host = (await t.db.host.findUniqueOrThrow({ where: { name: "gr-edge" } })).id;
    const row = (ip: string, src: number) => ({
      table: "lan6",
      ip,
      srcBytes: src,
      srcPackets: 1,
      dstBytes: 0,
      dstPackets: 0,
    });
    await ingestTelemetry(
      { db: t.db },
      host,
      batch("g6", 1, now - 0.3 * HOUR, [row("2001:db8:1:2::/64", 640), row("2001:db8::7", 70)]),
    );
    await rollupAll(t.db, retentionFromEnv(), { maxRuns: 50 });
    const rows = await t.db.$queryRawUnsafe<{ address: string }[]>(
      `SELECT DISTINCT address FROM palisade_accounting WHERE table_name = 'lan6' ORDER BY address`,
    );
    assert.deepEqual(
      rows.map((r) => r.address),
      ["2001:db8:1:2::/64", "2001:db8::7"],
    );
    await t.db.host.update({ where: { name: "gr-idle" }, data: { disabled: true } });
    const fleet = await t.db.$queryRawUnsafe<{ host: string; disabled: boolean }[]>(
      `SELECT host, disabled FROM palisade_hosts_state ORDER BY host`,
    );
    assert.deepEqual(fleet, [
      { host: "gr-edge", disabled: false },
      { host: "gr-idle", disabled: true },
    ]);
  });
});
