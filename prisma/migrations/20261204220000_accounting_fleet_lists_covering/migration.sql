-- The fleet top-N's sorted lists (src/api/telemetry/top.ts) read a bucket's first K
-- addresses in descending order of one counter. With the address in the index itself
-- those reads are index-only scans: no heap page per entry, which was ~90 % of the
-- buffers a round touched (bench/query.ts EXPLAIN, 13.4M rows: 5,600 of 6,500 for the
-- 365-day top-10). Same names and keys as before (Prisma's schema cannot say INCLUDE).
DROP INDEX "accounting_fleet_hour_table_name_bucket_src_bytes_idx";
CREATE INDEX "accounting_fleet_hour_table_name_bucket_src_bytes_idx" ON "accounting_fleet_hour"("table_name", "bucket", "src_bytes") INCLUDE ("address");
DROP INDEX "accounting_fleet_hour_table_name_bucket_dst_bytes_idx";
CREATE INDEX "accounting_fleet_hour_table_name_bucket_dst_bytes_idx" ON "accounting_fleet_hour"("table_name", "bucket", "dst_bytes") INCLUDE ("address");
DROP INDEX "accounting_fleet_hour_table_name_bucket_src_packets_idx";
CREATE INDEX "accounting_fleet_hour_table_name_bucket_src_packets_idx" ON "accounting_fleet_hour"("table_name", "bucket", "src_packets") INCLUDE ("address");
DROP INDEX "accounting_fleet_hour_table_name_bucket_dst_packets_idx";
CREATE INDEX "accounting_fleet_hour_table_name_bucket_dst_packets_idx" ON "accounting_fleet_hour"("table_name", "bucket", "dst_packets") INCLUDE ("address");
DROP INDEX "accounting_fleet_day_table_name_bucket_src_bytes_idx";
CREATE INDEX "accounting_fleet_day_table_name_bucket_src_bytes_idx" ON "accounting_fleet_day"("table_name", "bucket", "src_bytes") INCLUDE ("address");
DROP INDEX "accounting_fleet_day_table_name_bucket_dst_bytes_idx";
CREATE INDEX "accounting_fleet_day_table_name_bucket_dst_bytes_idx" ON "accounting_fleet_day"("table_name", "bucket", "dst_bytes") INCLUDE ("address");
DROP INDEX "accounting_fleet_day_table_name_bucket_src_packets_idx";
CREATE INDEX "accounting_fleet_day_table_name_bucket_src_packets_idx" ON "accounting_fleet_day"("table_name", "bucket", "src_packets") INCLUDE ("address");
DROP INDEX "accounting_fleet_day_table_name_bucket_dst_packets_idx";
CREATE INDEX "accounting_fleet_day_table_name_bucket_dst_packets_idx" ON "accounting_fleet_day"("table_name", "bucket", "dst_packets") INCLUDE ("address");
DROP INDEX "accounting_fleet_month_table_name_bucket_src_bytes_idx";
CREATE INDEX "accounting_fleet_month_table_name_bucket_src_bytes_idx" ON "accounting_fleet_month"("table_name", "bucket", "src_bytes") INCLUDE ("address");
DROP INDEX "accounting_fleet_month_table_name_bucket_dst_bytes_idx";
CREATE INDEX "accounting_fleet_month_table_name_bucket_dst_bytes_idx" ON "accounting_fleet_month"("table_name", "bucket", "dst_bytes") INCLUDE ("address");
DROP INDEX "accounting_fleet_month_table_name_bucket_src_packets_idx";
CREATE INDEX "accounting_fleet_month_table_name_bucket_src_packets_idx" ON "accounting_fleet_month"("table_name", "bucket", "src_packets") INCLUDE ("address");
DROP INDEX "accounting_fleet_month_table_name_bucket_dst_packets_idx";
CREATE INDEX "accounting_fleet_month_table_name_bucket_dst_packets_idx" ON "accounting_fleet_month"("table_name", "bucket", "dst_packets") INCLUDE ("address");
