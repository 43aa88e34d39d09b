-- Stable views for dashboards (Grafana over PostgreSQL, deploy/grafana/): what they
-- select is documented in docs/console.md and does not change when the tables behind
-- them do. Accounting comes from the rollups (minute, hour, day, month), so a panel
-- reads at most a few thousand buckets whatever the range; the newest minute appears
-- once the rollup has run (palisade_telemetry_rollup_lag_seconds says how far behind).

-- Every rollup level in one relation; `resolution` picks the level (the planner prunes
-- the other branches of the UNION ALL). Address '' is a table's unattributed remainder.
CREATE VIEW "palisade_accounting" AS
  SELECT 'minute'::text AS resolution, r.bucket, h.name AS host, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE host(r.address) END AS address,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_minute" r JOIN "hosts" h ON h.id = r.host_id
  UNION ALL
  SELECT 'hour', r.bucket, h.name, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE host(r.address) END,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_hour" r JOIN "hosts" h ON h.id = r.host_id
  UNION ALL
  SELECT 'day', r.bucket, h.name, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE host(r.address) END,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_day" r JOIN "hosts" h ON h.id = r.host_id
  UNION ALL
  SELECT 'month', r.bucket, h.name, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE host(r.address) END,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_month" r JOIN "hosts" h ON h.id = r.host_id;

-- The level to read for a time range: minutes up to 6 hours, hours up to 14 days, days
-- up to a year, months beyond (a panel stays within a few thousand buckets).
CREATE FUNCTION "palisade_accounting_resolution"(range_from timestamptz, range_to timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN range_to - range_from <= interval '6 hours' THEN 'minute'
    WHEN range_to - range_from <= interval '14 days' THEN 'hour'
    WHEN range_to - range_from <= interval '366 days' THEN 'day'
    ELSE 'month' END
$$;

-- Accounting tables each host reports, with their time span.
CREATE VIEW "palisade_accounting_tables" AS
  SELECT t.table_name, h.name AS host, t.first_at, t.last_at
    FROM "accounting_tables" t JOIN "hosts" h ON h.id = t.host_id;

-- Quotas as the agents last reported them; used_percent is NULL for growing counters.
CREATE VIEW "palisade_quotas" AS
  SELECT h.name AS host, q.name, q.mode::text AS mode, q.grow, q."limit", q.used,
         CASE WHEN q.grow OR q."limit" = 0 THEN NULL ELSE round(100.0 * q.used / q."limit", 1) END AS used_percent,
         q.sampled_at
    FROM "quota_states" q JOIN "hosts" h ON h.id = q.host_id;

-- The fleet: one row per host.
CREATE VIEW "palisade_hosts_state" AS
  SELECT h.name AS host, h.connection::text AS connection, h.last_seen_at, h.drift, h.labels,
         dr.name AS desired_ruleset, dv.number AS desired_version,
         ar.name AS applied_ruleset, av.number AS applied_version
    FROM "hosts" h
    LEFT JOIN "ruleset_versions" dv ON dv.id = h.desired_version_id
    LEFT JOIN "rulesets" dr ON dr.id = dv.ruleset_id
    LEFT JOIN "ruleset_versions" av ON av.id = h.applied_version_id
    LEFT JOIN "rulesets" ar ON ar.id = av.ruleset_id;
