-- part: reported_row
-- What a status report answers besides its verdict: the job's status and the device's row as it
-- is after the report (the row it moved, or the current one when it moved none); from the
-- target (t), the caller (c) and the row (r) of report_device_job and report_device_jobs.
t.job_status,
       r.job_id, t.job_name, r.device_uuid, c.device_name, r.status, r.execution_number,
       r.version_number, r.is_latest, r.queued_at, r.started_at, r.completed_at,
       r.last_updated_at, r.exit_code, r.stdout, r.stderr, r.stdout_truncated,
       r.stderr_truncated, r.reason, r.executed_steps, r.failed_step, r.status_details, r.stage

-- name: list_device_jobs
-- A device's history, every execution number, newest first, with job names; paged.
SELECT d.job_id, e.job_name, d.device_uuid, d.status, d.execution_number, d.version_number,
       d.is_latest, d.queued_at, d.started_at, d.completed_at, d.last_updated_at, d.exit_code,
       d.stdout, d.stderr, d.stdout_truncated, d.stderr_truncated, d.reason, d.executed_steps,
       d.failed_step, d.status_details
  FROM device_job_status d
  JOIN job_executions e ON e.job_id = d.job_id
 WHERE d.device_uuid = %(device_uuid)s
   AND (%(status)s::text IS NULL OR d.status = %(status)s)
 ORDER BY d.id DESC
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_device_jobs
-- How many rows list_device_jobs pages through.
SELECT count(*) AS n FROM device_job_status
 WHERE device_uuid = %(device_uuid)s AND (%(status)s::text IS NULL OR status = %(status)s);

-- name: device_exists
-- Whether a device is registered.
SELECT EXISTS (SELECT 1 FROM devices WHERE uuid = %(device_uuid)s) AS found;

-- name: get_device_job
-- The latest row of one device for one job, with the job and device names.
SELECT d.job_id, e.job_name, d.device_uuid, v.device_name, d.status, d.execution_number,
       d.version_number, d.is_latest, d.queued_at, d.started_at, d.completed_at,
       d.last_updated_at, d.exit_code, d.stdout, d.stderr, d.stdout_truncated,
       d.stderr_truncated, d.reason, d.executed_steps, d.failed_step, d.status_details,
       d.stage
  FROM device_job_status d
  JOIN job_executions e ON e.job_id = d.job_id
  JOIN devices v ON v.uuid = d.device_uuid
 WHERE d.job_id = %(job_id)s AND d.device_uuid = %(device_uuid)s AND d.is_latest;

-- name: lock_device_job
-- A device's latest row for a job, locked for a status change, with its job's status.
SELECT d.id, d.status, d.version_number, e.status AS job_status
  FROM device_job_status d
  JOIN job_executions e ON e.job_id = d.job_id
 WHERE d.job_id = %(job_id)s AND d.device_uuid = %(device_uuid)s AND d.is_latest
   FOR UPDATE OF d;

-- name: report_device_job
-- A device's status report in one statement, so in one round trip and one short transaction,
-- answering one row with its verdict. The device's latest row for the job, when the token hash
-- is the device's (any token when the hash is NULL), is locked; when its status is one the
-- report may leave and its version the one expected (when given), it is moved, the report's
-- audit event is written, the job leaves QUEUED on its first report (with its own event), and
-- an IN_PROGRESS report sets the row's deadline: the job's in_progress_timeout_minutes from the
-- start, shortened by the report's step_timeout_minutes from now; -1 drops the step deadline,
-- no step value keeps the one the row has. The verdict: token_ok (else token_kind, what the
-- token is instead), moved, and the row as stored after the statement (as get_device_job
-- answers it; its status and version are current, read under the lock), or no row columns
-- when the device has no such job. row_changed: the row was there when the statement began but
-- was no longer the device's latest by the time it was locked (a retry committed meanwhile):
-- only then does the caller need another look. job_status: the job's, when the row was
-- found (a repeated result checks the completion of a job still active). The counting triggers run at the end of the
-- statement, right before its commit.
WITH caller AS (
    SELECT v.uuid, v.device_name
      FROM devices v
     WHERE v.uuid = %(device_uuid)s
       AND (%(token_hash)s::bytea IS NULL OR v.token_hash = %(token_hash)s)
), target AS (
    SELECT d.id, d.status AS from_status, d.version_number AS from_version, d AS current_row,
           e.job_name, e.status AS job_status,
           make_interval(mins => (e.timeout_config ->> 'in_progress_timeout_minutes')::integer)
           AS job_timeout
      FROM device_job_status d
      JOIN caller c ON c.uuid = d.device_uuid
      JOIN job_executions e ON e.job_id = d.job_id
     WHERE d.job_id = %(job_id)s AND d.device_uuid = %(device_uuid)s AND d.is_latest
       FOR UPDATE OF d
), moved AS (
    UPDATE device_job_status d
       SET status = %(status)s,
           version_number = d.version_number + 1,
           started_at = CASE WHEN %(starts)s THEN coalesce(d.started_at, now())
                             ELSE d.started_at END,
           completed_at = CASE WHEN %(terminal)s THEN now() END,
           last_updated_at = now(),
           exit_code = coalesce(%(exit_code)s, d.exit_code),
           stdout = coalesce(%(stdout)s, d.stdout),
           stdout_truncated = coalesce(%(stdout_truncated)s, d.stdout_truncated),
           stderr = coalesce(%(stderr)s, d.stderr),
           stderr_truncated = coalesce(%(stderr_truncated)s, d.stderr_truncated),
           reason = coalesce(%(reason)s, d.reason),
           executed_steps = coalesce(%(executed_steps)s, d.executed_steps),
           failed_step = coalesce(%(failed_step)s, d.failed_step),
           status_details = coalesce(%(status_details)s, d.status_details),
           timeout_at = CASE
               WHEN %(status)s <> 'IN_PROGRESS' THEN d.timeout_at
               WHEN %(step_timeout_minutes)s::integer = -1
                   THEN coalesce(d.started_at, now()) + t.job_timeout
               WHEN %(step_timeout_minutes)s::integer > 0
                   THEN least(coalesce(d.started_at, now()) + t.job_timeout,
                              now() + make_interval(mins => %(step_timeout_minutes)s::integer))
               ELSE coalesce(d.timeout_at, coalesce(d.started_at, now()) + t.job_timeout)
           END
      FROM target t
     WHERE d.id = t.id
       AND t.from_status = ANY(%(sources)s)
       AND (%(expected_version)s::integer IS NULL
            OR t.from_version = %(expected_version)s::integer)
    RETURNING d.id, d.job_id, d.device_uuid, d.status, d.version_number, d AS stored_row,
              t.from_status
), started AS (
    UPDATE job_executions e
       SET status = 'IN_PROGRESS', started_at = coalesce(e.started_at, now())
      FROM moved m
     WHERE e.job_id = m.job_id AND e.status = 'QUEUED'
    RETURNING e.job_id
), events AS (
    -- The device's event, then the job's (one INSERT, so in that order).
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.status_changed', 'device_job',
           device_job_target_id(m.job_id, m.device_uuid), m.job_id, m.device_uuid,
           jsonb_build_object('from', m.from_status, 'to', m.status,
                              'version_number', m.version_number)
      FROM moved m
    UNION ALL
    SELECT %(actor)s, 'job.started', 'job', s.job_id::text, s.job_id, NULL,
           jsonb_build_object('from', 'QUEUED', 'to', 'IN_PROGRESS')
      FROM started s
)
SELECT c.uuid IS NOT NULL AS token_ok,
       CASE WHEN c.uuid IS NULL AND %(token_hash)s::bytea IS NOT NULL
            THEN token_holder_kind(%(token_hash)s) END AS token_kind,
       m.id IS NOT NULL AS moved,
       t.id IS NULL AND c.uuid IS NOT NULL AND EXISTS (
           SELECT 1 FROM device_job_status d
            WHERE d.job_id = %(job_id)s AND d.device_uuid = %(device_uuid)s AND d.is_latest
       ) AS row_changed,
       {{part:reported_row}}
  FROM (SELECT) a
  LEFT JOIN caller c ON true
  LEFT JOIN target t ON true
  LEFT JOIN moved m ON true
  LEFT JOIN LATERAL (SELECT (coalesce(m.stored_row, t.current_row)).*) r ON true;
