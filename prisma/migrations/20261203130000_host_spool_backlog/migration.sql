-- The telemetry spool backlog each agent reports in its heartbeats (batches not yet
-- acknowledged and their size on disk), written at most every few seconds per host. NULL
-- until the host's agent first reports it (agents that predate the heartbeat fields).
-- /metrics sums these over the fleet, so every replica exports the same values.
ALTER TABLE "hosts" ADD COLUMN "spool_batches" BIGINT;
ALTER TABLE "hosts" ADD COLUMN "spool_bytes" BIGINT;
ALTER TABLE "hosts" ADD COLUMN "spool_reported_at" TIMESTAMPTZ(3);
