-- Dashboard views, second step: an aggregated accounting row (an IPv6 /64, an IPv4 /24)
-- keeps its prefix length ("2001:db8:1:2::/64"; a single address stays "192.0.2.7", as
-- abbrev() prints it), and the fleet view shows whether a host is disabled. Columns are
-- only appended, so existing panels keep working.
CREATE OR REPLACE VIEW "palisade_accounting" AS
  SELECT 'minute'::text AS resolution, r.bucket, h.name AS host, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE abbrev(r.address) END AS address,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_minute" r JOIN "hosts" h ON h.id = r.host_id
  UNION ALL
  SELECT 'hour', r.bucket, h.name, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE abbrev(r.address) END,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_hour" r JOIN "hosts" h ON h.id = r.host_id
  UNION ALL
  SELECT 'day', r.bucket, h.name, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE abbrev(r.address) END,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_day" r JOIN "hosts" h ON h.id = r.host_id
  UNION ALL
  SELECT 'month', r.bucket, h.name, r.table_name,
         CASE WHEN r.address = '0.0.0.0/0'::inet THEN '' ELSE abbrev(r.address) END,
         r.src_bytes, r.src_packets, r.dst_bytes, r.dst_packets
    FROM "accounting_month" r JOIN "hosts" h ON h.id = r.host_id;

CREATE OR REPLACE VIEW "palisade_hosts_state" AS
  SELECT h.name AS host, h.connection::text AS connection, h.last_seen_at, h.drift, h.labels,
         dr.name AS desired_ruleset, dv.number AS desired_version,
         ar.name AS applied_ruleset, av.number AS applied_version,
         h.disabled
    FROM "hosts" h
    LEFT JOIN "ruleset_versions" dv ON dv.id = h.desired_version_id
    LEFT JOIN "rulesets" dr ON dr.id = dv.ruleset_id
    LEFT JOIN "ruleset_versions" av ON av.id = h.applied_version_id
    LEFT JOIN "rulesets" ar ON ar.id = av.ruleset_id;
