-- name: nudge_job_devices_page
-- One keyset page of the devices whose latest row of a job is in a status (run unprepared:
-- the first page has no cursor).
SELECT device_uuid
  FROM device_job_status
 WHERE job_id = %(job_id)s AND is_latest AND status = %(status)s
   AND (%(after)s::uuid IS NULL OR device_uuid > %(after)s::uuid)
 ORDER BY device_uuid
 LIMIT %(page_size)s;
