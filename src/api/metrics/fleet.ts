// Product metrics read from PostgreSQL and Redis: the state of the whole fleet, not of
// this process, so every replica reports the same values (aggregate them with max, not
// sum). One snapshot serves every gauge below, and it is kept for `cacheMs` after it was
// taken, so scrapes (several Prometheus servers, a dashboard refreshing) cost at most one
// round of queries per replica per cache period.
import type { Redis } from "ioredis";
import { Gauge, type Registry } from "prom-client";
import type { Db } from "../db/client.ts";

const CONNECTIONS = ["never_connected", "connected", "disconnected"] as const;
const DEPLOYMENT_STATUSES = ["pending", "running", "succeeded", "failed", "halted", "rolled_back"] as const;
const TARGET_STATUSES = ["pending", "applying", "applied", "failed", "rolled_back"] as const;
/** BullMQ's per-state keys (lists or sorted sets) under `<prefix>:<queue>:`. */
const QUEUE_STATES = {
  wait: "list",
  paused: "list",
  active: "list",
  prioritized: "zset",
  delayed: "zset",
  failed: "zset",
} as const;
/** Upper bounds (seconds) of the rollout duration histogram: from one host to a slow fleet-wide rollout. */
export const ROLLOUT_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];

export interface QueueRef {
  /** The name the metric's `queue` label shows. */
  label: string;
  prefix: string;
  name: string;
}

/** The agents' spool backlog as last reported (hosts whose agent never reported it are left out). */
interface Backlog {
  batches: Map<string, number>;
  bytes: Map<string, number>;
  maxBatches: number;
}

interface Snapshot {
  hosts: Map<string, number>;
  spool: Backlog;
  drift: Map<string, number>;
  deployments: Map<string, number>;
  targets: Map<string, number>;
  rollout: { buckets: number[]; count: number; sum: number };
  ingestLagSeconds: number;
  rollupLagSeconds: number;
  queues: { queue: string; state: string; jobs: number }[];
}

async function snapshot(db: Db, redis: Redis, queues: QueueRef[]): Promise<Snapshot> {
  const [hosts, deployments, targets, durations, lag, dirty] = await Promise.all([
    db.$queryRaw<
      {
        connection: string;
        drift: boolean;
        n: bigint;
        batches: bigint | null;
        bytes: bigint | null;
        max: bigint | null;
      }[]
    >`
      SELECT connection::text, drift, count(*) AS n, sum(spool_batches)::bigint AS batches, sum(spool_bytes)::bigint AS bytes,
             max(spool_batches) AS max
        FROM hosts GROUP BY 1, 2`,
    db.$queryRaw<{ status: string; n: bigint }[]>`SELECT status::text, count(*) AS n FROM deployments GROUP BY 1`,
    db.$queryRaw<
      { status: string; n: bigint }[]
    >`SELECT status::text, count(*) AS n FROM deployment_targets GROUP BY 1`,
    db.$queryRawUnsafe<{ le: number[]; count: bigint; sum: number | null }[]>(
      `WITH x AS (SELECT extract(epoch FROM finished_at - created_at)::float8 AS d FROM deployments
                   WHERE finished_at IS NOT NULL AND status IN ('succeeded', 'failed', 'halted'))
       SELECT array(SELECT (SELECT count(*) FROM x WHERE x.d <= b) FROM unnest($1::float8[]) WITH ORDINALITY AS u(b, i) ORDER BY i) AS le,
              (SELECT count(*) FROM x) AS count, (SELECT sum(d) FROM x) AS sum`,
      ROLLOUT_BUCKETS,
    ),
    // Batches received in the last 5 minutes: how long after being taken they arrived.
    db.$queryRaw<
      { lag: number | null }[]
    >`SELECT max(extract(epoch FROM received_at - taken_at))::float8 AS lag FROM telemetry_batches WHERE received_at > now() - interval '5 minutes'`,
    db.$queryRaw<
      { lag: number | null }[]
    >`SELECT extract(epoch FROM now() - min(bucket) - interval '1 minute')::float8 AS lag FROM telemetry_dirty`,
  ]);
  const count = <T extends { n: bigint }>(rows: T[], key: (r: T) => string) => {
    const m = new Map<string, number>();
    for (const r of rows) m.set(key(r), (m.get(key(r)) ?? 0) + Number(r.n));
    return m;
  };
  const d = durations[0];
  return {
    hosts: count(hosts, (r) => r.connection),
    spool: {
      batches: count(
        hosts.map((r) => ({ ...r, n: r.batches ?? 0n })),
        (r) => r.connection,
      ),
      bytes: count(
        hosts.map((r) => ({ ...r, n: r.bytes ?? 0n })),
        (r) => r.connection,
      ),
      maxBatches: Math.max(0, ...hosts.map((r) => Number(r.max ?? 0))),
    },
    drift: count(hosts, (r) => (r.drift ? "drifted" : "in_sync")),
    deployments: count(deployments, (r) => r.status),
    targets: count(targets, (r) => r.status),
    rollout: { buckets: (d?.le ?? []).map(Number), count: Number(d?.count ?? 0), sum: d?.sum ?? 0 },
    ingestLagSeconds: Math.max(0, lag[0]?.lag ?? 0),
    rollupLagSeconds: Math.max(0, dirty[0]?.lag ?? 0),
    queues: await queueDepths(redis, queues),
  };
}

async function queueDepths(redis: Redis, queues: QueueRef[]): Promise<Snapshot["queues"]> {
  if (queues.length === 0) return [];
  const pipe = redis.pipeline();
  const keys: { queue: string; state: string }[] = [];
  for (const q of queues) {
    for (const [state, kind] of Object.entries(QUEUE_STATES)) {
      const key = `${q.prefix}:${q.name}:${state}`;
      if (kind === "list") pipe.llen(key);
      else pipe.zcard(key);
      keys.push({ queue: q.label, state });
    }
  }
  // Redis down: no queue gauges this scrape rather than a failed scrape (/readyz reports Redis).
  const results = await pipe.exec().catch(() => null);
  if (!results) return [];
  return keys.map((k, i) => ({ ...k, jobs: Number(results[i]?.[1] ?? 0) }));
}

/** Registers the fleet gauges and the rollout histogram on `registry`. */
export function registerFleetMetrics(
  registry: Registry,
  deps: { db: Db; redis: Redis; queues: QueueRef[]; cacheMs: number },
): void {
  // Concurrent collect() calls of one scrape always share a snapshot; with cacheMs > 0 the
  // scrapes of the next cacheMs do too. A failed snapshot is not kept.
  let current: Promise<Snapshot> | undefined;
  const load = () => {
    if (current) return current;
    const p = snapshot(deps.db, deps.redis, deps.queues);
    const forget = () => {
      if (current === p) current = undefined;
    };
    p.then(
      () => (deps.cacheMs > 0 ? setTimeout(forget, deps.cacheMs).unref() : setImmediate(forget)),
      () => setImmediate(forget),
    );
    current = p;
    return p;
  };
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge<string>, s: Snapshot) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const s = await load();
        this.reset();
        fill(this, s);
      },
    });
  gauge("palisade_hosts", "Hosts by connection state of their agent", ["connection"], (g, s) => {
    for (const c of CONNECTIONS) g.set({ connection: c }, s.hosts.get(c) ?? 0);
  });
  // Last reported by each host's agent in a heartbeat; a disconnected host's is its last report.
  gauge(
    "palisade_agent_spool_batches",
    "Telemetry batches waiting in the agents' spools (sent, not yet acknowledged), as last reported, summed by the host's connection state",
    ["connection"],
    (g, s) => {
      for (const c of ["connected", "disconnected"]) g.set({ connection: c }, s.spool.batches.get(c) ?? 0);
    },
  );
  gauge(
    "palisade_agent_spool_bytes",
    "Size on disk of the telemetry batches waiting in the agents' spools, as last reported, summed by the host's connection state",
    ["connection"],
    (g, s) => {
      for (const c of ["connected", "disconnected"]) g.set({ connection: c }, s.spool.bytes.get(c) ?? 0);
    },
  );
  gauge(
    "palisade_agent_spool_max_batches",
    "The largest telemetry spool backlog (batches) any one host's agent last reported",
    [],
    (g, s) => g.set(s.spool.maxBatches),
  );
  gauge(
    "palisade_hosts_drift",
    "Hosts by drift: drifted = the kernel's ruleset differs from the applied version",
    ["state"],
    (g, s) => {
      for (const st of ["in_sync", "drifted"]) g.set({ state: st }, s.drift.get(st) ?? 0);
    },
  );
  gauge("palisade_deployments", "Deployments by status", ["status"], (g, s) => {
    for (const st of DEPLOYMENT_STATUSES) g.set({ status: st }, s.deployments.get(st) ?? 0);
  });
  gauge("palisade_deployment_targets", "Hosts of all deployments by their target status", ["status"], (g, s) => {
    for (const st of TARGET_STATUSES) g.set({ status: st }, s.targets.get(st) ?? 0);
  });
  gauge(
    "palisade_telemetry_ingest_lag_seconds",
    "Longest delay between an agent taking a telemetry batch and the API storing it, over batches received in the last 5 minutes",
    [],
    (g, s) => g.set(s.ingestLagSeconds),
  );
  gauge(
    "palisade_telemetry_rollup_lag_seconds",
    "Age of the oldest accounting minute still waiting for the rollup (0 when none)",
    [],
    (g, s) => g.set(s.rollupLagSeconds),
  );
  gauge("palisade_queue_jobs", "Jobs in the BullMQ queues, by queue and state", ["queue", "state"], (g, s) => {
    for (const q of s.queues) g.set({ queue: q.queue, state: q.state }, q.jobs);
  });
  // A histogram computed from the deployments table: cumulative over all finished
  // rollouts, so it only grows, like one a process would keep (and survives restarts).
  registry.registerMetric({
    name: "palisade_rollout_duration_seconds",
    async get() {
      const s = await load();
      const values = ROLLOUT_BUCKETS.map((le, i) => ({
        metricName: "palisade_rollout_duration_seconds_bucket",
        labels: { le },
        value: s.rollout.buckets[i] ?? 0,
      }));
      values.push({
        metricName: "palisade_rollout_duration_seconds_bucket",
        labels: { le: "+Inf" as unknown as number },
        value: s.rollout.count,
      });
      return {
        name: "palisade_rollout_duration_seconds",
        help: "Time from creating a deployment to its end (succeeded, failed or halted)",
        type: "histogram",
        values: [
          ...values,
          { metricName: "palisade_rollout_duration_seconds_sum", labels: {}, value: s.rollout.sum },
          { metricName: "palisade_rollout_duration_seconds_count", labels: {}, value: s.rollout.count },
        ],
        aggregator: "max",
      };
    },
  } as unknown as Parameters<Registry["registerMetric"]>[0]);
}
