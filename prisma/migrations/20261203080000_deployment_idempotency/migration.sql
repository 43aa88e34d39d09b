-- Idempotency-Key on deployment creates and rollbacks (docs/api.md): a client retrying after
-- a timeout gets the deployment its first attempt created, never a second one. Kept in
-- PostgreSQL, beside the deployment, so it holds whatever happens to Redis. Scoped per
-- token name (created_by); NULLs are distinct, so deployments without a key never collide.
ALTER TABLE "deployments" ADD COLUMN "idempotency_key" TEXT;
ALTER TABLE "deployments" ADD COLUMN "idempotency_request" TEXT;
ALTER TABLE "deployments" ADD COLUMN "idempotency_response" JSONB;
CREATE UNIQUE INDEX "deployments_created_by_idempotency_key_key" ON "deployments"("created_by", "idempotency_key");
