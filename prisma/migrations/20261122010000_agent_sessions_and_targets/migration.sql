-- Agents and deployments (issue 4).
--
-- hosts.session_id: the agent stream that currently speaks for the host. A replica only
-- marks a host disconnected when the ending stream is still the current one, so a stream
-- closing late on one replica cannot undo a reconnect that already landed on another.
ALTER TABLE "hosts" ADD COLUMN "session_id" UUID;

-- deployment_targets.version_id: the version this target puts on its host. Usually the
-- deployment's own; a rollback restores each host's own previous version, which may differ.
ALTER TABLE "deployment_targets" ADD COLUMN "version_id" UUID;
UPDATE "deployment_targets" t SET "version_id" = d."version_id" FROM "deployments" d WHERE d."id" = t."deployment_id";
ALTER TABLE "deployment_targets" ALTER COLUMN "version_id" SET NOT NULL;
ALTER TABLE "deployment_targets" ADD CONSTRAINT "deployment_targets_version_id_fkey"
    FOREIGN KEY ("version_id") REFERENCES "ruleset_versions"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- offered_at: when the rollout opened this target's batch. Only offered targets may be
-- claimed and sent (by the stream holder or on the agent's hello), so a host that
-- reconnects never jumps ahead of its batch. attempts: sends so far (retries are bounded).
ALTER TABLE "deployment_targets" ADD COLUMN "offered_at" TIMESTAMPTZ(3);
ALTER TABLE "deployment_targets" ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0;
CREATE INDEX "deployment_targets_deployment_id_batch_idx" ON "deployment_targets"("deployment_id", "batch");
