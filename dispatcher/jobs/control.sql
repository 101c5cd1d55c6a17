-- Cancel and retry: one statement each for closing a job, canceling device rows and queuing
-- new attempts, whoever asks (an operator, an abort criterion, an end time, auto-retry, a
-- continuous job taking a device back). Every row moved gets its job_events row in the same
-- statement.

-- name: close_job
-- End a job (CANCELED, or SUCCEEDED when a recurring schedule runs out) if it is in one of the
-- given statuses, with its event; nothing when it is not.
WITH closed AS (
    UPDATE job_executions
       SET status = %(status)s, reason = coalesce(%(reason)s, reason),
           completed_at = coalesce(completed_at, %(now)s), next_run_at = NULL,
           -- A staged rollout that is closed stops: its held-back devices get nothing more.
           rollout_state = CASE WHEN rollout_state IN ('WAITING_FOR_APPROVAL', 'RUNNING',
                                                       'PAUSED')
                                THEN 'STOPPED' ELSE rollout_state END,
           rollout_reason = CASE WHEN rollout_state IN ('WAITING_FOR_APPROVAL', 'RUNNING',
                                                        'PAUSED')
                                 THEN 'job ' || lower(%(status)s) ELSE rollout_reason END
     WHERE job_id = %(job_id)s AND status = ANY(%(from_statuses)s)
    RETURNING job_id, status
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, details)
    SELECT %(actor)s, %(action)s, 'job', job_id::text, job_id,
           %(details)s::jsonb || jsonb_build_object('to', status, 'reason', %(reason)s)
      FROM closed
)
SELECT job_id, status FROM closed;

-- name: device_job_chunk_end
-- The device uuid that ends the next chunk of a job's latest rows in one status, after a
-- cursor; nothing when fewer than a chunk remain.
SELECT device_uuid
  FROM device_job_status
 WHERE job_id = %(job_id)s AND is_latest AND status = %(status)s AND device_uuid > %(after)s
 ORDER BY device_uuid
OFFSET %(chunk_size)s - 1
 LIMIT 1;

-- name: cancel_device_jobs
-- Cancel a job's latest rows still in one of the given statuses: one device's, or those of the
-- devices in (after, until] (every device after the cursor when until is NULL). Each canceled
-- row keeps its outputs, records the reason and gets its event. Answers the devices canceled
-- and whether their row had been released to them (only those are worth a nudge).
WITH picked AS (
    SELECT id, status
      FROM device_job_status
     WHERE job_id = %(job_id)s AND is_latest AND status = ANY(%(statuses)s)
       AND (%(device_uuid)s::uuid IS NULL OR device_uuid = %(device_uuid)s::uuid)
       AND (%(after)s::uuid IS NULL OR device_uuid > %(after)s::uuid)
       AND (%(until)s::uuid IS NULL OR device_uuid <= %(until)s::uuid)
       FOR UPDATE
), canceled AS (
    UPDATE device_job_status d
       SET status = 'CANCELED', version_number = d.version_number + 1, completed_at = %(now)s,
           last_updated_at = %(now)s, reason = coalesce(%(reason)s, d.reason)
      FROM picked p
     WHERE d.id = p.id
    RETURNING d.job_id, d.device_uuid, d.execution_number, d.released_at, p.status AS from_status
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.canceled', 'device_job',
           device_job_target_id(job_id, device_uuid), job_id, device_uuid,
           jsonb_build_object('from', from_status, 'to', 'CANCELED', 'force', %(force)s,
                              'reason', %(reason)s, 'execution_number', execution_number)
      FROM canceled
)
SELECT device_uuid, released_at IS NOT NULL AS released FROM canceled;

-- name: failed_device_jobs
-- The latest rows of a job (of one device, or of every device when device_uuid is NULL) in a
-- failure status, locked for a retry.
SELECT id
  FROM device_job_status
 WHERE job_id = %(job_id)s AND is_latest AND status = ANY(%(failures)s)
   AND (%(device_uuid)s::uuid IS NULL OR device_uuid = %(device_uuid)s::uuid)
 ORDER BY device_uuid
   FOR UPDATE;

-- name: retry_device_jobs
-- A new attempt for each given row that is still its device's latest: the row stops being the
-- latest, a QUEUED row with the next execution number takes its place (released at once), each
-- with its event, and a job that had completed is open again (IN_PROGRESS when a device ever
-- started it, else QUEUED). Answers the new attempts.
WITH superseded AS (
    UPDATE device_job_status
       SET is_latest = false
     WHERE id = ANY(%(ids)s) AND is_latest
    RETURNING job_id, device_uuid, execution_number, status, stage
), attempts AS (
    -- A new attempt keeps its device's stage.
    INSERT INTO device_job_status (job_id, device_uuid, execution_number, queued_at, released_at,
                                   stage)
    SELECT job_id, device_uuid, execution_number + 1, %(now)s, %(now)s, stage
      FROM superseded
    RETURNING job_id, device_uuid, execution_number
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, %(action)s, 'device_job', device_job_target_id(a.job_id, a.device_uuid),
           a.job_id, a.device_uuid,
           jsonb_build_object('to', 'QUEUED', 'execution_number', a.execution_number,
                              'previous_status', s.status)
      FROM attempts a
      JOIN superseded s ON s.job_id = a.job_id AND s.device_uuid = a.device_uuid
), reopened AS (
    UPDATE job_executions e
       SET status = CASE WHEN e.started_at IS NULL THEN 'QUEUED' ELSE 'IN_PROGRESS' END,
           completed_at = NULL
     WHERE e.job_id IN (SELECT job_id FROM superseded) AND e.status IN ('SUCCEEDED', 'FAILED')
)
SELECT job_id, device_uuid, execution_number FROM attempts;
