-- name: count_matching_signatures
-- Devices a filter on the device type and attributes alone matches, summed over the
-- maintained device signatures (a signature matches exactly when its devices do).
SELECT coalesce(sum(d.n), 0)::bigint AS n
  FROM device_signatures d
 WHERE {{target_filter}};

-- name: count_matching_fact_signatures
-- Devices a filter on the device type, attributes and summarised inventory facts matches: the
-- filter is evaluated on the fact signatures, the devices of those that match counted by an
-- index-only scan of the narrow device_fact_signatures (a signature matches exactly when its
-- devices do).
SELECT count(*) AS n
  FROM device_fact_signatures f
 WHERE f.signature IN (SELECT d.signature FROM fact_signatures d WHERE {{target_filter}});

-- name: summarised_fact_paths
-- The inventory facts fact signatures summarise (dotted paths; the list is in the database,
-- where the triggers that keep the signatures use it).
SELECT fact_signature_paths() AS paths;

-- name: count_matching_numbers
-- Devices a range of one numeric inventory fact matches, by an index-only scan of the maintained
-- numbers (a device has one row per path, so a row is a device).
SELECT count(*) AS n
  FROM device_inventory_numbers n
 WHERE {{target_filter}};

-- name: prefer_index_scans
-- Sequential scans off for the rest of the transaction; answers the setting as it was.
SELECT s.was, set_config('enable_seqscan', 'off', true) AS now
  FROM (SELECT current_setting('enable_seqscan') AS was) s;

-- name: restore_sequential_scans
SELECT set_config('enable_seqscan', %(setting)s, true);

-- name: count_matching_devices
-- Devices a filter that names inventory or server columns matches.
SELECT count(*) AS n
  FROM devices d
 WHERE {{target_filter}};

-- name: unknown_devices
-- The given uuids that are not registered devices, in the order given.
SELECT u.uuid
  FROM unnest(%(device_uuids)s::uuid[]) WITH ORDINALITY AS u (uuid, position)
 WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.uuid = u.uuid)
 ORDER BY u.position;
