-- Country data for the geoip match (docs/geoip.md). The server owns it: one row per country
-- with its merged intervals (canonical text, one per line, per family), the revision at
-- which it last changed, and every change as element deltas, so an agent that holds an
-- older revision of a country gets the delete/add lists instead of the whole country.
CREATE TABLE "geoip_countries" (
    "country" TEXT NOT NULL,
    "ipv4" TEXT NOT NULL DEFAULT '',
    "ipv6" TEXT NOT NULL DEFAULT '',
    "intervals" INTEGER NOT NULL DEFAULT 0,
    "revision" BIGINT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "geoip_countries_pkey" PRIMARY KEY ("country")
);

CREATE TABLE "geoip_changes" (
    "id" BIGSERIAL NOT NULL,
    "country" TEXT NOT NULL,
    -- The country's revision after this change (the one before is the previous row's).
    "revision" BIGINT NOT NULL,
    "from_revision" BIGINT NOT NULL,
    "ipv4_add" TEXT NOT NULL DEFAULT '',
    "ipv4_del" TEXT NOT NULL DEFAULT '',
    "ipv6_add" TEXT NOT NULL DEFAULT '',
    "ipv6_del" TEXT NOT NULL DEFAULT '',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "geoip_changes_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "geoip_changes_country_revision_idx" ON "geoip_changes"("country", "revision");

-- One row (id 1): the data set's revision and where the last load came from.
CREATE TABLE "geoip_dataset" (
    "id" INTEGER NOT NULL,
    "revision" BIGINT NOT NULL DEFAULT 0,
    "source" TEXT NOT NULL DEFAULT '',
    "ranges" INTEGER NOT NULL DEFAULT 0,
    "countries" INTEGER NOT NULL DEFAULT 0,
    "loaded_by" TEXT NOT NULL DEFAULT '',
    "loaded_at" TIMESTAMPTZ(3),

    CONSTRAINT "geoip_dataset_pkey" PRIMARY KEY ("id")
);
