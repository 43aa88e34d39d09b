-- Calendar-month rollup of accounting_day (UTC months), and per-address indexes on the
-- rollup tables. See docs/telemetry.md and src/api/telemetry/rollups.ts.

-- accounting_month: key (host, table, address, month start in UTC); recomputed whole from
-- accounting_day on the same dirty marks as the finer levels, so rerunning changes nothing.
-- A year of a /16 is ~12 rows per address instead of ~365.
CREATE TABLE "accounting_month" (
    "host_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "address" INET NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "src_bytes" BIGINT NOT NULL DEFAULT 0,
    "src_packets" BIGINT NOT NULL DEFAULT 0,
    "dst_bytes" BIGINT NOT NULL DEFAULT 0,
    "dst_packets" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "accounting_month_pkey" PRIMARY KEY ("host_id", "table_name", "address", "bucket")
);
CREATE INDEX "accounting_month_table_name_bucket_idx" ON "accounting_month"("table_name", "bucket");

-- Existing day rows fold into their months now; later changes arrive through the rollup.
INSERT INTO "accounting_month" ("host_id", "table_name", "address", "bucket", "src_bytes", "src_packets", "dst_bytes", "dst_packets")
SELECT "host_id", "table_name", "address", date_trunc('month', "bucket" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       sum("src_bytes"), sum("src_packets"), sum("dst_bytes"), sum("dst_packets")
FROM "accounting_day"
GROUP BY 1, 2, 3, 4;

-- A per-address series (table, one address, a time range) is an index range scan instead
-- of a scan of every row of the range (the primary keys lead with host_id). On the
-- partitioned accounting_minute this creates the index on every partition.
CREATE INDEX "accounting_minute_table_name_address_bucket_idx" ON "accounting_minute"("table_name", "address", "bucket");
CREATE INDEX "accounting_hour_table_name_address_bucket_idx" ON "accounting_hour"("table_name", "address", "bucket");
CREATE INDEX "accounting_day_table_name_address_bucket_idx" ON "accounting_day"("table_name", "address", "bucket");
CREATE INDEX "accounting_month_table_name_address_bucket_idx" ON "accounting_month"("table_name", "address", "bucket");
