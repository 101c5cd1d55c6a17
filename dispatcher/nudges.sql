-- name: nudge_job_devices_page
-- One keyset page of the devices whose latest row of a job is in a status and has been
-- released to them: a row a rollout still holds back is nothing the device can act on (run
-- unprepared: the first page has no cursor).
SELECT device_uuid
  FROM device_job_status
 WHERE job_id = %(job_id)s AND is_latest AND status = %(status)s
   AND released_at IS NOT NULL
   AND (%(after)s::uuid IS NULL OR device_uuid > %(after)s::uuid)
 ORDER BY device_uuid
 LIMIT %(page_size)s;
