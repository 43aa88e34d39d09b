-- Palisade initial schema. Applied by `palisade migrate` (or `prisma migrate deploy`).
-- Must agree with prisma/schema.prisma (checked by test/integration/schema-agreement.test.ts).

CREATE TYPE "token_role" AS ENUM ('admin', 'operator', 'viewer');
CREATE TYPE "host_connection" AS ENUM ('never_connected', 'connected', 'disconnected');
CREATE TYPE "deployment_status" AS ENUM ('pending', 'running', 'succeeded', 'failed', 'halted', 'rolled_back');
CREATE TYPE "target_status" AS ENUM ('pending', 'applying', 'applied', 'failed', 'rolled_back');
CREATE TYPE "quota_mode" AS ENUM ('bytes', 'packets');

CREATE TABLE "rulesets" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "latest_version" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "rulesets_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "rulesets_name_key" ON "rulesets"("name");

CREATE TABLE "ruleset_versions" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "ruleset_id" UUID NOT NULL,
    "number" INTEGER NOT NULL,
    "document" JSONB NOT NULL,
    "checksum" TEXT NOT NULL,
    "author" TEXT NOT NULL,
    "message" TEXT NOT NULL DEFAULT '',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ruleset_versions_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "ruleset_versions_number_positive" CHECK ("number" > 0)
);
CREATE UNIQUE INDEX "ruleset_versions_ruleset_id_number_key" ON "ruleset_versions"("ruleset_id", "number");
ALTER TABLE "ruleset_versions" ADD CONSTRAINT "ruleset_versions_ruleset_id_fkey"
    FOREIGN KEY ("ruleset_id") REFERENCES "rulesets"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- A version never changes once written: refuse UPDATE and DELETE at the database,
-- so no code path (or hand-written SQL) can rewrite history.
CREATE FUNCTION "palisade_refuse_version_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Default SQLSTATE P0001 (raise_exception): clients show the message as is.
    RAISE EXCEPTION 'ruleset versions are immutable (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER "ruleset_versions_immutable"
    BEFORE UPDATE OR DELETE ON "ruleset_versions"
    FOR EACH ROW EXECUTE FUNCTION "palisade_refuse_version_change"();

CREATE TABLE "hosts" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "capabilities" JSONB NOT NULL DEFAULT '{}',
    "connection" "host_connection" NOT NULL DEFAULT 'never_connected',
    "last_seen_at" TIMESTAMPTZ(3),
    "credential_hash" TEXT,
    "desired_version_id" UUID,
    "applied_version_id" UUID,
    "drift" BOOLEAN NOT NULL DEFAULT false,
    "drift_details" JSONB,
    "drift_checked_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "hosts_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "hosts_name_key" ON "hosts"("name");
CREATE UNIQUE INDEX "hosts_credential_hash_key" ON "hosts"("credential_hash");
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_desired_version_id_fkey"
    FOREIGN KEY ("desired_version_id") REFERENCES "ruleset_versions"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "hosts" ADD CONSTRAINT "hosts_applied_version_id_fkey"
    FOREIGN KEY ("applied_version_id") REFERENCES "ruleset_versions"("id") ON DELETE SET NULL ON UPDATE CASCADE;

CREATE TABLE "enrollment_tokens" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "token_hash" TEXT NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "created_by" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "used_at" TIMESTAMPTZ(3),
    "host_id" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "enrollment_tokens_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "enrollment_tokens_token_hash_key" ON "enrollment_tokens"("token_hash");
CREATE UNIQUE INDEX "enrollment_tokens_host_id_key" ON "enrollment_tokens"("host_id");
ALTER TABLE "enrollment_tokens" ADD CONSTRAINT "enrollment_tokens_host_id_fkey"
    FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE SET NULL ON UPDATE CASCADE;

CREATE TABLE "deployments" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "version_id" UUID NOT NULL,
    "selector" JSONB NOT NULL,
    "strategy" JSONB NOT NULL DEFAULT '{}',
    "status" "deployment_status" NOT NULL DEFAULT 'pending',
    "created_by" TEXT NOT NULL,
    "rollback_of_id" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    CONSTRAINT "deployments_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "deployments_created_at_idx" ON "deployments"("created_at");
ALTER TABLE "deployments" ADD CONSTRAINT "deployments_version_id_fkey"
    FOREIGN KEY ("version_id") REFERENCES "ruleset_versions"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "deployments" ADD CONSTRAINT "deployments_rollback_of_id_fkey"
    FOREIGN KEY ("rollback_of_id") REFERENCES "deployments"("id") ON DELETE SET NULL ON UPDATE CASCADE;

CREATE TABLE "deployment_targets" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "deployment_id" UUID NOT NULL,
    "host_id" UUID NOT NULL,
    "batch" INTEGER NOT NULL DEFAULT 0,
    "status" "target_status" NOT NULL DEFAULT 'pending',
    "error" TEXT,
    "previous_version_id" UUID,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "deployment_targets_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "deployment_targets_deployment_id_host_id_key" ON "deployment_targets"("deployment_id", "host_id");
CREATE INDEX "deployment_targets_host_id_idx" ON "deployment_targets"("host_id");
ALTER TABLE "deployment_targets" ADD CONSTRAINT "deployment_targets_deployment_id_fkey"
    FOREIGN KEY ("deployment_id") REFERENCES "deployments"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "deployment_targets" ADD CONSTRAINT "deployment_targets_host_id_fkey"
    FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Telemetry tables are range-partitioned by time so old data is dropped by detaching a
-- partition, not by DELETE. The DEFAULT partition catches rows until the telemetry
-- code creates per-period partitions (palisade_ensure_partition below).
-- No foreign key to hosts: partitioned fact tables stay cheap to write and to drop.
CREATE TABLE "accounting_samples" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "host_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "address" INET NOT NULL,
    "src_bytes" BIGINT NOT NULL DEFAULT 0,
    "src_packets" BIGINT NOT NULL DEFAULT 0,
    "dst_bytes" BIGINT NOT NULL DEFAULT 0,
    "dst_packets" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "accounting_samples_pkey" PRIMARY KEY ("id", "at")
) PARTITION BY RANGE ("at");
CREATE TABLE "accounting_samples_default" PARTITION OF "accounting_samples" DEFAULT;
CREATE INDEX "accounting_samples_table_name_at_idx" ON "accounting_samples"("table_name", "at");
CREATE INDEX "accounting_samples_host_id_at_idx" ON "accounting_samples"("host_id", "at");

CREATE TABLE "quota_states" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "host_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "mode" "quota_mode" NOT NULL DEFAULT 'bytes',
    "grow" BOOLEAN NOT NULL DEFAULT false,
    "limit" BIGINT NOT NULL DEFAULT 0,
    "used" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "quota_states_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "quota_states_host_id_name_key" ON "quota_states"("host_id", "name");
ALTER TABLE "quota_states" ADD CONSTRAINT "quota_states_host_id_fkey"
    FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "log_events" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "host_id" UUID NOT NULL,
    "prefix" TEXT NOT NULL DEFAULT '',
    "level" INTEGER NOT NULL DEFAULT 4,
    "mark" BIGINT,
    "ctmark" BIGINT,
    "fields" JSONB NOT NULL DEFAULT '{}',
    CONSTRAINT "log_events_pkey" PRIMARY KEY ("id", "at")
) PARTITION BY RANGE ("at");
CREATE TABLE "log_events_default" PARTITION OF "log_events" DEFAULT;
CREATE INDEX "log_events_host_id_at_idx" ON "log_events"("host_id", "at");
CREATE INDEX "log_events_prefix_at_idx" ON "log_events"("prefix", "at");

-- Creates (if missing) the partition of a time-partitioned table covering [from, to).
-- Rows already in the DEFAULT partition for that range are moved into it.
CREATE FUNCTION "palisade_ensure_partition"(parent TEXT, suffix TEXT, range_from TIMESTAMPTZ, range_to TIMESTAMPTZ)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    part TEXT := parent || '_' || suffix;
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE at >= $1 AND at < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   parent || '_default', part) USING range_from, range_to;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, range_from, range_to);
END;
$$;

CREATE TABLE "api_tokens" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "token_hash" TEXT NOT NULL,
    "role" "token_role" NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    CONSTRAINT "api_tokens_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "api_tokens_name_key" ON "api_tokens"("name");
CREATE UNIQUE INDEX "api_tokens_token_hash_key" ON "api_tokens"("token_hash");

CREATE TABLE "audit_log" (
    "id" BIGSERIAL NOT NULL,
    "actor" TEXT NOT NULL,
    "actor_token_id" UUID,
    "action" TEXT NOT NULL,
    "target" TEXT NOT NULL,
    "details" JSONB NOT NULL DEFAULT '{}',
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "audit_log_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "audit_log_at_idx" ON "audit_log"("at");
