-- quota_states: which batch the held sample came from. A sample is replaced by one from a
-- later batch of the same agent epoch (seq order is the order the agent read its kernel),
-- not by the agent's clock: a clock stepped back made newer samples lose to older ones.
-- Rows from before this column keep the old rule until their next sample.
ALTER TABLE "quota_states" ADD COLUMN "sample_epoch" TEXT;
ALTER TABLE "quota_states" ADD COLUMN "sample_seq" BIGINT;
