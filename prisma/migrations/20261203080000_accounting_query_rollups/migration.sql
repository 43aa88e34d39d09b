-- Rollups for the fleet's top-N and whole-table series (docs/telemetry.md "Fast reads",
-- src/api/telemetry/top.ts, src/api/telemetry/rollups.ts).
--
-- accounting_fleet_hour/_day/_month: per (table, address, bucket), summed over every host.
-- The rollup keeps them equal to the sum of the per-host rows by adding, in the same
-- transaction as each per-host upsert, the difference between the recomputed and the
-- stored per-host row (exactly-once: recomputing the same bucket twice adds zero).
-- One index per counter column after (table, bucket) gives a bucket's addresses in
-- descending order of that counter: the sorted lists the exact top-N reads from.
-- accounting_table_minute/_hour/_day: per (host, table, bucket), summed over every
-- address (unattributed remainder included): a table's series reads one row per host
-- and bucket instead of one per address.
CREATE TABLE "accounting_fleet_hour" (
    "table_name" TEXT NOT NULL,
    "address" INET NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "src_bytes" BIGINT NOT NULL DEFAULT 0,
    "src_packets" BIGINT NOT NULL DEFAULT 0,
    "dst_bytes" BIGINT NOT NULL DEFAULT 0,
    "dst_packets" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "accounting_fleet_hour_pkey" PRIMARY KEY ("table_name", "address", "bucket")
);
CREATE TABLE "accounting_fleet_day" (LIKE "accounting_fleet_hour" INCLUDING DEFAULTS);
ALTER TABLE "accounting_fleet_day" ADD CONSTRAINT "accounting_fleet_day_pkey" PRIMARY KEY ("table_name", "address", "bucket");
CREATE TABLE "accounting_fleet_month" (LIKE "accounting_fleet_hour" INCLUDING DEFAULTS);
ALTER TABLE "accounting_fleet_month" ADD CONSTRAINT "accounting_fleet_month_pkey" PRIMARY KEY ("table_name", "address", "bucket");

CREATE TABLE "accounting_table_minute" (
    "host_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "src_bytes" BIGINT NOT NULL DEFAULT 0,
    "src_packets" BIGINT NOT NULL DEFAULT 0,
    "dst_bytes" BIGINT NOT NULL DEFAULT 0,
    "dst_packets" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "accounting_table_minute_pkey" PRIMARY KEY ("host_id", "table_name", "bucket")
);
CREATE TABLE "accounting_table_hour" (LIKE "accounting_table_minute" INCLUDING DEFAULTS);
ALTER TABLE "accounting_table_hour" ADD CONSTRAINT "accounting_table_hour_pkey" PRIMARY KEY ("host_id", "table_name", "bucket");
CREATE TABLE "accounting_table_day" (LIKE "accounting_table_minute" INCLUDING DEFAULTS);
ALTER TABLE "accounting_table_day" ADD CONSTRAINT "accounting_table_day_pkey" PRIMARY KEY ("host_id", "table_name", "bucket");


-- Existing rollups are folded in now; later changes arrive through the rollup.
INSERT INTO "accounting_fleet_hour" SELECT "table_name", "address", "bucket", sum("src_bytes"), sum("src_packets"), sum("dst_bytes"), sum("dst_packets") FROM "accounting_hour" GROUP BY 1, 2, 3;
INSERT INTO "accounting_fleet_day" SELECT "table_name", "address", "bucket", sum("src_bytes"), sum("src_packets"), sum("dst_bytes"), sum("dst_packets") FROM "accounting_day" GROUP BY 1, 2, 3;
INSERT INTO "accounting_fleet_month" SELECT "table_name", "address", "bucket", sum("src_bytes"), sum("src_packets"), sum("dst_bytes"), sum("dst_packets") FROM "accounting_month" GROUP BY 1, 2, 3;
INSERT INTO "accounting_table_minute" SELECT "host_id", "table_name", "bucket", sum("src_bytes"), sum("src_packets"), sum("dst_bytes"), sum("dst_packets") FROM "accounting_minute" GROUP BY 1, 2, 3;
INSERT INTO "accounting_table_hour" SELECT "host_id", "table_name", "bucket", sum("src_bytes"), sum("src_packets"), sum("dst_bytes"), sum("dst_packets") FROM "accounting_hour" GROUP BY 1, 2, 3;
INSERT INTO "accounting_table_day" SELECT "host_id", "table_name", "bucket", sum("src_bytes"), sum("src_packets"), sum("dst_bytes"), sum("dst_packets") FROM "accounting_day" GROUP BY 1, 2, 3;

-- Indexes after the backfill (one sort each instead of row-by-row inserts).
CREATE INDEX "accounting_fleet_hour_table_name_bucket_src_bytes_idx" ON "accounting_fleet_hour"("table_name", "bucket", "src_bytes");
CREATE INDEX "accounting_fleet_hour_table_name_bucket_dst_bytes_idx" ON "accounting_fleet_hour"("table_name", "bucket", "dst_bytes");
CREATE INDEX "accounting_fleet_hour_table_name_bucket_src_packets_idx" ON "accounting_fleet_hour"("table_name", "bucket", "src_packets");
CREATE INDEX "accounting_fleet_hour_table_name_bucket_dst_packets_idx" ON "accounting_fleet_hour"("table_name", "bucket", "dst_packets");
CREATE INDEX "accounting_fleet_day_table_name_bucket_src_bytes_idx" ON "accounting_fleet_day"("table_name", "bucket", "src_bytes");
CREATE INDEX "accounting_fleet_day_table_name_bucket_dst_bytes_idx" ON "accounting_fleet_day"("table_name", "bucket", "dst_bytes");
CREATE INDEX "accounting_fleet_day_table_name_bucket_src_packets_idx" ON "accounting_fleet_day"("table_name", "bucket", "src_packets");
CREATE INDEX "accounting_fleet_day_table_name_bucket_dst_packets_idx" ON "accounting_fleet_day"("table_name", "bucket", "dst_packets");
CREATE INDEX "accounting_fleet_month_table_name_bucket_src_bytes_idx" ON "accounting_fleet_month"("table_name", "bucket", "src_bytes");
CREATE INDEX "accounting_fleet_month_table_name_bucket_dst_bytes_idx" ON "accounting_fleet_month"("table_name", "bucket", "dst_bytes");
CREATE INDEX "accounting_fleet_month_table_name_bucket_src_packets_idx" ON "accounting_fleet_month"("table_name", "bucket", "src_packets");
CREATE INDEX "accounting_fleet_month_table_name_bucket_dst_packets_idx" ON "accounting_fleet_month"("table_name", "bucket", "dst_packets");
CREATE INDEX "accounting_table_minute_table_name_bucket_idx" ON "accounting_table_minute"("table_name", "bucket");
CREATE INDEX "accounting_table_hour_table_name_bucket_idx" ON "accounting_table_hour"("table_name", "bucket");
CREATE INDEX "accounting_table_day_table_name_bucket_idx" ON "accounting_table_day"("table_name", "bucket");
