-- Operator conditions (docs/conditions.md): named on/off flags a policy's rules test
-- (xt_condition), set for the hosts a selector picks, without a ruleset version. One row
-- per (name, selector); a host's value for a name is that of the most recently set row
-- whose selector picks it, and a name no row picks is off.
CREATE TABLE "condition_values" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "on" BOOLEAN NOT NULL,
    -- Selector: NULL host_ids = any host; labels = hosts whose labels include these ({} = any).
    "host_ids" UUID[],
    "labels" JSONB NOT NULL DEFAULT '{}',
    -- Canonical text of the selector (sorted ids and labels): setting the same selector again replaces its row.
    "selector_key" TEXT NOT NULL,
    "set_by" TEXT NOT NULL,
    "set_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "condition_values_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "condition_values_name_selector_key_key" ON "condition_values"("name", "selector_key");
