// Counters of things that happen in this process (apply results, telemetry batches, SSE
// clients). One registry for the whole process, not per app: the gRPC sessions and the
// routes that count these events are not tied to one Fastify instance. Every replica
// reports its own events; dashboards sum them across replicas.
import { Counter, Gauge, Registry } from "prom-client";

export const eventRegistry = new Registry();

export const applyResults = new Counter({
  name: "palisade_apply_results_total",
  help: "Apply results reported by agents and recorded, by outcome (applying, applied, failed, rolled_back)",
  labelNames: ["outcome"],
  registers: [eventRegistry],
});

export const telemetryBatches = new Counter({
  name: "palisade_telemetry_batches_total",
  help: "Telemetry batches received from agents, by result (ingested, duplicate, refused)",
  labelNames: ["result"],
  registers: [eventRegistry],
});

export const telemetryRows = new Counter({
  name: "palisade_telemetry_rows_total",
  help: "Rows stored from ingested telemetry batches, by kind (accounting, log)",
  labelNames: ["kind"],
  registers: [eventRegistry],
});

export const sseClients = new Gauge({
  name: "palisade_sse_clients",
  help: "Open Server-Sent Events streams (GET /v1/logs/stream)",
  registers: [eventRegistry],
});

for (const outcome of ["applying", "applied", "failed", "rolled_back"]) applyResults.inc({ outcome }, 0);
for (const result of ["ingested", "duplicate", "refused"]) telemetryBatches.inc({ result }, 0);
for (const kind of ["accounting", "log"]) telemetryRows.inc({ kind }, 0);

export function countIngested(r: { duplicate: boolean; accountingRows: number; logEvents: number }): void {
  telemetryBatches.inc({ result: r.duplicate ? "duplicate" : "ingested" });
  telemetryRows.inc({ kind: "accounting" }, r.accountingRows);
  telemetryRows.inc({ kind: "log" }, r.logEvents);
}
