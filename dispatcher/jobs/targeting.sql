-- name: count_matching_signatures
-- Devices a filter on the device type and attributes alone matches, summed over the
-- maintained device signatures (a signature matches exactly when its devices do).
SELECT coalesce(sum(d.n), 0)::bigint AS n
  FROM device_signatures d
 WHERE {{target_filter}};

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
