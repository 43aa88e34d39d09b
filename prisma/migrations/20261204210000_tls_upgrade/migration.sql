-- Single-use secrets that let a host enrolled over plaintext exchange its bearer credential
-- for a client certificate in place (docs/security.md, "Upgrading a host enrolled over
-- plaintext"). Only the sha256 of the secret is stored. A row goes with its host.
CREATE TABLE "tls_upgrade_secrets" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "host_id" UUID NOT NULL,
    "secret_hash" TEXT NOT NULL,
    "created_by" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "used_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "tls_upgrade_secrets_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "tls_upgrade_secrets_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "hosts"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "tls_upgrade_secrets_secret_hash_key" ON "tls_upgrade_secrets"("secret_hash");
CREATE INDEX "tls_upgrade_secrets_host_id_idx" ON "tls_upgrade_secrets"("host_id");
