-- Fleet-wide bans (docs/bans.md): one row per (list, address), applied by the agents of
-- the hosts its selector picks, element by element, without a ruleset version. A row
-- whose expires_at has passed is gone for every reader (queries filter on it) and for the
-- kernels (the element's timeout is the same moment); rows are swept later.
CREATE TABLE "bans" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "list" TEXT NOT NULL,
    -- Canonical spelling (engine/bans/address.ts): "203.0.113.5", "198.51.100.0/24", "2001:db8::/64".
    "address" TEXT NOT NULL,
    "family" TEXT NOT NULL,
    "prefix_len" INTEGER NOT NULL,
    "reason" TEXT NOT NULL DEFAULT '',
    -- Selector: NULL host_ids = any host; labels = hosts whose labels include these ({} = any).
    -- Labels are matched when a change is sent and when an agent connects, so a new host
    -- carrying them gets the ban too.
    "host_ids" UUID[],
    "labels" JSONB NOT NULL DEFAULT '{}',
    -- "api", or "trap:<host name>" for a port-scan trap hit shared fleet-wide.
    "source" TEXT NOT NULL DEFAULT 'api',
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "bans_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "bans_list_address_key" ON "bans"("list", "address");
CREATE INDEX "bans_expires_at_idx" ON "bans"("expires_at");

-- The address an agent's stream came from (as the API saw it): a ban covering it would cut
-- the host's management path, so the API refuses one.
ALTER TABLE "hosts" ADD COLUMN "agent_address" TEXT;
