-- Telemetry storage (issue 5): the exactly-once ledger, rollups minute -> hour -> day,
-- a catalog of accounting tables, named counter totals, quota reset requests.
-- Conventions of the init migration: no foreign keys from telemetry facts to hosts
-- (cheap to write, cheap to drop); partitioned tables have a DEFAULT partition so no
-- insert ever fails while src/api/telemetry/partitions.ts creates the real ones ahead.

-- One row per ingested TelemetryBatch, written in the same transaction as its data:
-- the primary key makes a resent batch (lost ack, reconnect, two connections) a no-op.
CREATE TABLE "telemetry_batches" (
    "host_id" UUID NOT NULL,
    "epoch" TEXT NOT NULL,
    "seq" BIGINT NOT NULL,
    "taken_at" TIMESTAMPTZ(3) NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "accounting_rows" INTEGER NOT NULL DEFAULT 0,
    "log_events" INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT "telemetry_batches_pkey" PRIMARY KEY ("host_id", "epoch", "seq")
);
CREATE INDEX "telemetry_batches_received_at_idx" ON "telemetry_batches"("received_at");

-- Minute buckets (per host) whose raw samples changed since the rollup last ran. The
-- ingest upserts (DO UPDATE, which row-locks) so a rollup that deletes the mark waits
-- for an in-flight ingest of the same bucket instead of missing it.
CREATE TABLE "telemetry_dirty" (
    "host_id" UUID NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "hits" INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT "telemetry_dirty_pkey" PRIMARY KEY ("host_id", "bucket")
);
CREATE INDEX "telemetry_dirty_bucket_idx" ON "telemetry_dirty"("bucket");

-- Rollups of accounting_samples. Key (host, table, address, bucket); a bucket is always
-- recomputed whole from the finer level, so rerunning a rollup changes nothing.
-- The unattributed remainder of a table is stored with address 0.0.0.0/0 (a network,
-- never a host address), like the raw samples.
CREATE TABLE "accounting_minute" (
    "host_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "address" INET NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "src_bytes" BIGINT NOT NULL DEFAULT 0,
    "src_packets" BIGINT NOT NULL DEFAULT 0,
    "dst_bytes" BIGINT NOT NULL DEFAULT 0,
    "dst_packets" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "accounting_minute_pkey" PRIMARY KEY ("host_id", "table_name", "address", "bucket")
) PARTITION BY RANGE ("bucket");
CREATE TABLE "accounting_minute_default" PARTITION OF "accounting_minute" DEFAULT;
CREATE INDEX "accounting_minute_table_name_bucket_idx" ON "accounting_minute"("table_name", "bucket");

CREATE TABLE "accounting_hour" (
    "host_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "address" INET NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "src_bytes" BIGINT NOT NULL DEFAULT 0,
    "src_packets" BIGINT NOT NULL DEFAULT 0,
    "dst_bytes" BIGINT NOT NULL DEFAULT 0,
    "dst_packets" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "accounting_hour_pkey" PRIMARY KEY ("host_id", "table_name", "address", "bucket")
);
CREATE INDEX "accounting_hour_table_name_bucket_idx" ON "accounting_hour"("table_name", "bucket");

CREATE TABLE "accounting_day" (
    "host_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "address" INET NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "src_bytes" BIGINT NOT NULL DEFAULT 0,
    "src_packets" BIGINT NOT NULL DEFAULT 0,
    "dst_bytes" BIGINT NOT NULL DEFAULT 0,
    "dst_packets" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "accounting_day_pkey" PRIMARY KEY ("host_id", "table_name", "address", "bucket")
);
CREATE INDEX "accounting_day_table_name_bucket_idx" ON "accounting_day"("table_name", "bucket");

-- Which accounting tables each host has reported, and when (GET /v1/accounting/tables
-- without scanning samples).
CREATE TABLE "accounting_tables" (
    "host_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "first_at" TIMESTAMPTZ(3) NOT NULL,
    "last_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "accounting_tables_pkey" PRIMARY KEY ("host_id", "table_name")
);
CREATE INDEX "accounting_tables_table_name_idx" ON "accounting_tables"("table_name");

-- Running totals of named counters (sums of the shipped deltas) per host.
CREATE TABLE "counter_totals" (
    "host_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL DEFAULT 0,
    "packets" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "counter_totals_pkey" PRIMARY KEY ("host_id", "name")
);

-- An operator's request to reset a quota on a host, and what the agent answered.
CREATE TABLE "quota_reset_requests" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "host_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "error" TEXT,
    "requested_by" TEXT NOT NULL,
    "requested_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    CONSTRAINT "quota_reset_requests_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "quota_reset_requests_status_check" CHECK ("status" IN ('pending', 'done', 'failed'))
);
CREATE INDEX "quota_reset_requests_host_id_status_idx" ON "quota_reset_requests"("host_id", "status");

-- Time of the sample a quota row holds: an older batch arriving late (spooled) must not
-- overwrite a newer value.
ALTER TABLE "quota_states" ADD COLUMN "sampled_at" TIMESTAMPTZ(3);
