-- name: count_all_devices
-- Every registered device, from the maintained per-type counts.
SELECT coalesce(sum(n), 0)::bigint AS n FROM device_type_counts;

-- name: count_devices_of_type
-- Devices of one device_type, from the maintained per-type counts.
SELECT coalesce(sum(n), 0)::bigint AS n FROM device_type_counts WHERE device_type = %(device_type)s;

-- name: count_devices_matching
-- Devices whose attributes contain a filter (GIN), optionally of one device_type.
SELECT count(*) AS n
  FROM devices
 WHERE attributes @> %(attributes)s::jsonb
   AND (%(device_type)s::text IS NULL OR device_type = %(device_type)s::text);

-- name: unknown_devices
-- The given uuids that are not registered devices, in the order given.
SELECT u.uuid
  FROM unnest(%(device_uuids)s::uuid[]) WITH ORDINALITY AS u (uuid, position)
 WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.uuid = u.uuid)
 ORDER BY u.position;

-- name: count_devices_with_attribute
-- Devices with one scalar attribute value, optionally of one device_type, from maintained counts.
SELECT coalesce(sum(n), 0)::bigint AS n
  FROM device_attribute_counts
 WHERE attribute = %(attribute)s AND value = %(value)s::jsonb
   AND (%(device_type)s::text IS NULL OR device_type = %(device_type)s::text);
