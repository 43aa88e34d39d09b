-- The CA of the agents' mutual-TLS channel (docs/security.md): one row, shared by every
-- replica. The private key is stored encrypted (AES-256-GCM under a key derived from
-- PALISADE_SECRET_KEY); the database alone never reveals it.
CREATE TABLE "certificate_authority" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "cert_pem" TEXT NOT NULL,
    "key_encrypted" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "certificate_authority_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "certificate_authority_one_row" CHECK ("id" = 1)
);

-- The last client certificate issued to each host (enrollment or renewal): for operators
-- and the renewal test; identity on the stream comes from the verified certificate itself.
ALTER TABLE "hosts" ADD COLUMN "cert_serial" TEXT;
ALTER TABLE "hosts" ADD COLUMN "cert_expires_at" TIMESTAMPTZ(3);
