-- accounting_samples: primary key (host_id, at, id) instead of (id, at).
-- Distributing the accounting tables by host_id (Citus, docs/scaling.md) needs every
-- unique key to include host_id; the key still includes the partition key `at`, as
-- Postgres requires. It also serves the per-host time range lookups, so the separate
-- (host_id, at) index is dropped: one index per row fewer to write and store.
ALTER TABLE "accounting_samples" DROP CONSTRAINT "accounting_samples_pkey";
ALTER TABLE "accounting_samples" ADD CONSTRAINT "accounting_samples_pkey" PRIMARY KEY ("host_id", "at", "id");
DROP INDEX IF EXISTS "accounting_samples_host_id_at_idx";
