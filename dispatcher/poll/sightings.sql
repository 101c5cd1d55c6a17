-- name: record_polls
-- Polls seen by one API process: last_seen_at for these devices (an array literal), writing
-- only rows older than the resolution, so a device's row is written at most once per
-- resolution however often it polls.
UPDATE devices
   SET last_seen_at = now()
 WHERE uuid = ANY(%(device_uuids)s::uuid[])
   AND (last_seen_at IS NULL
        OR last_seen_at < now() - make_interval(secs => %(resolution_s)s));
