-- Revocation: a disabled host keeps its row and history but its credential is refused and
-- its live stream is closed (see docs/security.md).
ALTER TABLE "hosts" ADD COLUMN "disabled" BOOLEAN NOT NULL DEFAULT false;
