-- name: cancel_job_execution
-- Mark an execution CANCELED (its rows follow in chunks).
UPDATE job_executions
   SET status = 'CANCELED', completed_at = coalesce(completed_at, now()),
       reason = coalesce(%(reason)s, reason)
 WHERE job_id = %(job_id)s;

-- name: device_job_chunk_end
-- The device uuid that ends the next chunk of a job's latest rows in one status, after a
-- cursor; nothing when fewer than a chunk remain.
SELECT device_uuid
  FROM device_job_status
 WHERE job_id = %(job_id)s AND is_latest AND status = %(status)s AND device_uuid > %(after)s
 ORDER BY device_uuid
OFFSET %(chunk_size)s - 1
 LIMIT 1;

-- name: cancel_device_job_chunk
-- Cancel a job's latest rows still in one status, for devices in (after, until] (or every device
-- after the cursor when until is NULL).
UPDATE device_job_status
   SET status = 'CANCELED', version_number = version_number + 1, completed_at = now(),
       last_updated_at = now(), reason = coalesce(%(reason)s, reason)
 WHERE job_id = %(job_id)s AND is_latest AND status = %(status)s
   AND device_uuid > %(after)s
   AND (%(until)s::uuid IS NULL OR device_uuid <= %(until)s);

-- name: requeue_failed_device_jobs
-- Retry: each latest row in a failure status (of one device, or of every device when
-- device_uuid is NULL) stops being the latest, and a QUEUED row with the next execution number
-- takes its place. Answers the re-queued devices.
WITH previous AS (
    UPDATE device_job_status
       SET is_latest = false
     WHERE job_id = %(job_id)s AND is_latest AND status = ANY(%(failures)s)
       AND (%(device_uuid)s::uuid IS NULL OR device_uuid = %(device_uuid)s)
    RETURNING device_uuid, execution_number
)
INSERT INTO device_job_status (job_id, device_uuid, execution_number)
SELECT %(job_id)s, device_uuid, execution_number + 1 FROM previous
RETURNING device_uuid, execution_number;

-- name: reopen_job_execution
-- A retried execution is active again: IN_PROGRESS when a device ever started it, else QUEUED.
UPDATE job_executions
   SET status = CASE WHEN started_at IS NULL THEN 'QUEUED' ELSE 'IN_PROGRESS' END,
       completed_at = NULL
 WHERE job_id = %(job_id)s;
