// Prometheus metrics on a live scrape over a real socket: the fleet, deployments, apply
// results and telemetry as a real (simulated-agent) fleet produced them, prom-client's
// default metrics under their standard names, and `promtool check metrics` on the text.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { STANDARD_TOTAL_GAUGES } from "../../src/api/metrics/plugin.ts";
import { validPolicy } from "../support/policies.ts";
import { startFleet, waitFor, type Fleet } from "../support/grpc-fleet.ts";

/**
 * prom-client's default gauges whose names end in _total (a promtool lint). They keep
 * their standard names on purpose: stock Node.js dashboards query them by these names.
 */
const STANDARD_NAME_EXCEPTIONS: readonly string[] = STANDARD_TOTAL_GAUGES;

let f: Fleet;
let url: string;
before(async () => {
  f = await startFleet();
  await f.addReplica();
  await f.startWorker();
  url = await f.t.app.listen({ host: "127.0.0.1", port: 0 });
});
after(async () => {
  await f?.close();
});

async function scrape(): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The value of one sample, by metric name and exact label set (as printed). */
function sample(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  assert.ok(
    line,
    `no sample ${name}{${labels}} in:\n${text
      .split("\n")
      .filter((l) => l.startsWith(name))
      .join("\n")}`,
  );
  return Number(line.split(" ").at(-1));
}

describe("metrics", () => {
  test("fleet, deployment, apply and telemetry metrics follow what happened", async () => {
    const before = await scrape();
    const appliedBefore = sample(before, "palisade_apply_results_total", 'outcome="applied"');
    const batchesBefore = sample(before, "palisade_telemetry_batches_total", 'result="ingested"');
    const rowsBefore = sample(before, "palisade_telemetry_rows_total", 'kind="accounting"');
    assert.equal(sample(before, "palisade_hosts", 'connection="connected"'), 0);

    await f.t.req("POST", "/v1/rulesets", { body: { name: "m" } });
    assert.equal(
      (await f.t.req("POST", "/v1/rulesets/m/versions", { body: { policy: validPolicy(80) } })).statusCode,
      201,
    );
    const a = await f.agent("metrics-a", { grp: "m" });
    const b = await f.agent("metrics-b", { grp: "m" });
    await f.agent("metrics-c", { grp: "other" }, { connect: false });
    const res = await f.t.req("POST", "/v1/deployments", {
      as: "operator",
      body: { ruleset: "m", version: 1, selector: { labels: { grp: "m" } }, strategy: { canary: 0, batchSize: 10 } },
    });
    assert.equal(res.statusCode, 202, res.body);
    const id = (res.json() as { id: string }).id;
    await waitFor(
      async () => (await f.t.req("GET", `/v1/deployments/${id}`)).json().status === "succeeded",
      30_000,
      "deployment to succeed",
      100,
    );
    a.send({
      telemetry: {
        epoch: "m1",
        seq: "1",
        takenAtUnixMs: String(Date.now()),
        accounting: [
          { table: "lan", ip: "10.1.0.1", srcBytes: "10", srcPackets: "1", dstBytes: "0", dstPackets: "0" },
          { table: "lan", ip: "10.1.0.2", srcBytes: "5", srcPackets: "1", dstBytes: "0", dstPackets: "0" },
        ],
      },
    });
    a.send({
      telemetry: {
        epoch: "m1",
        seq: "1",
        takenAtUnixMs: String(Date.now()),
        accounting: [{ table: "lan", ip: "10.1.0.1", srcBytes: "10", srcPackets: "1", dstBytes: "0", dstPackets: "0" }],
      },
    });
    await a.ping();
    await f.t.db.host.update({ where: { id: b.hostId }, data: { drift: true } });

    const text = await scrape();
    assert.equal(sample(text, "palisade_hosts", 'connection="connected"'), 2);
    assert.equal(sample(text, "palisade_hosts", 'connection="never_connected"'), 1);
    assert.equal(sample(text, "palisade_hosts_drift", 'state="drifted"'), 1);
    assert.equal(sample(text, "palisade_hosts_drift", 'state="in_sync"'), 2);
    assert.equal(sample(text, "palisade_deployments", 'status="succeeded"'), 1);
    assert.equal(sample(text, "palisade_deployment_targets", 'status="applied"'), 2);
    assert.equal(sample(text, "palisade_apply_results_total", 'outcome="applied"') - appliedBefore, 2);
    assert.equal(sample(text, "palisade_rollout_duration_seconds_count"), 1);
    assert.equal(sample(text, "palisade_rollout_duration_seconds_bucket", 'le="+Inf"'), 1);
    assert.ok(sample(text, "palisade_rollout_duration_seconds_sum") > 0);
    assert.equal(sample(text, "palisade_telemetry_batches_total", 'result="ingested"') - batchesBefore, 1);
    assert.equal(sample(text, "palisade_telemetry_batches_total", 'result="duplicate"') >= 1, true);
    assert.equal(sample(text, "palisade_telemetry_rows_total", 'kind="accounting"') - rowsBefore, 2);
    assert.ok(sample(text, "palisade_telemetry_ingest_lag_seconds") >= 0);
    // The batch marked its minute dirty; no rollup ran in this test, so the lag is that minute's age.
    assert.ok(sample(text, "palisade_telemetry_rollup_lag_seconds") >= 0);
    for (const state of ["wait", "active", "delayed", "failed"])
      assert.ok(sample(text, "palisade_queue_jobs", `queue="deploy",state="${state}"`) >= 0);
    assert.equal(sample(text, "palisade_sse_clients"), 0);
  });

  test("an open log stream is counted as an SSE client until it closes", async () => {
    const ctl = new AbortController();
    const res = await fetch(`${url}/v1/logs/stream`, {
      headers: { authorization: `Bearer ${(await import("../support/app.ts")).ROLE_TOKENS.viewer}` },
      signal: ctl.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read(); // ": stream open"
    assert.equal(sample(await scrape(), "palisade_sse_clients"), 1);
    ctl.abort();
    await reader.cancel().catch(() => {});
    await waitFor(
      async () => sample(await scrape(), "palisade_sse_clients") === 0,
      10_000,
      "the stream to be closed server-side",
    );
  });

  test("default Node.js metrics keep their standard names", async () => {
    const text = await scrape();
    for (const name of [
      "process_cpu_user_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_heap_size_used_bytes",
      "nodejs_eventloop_lag_seconds",
      "nodejs_active_handles_total",
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
    assert.doesNotMatch(text, /^palisade_(process|nodejs)_/m, "no renamed default metrics");
  });

  test("promtool check metrics finds nothing but the standard-name exceptions, which say why in their HELP", async () => {
    const text = await scrape();
    const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(r.error, undefined, "promtool is installed (Debian package prometheus)");
    const problems = `${r.stdout}${r.stderr}`
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    // Exactly the _total remark, on exactly the exception names that this Node.js exports.
    const exported = STANDARD_NAME_EXCEPTIONS.filter((n) => new RegExp(`^# TYPE ${n} gauge$`, "m").test(text));
    assert.ok(exported.includes("nodejs_active_handles_total"), "the exceptions are exported");
    assert.deepEqual(
      problems.sort(),
      exported.map((n) => `${n} non-counter metrics should not have "_total" suffix`).sort(),
      `promtool reports:\n${problems.join("\n")}`,
    );
    for (const n of exported)
      assert.match(
        text,
        new RegExp(
          `^# HELP ${n} .*the _total suffix is prom-client's standard name, kept so stock Node\\.js dashboards work`,
          "m",
        ),
        n,
      );
  });

  test("the spool backlog agents report in heartbeats is summed by connection state, written at a bounded rate", async () => {
    // A replica whose streams write a backlog at most once an hour: a second report on the
    // same stream is certainly inside the window, whatever the machine's pace.
    const slow = await f.addReplica({ ctx: { spoolWriteResolutionMs: 3_600_000 } });
    const replica = f.replicas.length - 1;
    const before = await scrape();
    const base = {
      connected: sample(before, "palisade_agent_spool_batches", 'connection="connected"'),
      disconnected: sample(before, "palisade_agent_spool_batches", 'connection="disconnected"'),
    };
    const baseBytes = sample(before, "palisade_agent_spool_bytes", 'connection="connected"');
    const a = await f.agent("spool-a", {}, { replica });
    const b = await f.agent("spool-b", {}, { replica });
    const hb = (seq: number, batches: number, bytes: number) => ({
      heartbeat: {
        seq: String(seq),
        unixMs: String(Date.now()),
        spoolBatches: String(batches),
        spoolBytes: String(bytes),
      },
    });
    a.send(hb(1, 3, 3000));
    b.send(hb(1, 2, 2000));
    await a.ping();
    await b.ping();
    let text = await scrape();
    assert.equal(sample(text, "palisade_agent_spool_batches", 'connection="connected"') - base.connected, 5);
    assert.equal(sample(text, "palisade_agent_spool_bytes", 'connection="connected"') - baseBytes, 5000);
    assert.ok(sample(text, "palisade_agent_spool_max_batches") >= 3);
    const row = await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } });
    assert.deepEqual([row.spoolBatches, row.spoolBytes, row.spoolReportedAt !== null], [3n, 3000n, true]);
    // The API shows each host's last report; a host whose agent never reported it shows null.
    const view = (await f.t.req("GET", "/v1/hosts/spool-a", { as: "viewer" })).json() as {
      spool: { batches: number; bytes: number; reportedAt: string } | null;
    };
    assert.deepEqual([view.spool?.batches, view.spool?.bytes, typeof view.spool?.reportedAt], [3, 3000, "string"]);
    assert.equal((await f.t.req("GET", "/v1/hosts/metrics-a", { as: "viewer" })).json().spool, null);

    // A changed backlog inside the window is not written (one write per window per stream).
    a.send(hb(2, 9, 9000));
    await a.ping();
    assert.equal((await f.t.db.host.findUniqueOrThrow({ where: { id: a.hostId } })).spoolBatches, 3n);
    // A heartbeat without the fields (an older agent) leaves the last report alone.
    assert.equal(sample(await scrape(), "palisade_agent_spool_batches", 'connection="connected"') - base.connected, 5);

    // A new stream writes at once; a disconnected host keeps its last report, under its new state.
    await a.connect({ address: `127.0.0.1:${slow.port}` });
    a.send(hb(1, 4, 4000));
    await a.ping();
    b.close();
    await waitFor(
      async () =>
        sample(await scrape(), "palisade_agent_spool_batches", 'connection="disconnected"') - base.disconnected === 2,
      10_000,
      "b's report to count as disconnected",
    );
    text = await scrape();
    assert.equal(sample(text, "palisade_agent_spool_batches", 'connection="connected"') - base.connected, 4);
    assert.equal(sample(text, "palisade_agent_spool_bytes", 'connection="connected"') - baseBytes, 4000);
    assert.ok(sample(text, "palisade_agent_spool_max_batches") >= 4);
  });

  test("a backlog that does not fit the database's bigint is a malformed heartbeat", async () => {
    const c = await f.agent("spool-c");
    c.send({
      heartbeat: { seq: "1", unixMs: String(Date.now()), spoolBatches: "18446744073709551615", spoolBytes: "1" },
    });
    const end = await c.ended;
    assert.equal(end.palisadeCode, "malformed_message", end.details);
  });
});
