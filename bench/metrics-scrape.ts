// metrics-scrape: what one GET /metrics costs with a 1,000-host fleet (issue 13), with the
// fleet snapshot read afresh (PALISADE_METRICS_CACHE_SECONDS=0) and cached (the default
// 5 s), beside GET /healthz (the floor of one request through the app) and the console's
// fleet page (GET /v1/hosts?limit=100) measured in the same run.
//
// The fleet: 1,000 hosts (connected, disconnected, never connected; every tenth drifted,
// every host with a reported spool backlog), 200 finished deployments (5 of them with a target per host). Requests go through app.inject (no socket), interleaved per round.
// Needs PostgreSQL and Redis (127.0.0.1). Usage: npm run bench -- bench/metrics-scrape.ts
// (BENCH_RUNS=50 by default).
import { startTestApp, type TestApp } from "../test/support/app.ts";
import { validPolicy } from "../test/support/policies.ts";
import { note } from "./lib/progress.ts";
import { machine, median, ms, p95, ratio, table, NOISE_NOTE } from "./lib/stats.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const HOSTS = 1_000;

async function seed(t: TestApp): Promise<void> {
  await t.db.$executeRawUnsafe(`
    INSERT INTO hosts (name, connection, drift, last_seen_at, spool_batches, spool_bytes, spool_reported_at)
    SELECT 'bench-' || lpad(i::text, 4, '0'),
           (ARRAY['connected', 'disconnected', 'never_connected'])[1 + i % 3]::host_connection,
           i % 10 = 0, now(), i % 7, (i % 7) * 4096, now()
      FROM generate_series(1, ${HOSTS}) AS i`);
  await t.req("POST", "/v1/rulesets", { body: { name: "bench" } });
  const v = await t.req("POST", "/v1/rulesets/bench/versions", { body: { policy: validPolicy(80) } });
  if (v.statusCode !== 201) throw new Error(`version: ${v.body}`);
  await t.db.$executeRawUnsafe(`
    INSERT INTO deployments (version_id, status, created_by, created_at, finished_at, selector, strategy)
    SELECT rv.id, 'succeeded', 'bench', now() - interval '1 hour', now() - interval '1 hour' + (i || ' seconds')::interval, '{}', '{}'
      FROM ruleset_versions rv, generate_series(1, 200) AS i`);
  await t.db.$executeRawUnsafe(`
    INSERT INTO deployment_targets (deployment_id, host_id, version_id, batch, status)
    SELECT d.id, h.id, d.version_id, 0, 'applied' FROM (SELECT id, version_id FROM deployments LIMIT 5) d, hosts h`);
}

async function time(t: TestApp, url: string, headers: Record<string, string> = {}): Promise<number> {
  const start = performance.now();
  const res = await t.app.inject({ method: "GET", url, headers });
  const took = performance.now() - start;
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body.slice(0, 200)}`);
  return took;
}

const host = machine(); // the load average before the runs, as its text says
const fresh = await startTestApp({ metrics: { token: undefined, cacheMs: 0 } });
const cached = await startTestApp({ metrics: { token: undefined, cacheMs: 5_000 } });
try {
  note(`seeding ${HOSTS} hosts twice`);
  await seed(fresh);
  await seed(cached);
  const auth = { authorization: "Bearer test-viewer-secret-0000000000000000" };
  const runs: Record<string, number[]> = { healthz: [], fresh: [], cached: [], hosts: [] };
  for (let i = 0; i < 3; i++)
    await Promise.all([time(fresh, "/metrics"), time(cached, "/metrics"), time(fresh, "/v1/hosts?limit=100", auth)]);
  for (let i = 0; i < RUNS; i++) {
    runs.healthz!.push(await time(fresh, "/healthz"));
    runs.fresh!.push(await time(fresh, "/metrics"));
    runs.cached!.push(await time(cached, "/metrics"));
    runs.hosts!.push(await time(fresh, "/v1/hosts?limit=100", auth));
  }
  const base = median(runs.healthz!);
  console.log(host);
  console.log(`GET /metrics and the fleet page with ${HOSTS} hosts, ${RUNS} interleaved runs (app.inject)\n`);
  console.log(
    table([
      ["request", "p50", "p95", "p50 vs /healthz"],
      ["GET /healthz", ms(base), ms(p95(runs.healthz!)), "1.00x"],
      [
        "GET /metrics, snapshot every scrape",
        ms(median(runs.fresh!)),
        ms(p95(runs.fresh!)),
        ratio(median(runs.fresh!), base),
      ],
      [
        "GET /metrics, snapshot cached 5 s",
        ms(median(runs.cached!)),
        ms(p95(runs.cached!)),
        ratio(median(runs.cached!), base),
      ],
      ["GET /v1/hosts?limit=100", ms(median(runs.hosts!)), ms(p95(runs.hosts!)), ratio(median(runs.hosts!), base)],
    ]),
  );
  console.log(`\n${NOISE_NOTE}`);
} finally {
  await fresh.close();
  await cached.close();
}
