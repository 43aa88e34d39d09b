// Prometheus metrics. One registry per app instance (tests build many apps in one
// process; the prom-client global registry would refuse duplicate names).
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<"method" | "route" | "status">;
  httpDuration: Histogram<"method" | "route">;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "palisade_" });
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
  };
}

declare module "fastify" {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

export const metricsPlugin = fp(async (app: FastifyInstance) => {
  app.decorate("metrics", createMetrics());
  app.addHook("onResponse", async (req, reply) => {
    // The route template, not the URL: label cardinality must stay bounded.
    const route = req.routeOptions.url ?? "unmatched";
    app.metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    app.metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });
});
