-- name: record_polls
-- Polls seen by one API process: last_seen_at for these devices (an array literal), writing
-- only rows older than the resolution, so a device's row is written at most once per
-- resolution however often it polls. Every API process writes overlapping sets of device rows
-- at the same time, and the plan of a bare UPDATE … WHERE uuid = ANY picks its row order by
-- the array's size (index order for a few, heap order for many): two processes then took the
-- same rows in different orders and deadlocked. So the rows are locked first, in uuid order,
-- skipping any row another statement holds (that one is writing now() too, or a device change
-- is: the device's next call records it). Never waiting, this statement cannot deadlock; NO KEY
-- UPDATE leaves the foreign-key checks of rows being inserted for these devices unblocked.
WITH due AS (
    SELECT uuid
      FROM devices
     WHERE uuid = ANY(%(device_uuids)s::uuid[])
       AND (last_seen_at IS NULL
            OR last_seen_at < now() - make_interval(secs => %(resolution_s)s))
     ORDER BY uuid
       FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE devices v
   SET last_seen_at = now()
  FROM due
 WHERE v.uuid = due.uuid;
