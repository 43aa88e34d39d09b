// Prometheus metrics. One registry per app instance (tests build many apps in one
// process; one registry would refuse duplicate names), merged at scrape time with the
// process-wide event counters (events.ts). prom-client's default metrics keep their
// standard names (process_*, nodejs_*), so stock Node.js dashboards work unchanged.
// Three of them are gauges named like counters, which `promtool check metrics` remarks on;
// they keep their names too, and their HELP text says why (an operator reading the scrape
// or promtool's output finds the answer next to the name; docs/api.md lists them).
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";
import { QUEUE_NAME as DEPLOY_QUEUE } from "../deploy/queue.ts";
import { TELEMETRY_QUEUE } from "../telemetry/service.ts";
import { eventRegistry } from "./events.ts";
import { registerFleetMetrics } from "./fleet.ts";

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<"method" | "route" | "status">;
  httpDuration: Histogram<"method" | "route">;
  /** The exposition text of everything: this app's, the process's events and the fleet's. */
  scrape(): Promise<string>;
}

/** prom-client's default gauges whose names end in _total (promtool: "non-counter metrics should not have "_total" suffix"). */
export const STANDARD_TOTAL_GAUGES = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
] as const;
const STANDARD_NAME_NOTE =
  " A gauge: the _total suffix is prom-client's standard name, kept so stock Node.js dashboards work (promtool's remark on it is expected).";

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of STANDARD_TOTAL_GAUGES) {
    const m = registry.getSingleMetric(name) as { help: string } | undefined;
    if (m) m.help += STANDARD_NAME_NOTE;
  }
  return {
    registry,
    httpRequests: new Counter({
      name: "palisade_http_requests_total",
      help: "HTTP requests answered, by route template and status code",
      labelNames: ["method", "route", "status"],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: "palisade_http_request_duration_seconds",
      help: "HTTP request latency, by route template",
      labelNames: ["method", "route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    scrape: () => Registry.merge([registry, eventRegistry]).metrics(),
  };
}

declare module "fastify" {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

export const metricsPlugin = fp(async (app: FastifyInstance) => {
  const metrics = createMetrics();
  registerFleetMetrics(metrics.registry, {
    db: app.db,
    redis: app.redis,
    cacheMs: app.config.metrics.cacheMs,
    queues: [
      { label: "deploy", prefix: app.config.queue.prefix, name: DEPLOY_QUEUE },
      { label: "telemetry", prefix: app.config.queue.prefix, name: TELEMETRY_QUEUE },
    ],
  });
  app.decorate("metrics", metrics);
  app.addHook("onResponse", async (req, reply) => {
    // The route template, not the URL: label cardinality must stay bounded.
    const route = req.routeOptions.url ?? "unmatched";
    app.metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    app.metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });
});
