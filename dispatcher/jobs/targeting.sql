-- name: count_matching_devices
-- Devices of a device_type (NULL: any) whose attributes contain a filter (NULL: any), summed
-- over the maintained device signatures.
SELECT coalesce(sum(n), 0)::bigint AS n
  FROM device_signatures
 WHERE (%(device_type)s::text IS NULL OR device_type = %(device_type)s::text)
   AND (%(attributes)s::jsonb IS NULL OR attributes @> %(attributes)s::jsonb);

-- name: unknown_devices
-- The given uuids that are not registered devices, in the order given.
SELECT u.uuid
  FROM unnest(%(device_uuids)s::uuid[]) WITH ORDINALITY AS u (uuid, position)
 WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.uuid = u.uuid)
 ORDER BY u.position;
