-- Execution policies: the set-based statements behind the beat sweeps (release waves, timeouts,
-- end of jobs, recurring runs, continuous reconcile, auto-retry, abort). Every statement takes
-- its clock as %(now)s, and every row it moves gets its job_events row in the same statement.

-- name: policy_set_columns
-- Store the validated policies of a new execution (same transaction as its insert).
UPDATE job_executions
   SET execution_type = %(execution_type)s, schedule = %(schedule)s,
       scheduling_config = %(scheduling_config)s, rollout_config = %(rollout_config)s,
       abort_config = %(abort_config)s, timeout_config = %(timeout_config)s,
       retry_config = %(retry_config)s, start_at = %(start_at)s, end_at = %(end_at)s,
       end_behavior = %(end_behavior)s, next_run_at = %(next_run_at)s,
       window_opens_at = %(window_opens_at)s, window_closes_at = %(window_closes_at)s,
       status = %(status)s,
       -- A recurring parent is never fanned out itself: each of its runs is.
       fanout_status = CASE WHEN %(execution_type)s = 'recurring' THEN 'DONE'
                            ELSE fanout_status END
 WHERE job_id = %(job_id)s
RETURNING status, execution_type;

-- name: policy_start_due_jobs
-- SCHEDULED jobs whose start time has come become QUEUED (their fan-out follows).
WITH due AS (
    SELECT id FROM job_executions
     WHERE status = 'SCHEDULED' AND execution_type <> 'recurring' AND start_at <= %(now)s
     ORDER BY start_at LIMIT %(limit)s
       FOR NO KEY UPDATE SKIP LOCKED
), started AS (
    UPDATE job_executions e SET status = 'QUEUED', queued_at = %(now)s
      FROM due WHERE e.id = due.id
    RETURNING e.job_id, e.start_at
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, details)
    SELECT %(actor)s, 'job.started', 'job', job_id::text, job_id,
           jsonb_build_object('from', 'SCHEDULED', 'to', 'QUEUED', 'start_time', start_at)
      FROM started
)
SELECT job_id FROM started;

-- name: policy_rollout_jobs
-- Live jobs with a rollout config that still hold back rows and may deliver now.
SELECT e.job_id
  FROM job_executions e
 WHERE e.rollout_config IS NOT NULL AND e.status IN ('QUEUED', 'IN_PROGRESS')
   AND (e.end_at IS NULL OR e.end_at > %(now)s)
   AND (e.window_closes_at IS NULL
        OR (e.window_opens_at <= %(now)s AND %(now)s < e.window_closes_at))
   AND EXISTS (SELECT 1 FROM device_job_status d
                WHERE d.job_id = e.job_id AND d.released_at IS NULL AND d.status = 'QUEUED');

-- name: policy_lock_rollout_progress
-- Lock one rollout job (a second sweep skips it) and read what its rate depends on.
SELECT e.job_id, e.rollout_config, e.released_devices AS notified_devices,
       coalesce((SELECT sum(w.n) FROM rollout_waves w
                  WHERE w.job_id = e.job_id
                    AND w.released_at > %(now)s - make_interval(secs => %(window_s)s)
                    AND w.released_at <= %(now)s), 0)::integer AS released_last_minute,
       coalesce((SELECT sum(c.n) FROM job_status_counts c
                  WHERE c.job_id = e.job_id AND c.status = 'SUCCEEDED'), 0)::integer
           AS succeeded_devices
  FROM job_executions e
 WHERE e.job_id = %(job_id)s AND e.status IN ('QUEUED', 'IN_PROGRESS')
   FOR NO KEY UPDATE OF e SKIP LOCKED;

-- name: policy_release_wave
-- Release up to %(limit)s held-back rows of one job, oldest first; one rollout_waves row.
WITH picked AS (
    SELECT id FROM device_job_status
     WHERE job_id = %(job_id)s AND released_at IS NULL AND status = 'QUEUED'
     ORDER BY id LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE device_job_status d SET released_at = %(now)s
      FROM picked WHERE d.id = picked.id
    RETURNING d.device_uuid
), wave AS (
    INSERT INTO rollout_waves (job_id, released_at, n)
    SELECT %(job_id)s, %(now)s, count(*) FROM released HAVING count(*) > 0
    RETURNING n
), counted AS (
    UPDATE job_executions e SET released_devices = e.released_devices + wave.n
      FROM wave WHERE e.job_id = %(job_id)s
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, details)
    SELECT %(actor)s, 'job.rollout_wave', 'job', %(job_id)s::text, %(job_id)s,
           jsonb_build_object('released', wave.n, 'rate_per_minute', %(rate_per_minute)s)
      FROM wave
)
SELECT device_uuid FROM released;

-- name: policy_time_out_overdue
-- One chunk of overdue QUEUED/IN_PROGRESS rows becomes TIMED_OUT; rows a report holds are
-- skipped (next sweep), so the sweep never waits on a device and never blocks a poll.
WITH overdue AS (
    SELECT id, status FROM device_job_status
     WHERE status IN ('QUEUED', 'IN_PROGRESS') AND timeout_at IS NOT NULL
       AND timeout_at <= %(now)s
     ORDER BY timeout_at LIMIT %(chunk_size)s
       FOR UPDATE SKIP LOCKED
), timed_out AS (
    UPDATE device_job_status d
       SET status = 'TIMED_OUT', completed_at = %(now)s, last_updated_at = %(now)s,
           version_number = d.version_number + 1, reason = %(reason)s
      FROM overdue WHERE d.id = overdue.id
    RETURNING d.job_id, d.device_uuid, d.execution_number, d.timeout_at, overdue.status AS source
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.timed_out', 'device_job', job_id || '/' || device_uuid,
           job_id, device_uuid,
           jsonb_build_object('from', source, 'to', 'TIMED_OUT', 'reason', %(reason)s,
                              'execution_number', execution_number, 'timeout_at', timeout_at)
      FROM timed_out
)
SELECT job_id, count(*)::integer AS n FROM timed_out GROUP BY job_id;

-- name: policy_jobs_past_end
-- Live jobs whose end time has passed, locked so one sweep handles each.
SELECT job_id, execution_type, status, end_behavior, end_at
  FROM job_executions
 WHERE end_at IS NOT NULL AND end_at <= %(now)s AND end_applied_at IS NULL
   AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
 ORDER BY end_at LIMIT %(limit)s
   FOR NO KEY UPDATE SKIP LOCKED;

-- name: policy_mark_end_applied
-- The job's end behavior has been applied.
UPDATE job_executions SET end_applied_at = %(now)s WHERE job_id = %(job_id)s;

-- name: policy_ended_jobs_holding_rows
-- Jobs past their end that stopped their rollout and still hold back rows (a fan-out that
-- was still running at the end time added them).
SELECT DISTINCT e.job_id
  FROM job_executions e
  JOIN device_job_status d ON d.job_id = e.job_id AND d.released_at IS NULL AND d.status = 'QUEUED'
 WHERE e.rollout_config IS NOT NULL AND e.end_at <= %(now)s
   AND e.status IN ('QUEUED', 'IN_PROGRESS');

-- name: policy_close_job
-- End a live job (CANCELED by abort or end time, SUCCEEDED when a schedule runs out).
WITH closed AS (
    UPDATE job_executions
       SET status = %(status)s, reason = coalesce(%(reason)s, reason), completed_at = %(now)s,
           next_run_at = NULL
     WHERE job_id = %(job_id)s AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
    RETURNING job_id, status
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, details)
    SELECT %(actor)s, %(action)s, 'job', job_id::text, job_id,
           jsonb_build_object('to', status, 'reason', %(reason)s)
      FROM closed
)
SELECT job_id, status FROM closed;

-- name: policy_cancel_rows
-- Cancel one job's current rows in the given statuses, each with the reason and an event.
WITH canceled AS (
    UPDATE device_job_status d
       SET status = 'CANCELED', completed_at = %(now)s, last_updated_at = %(now)s,
           version_number = d.version_number + 1, reason = %(reason)s
     WHERE d.job_id = %(job_id)s AND d.is_latest AND d.status = ANY(%(statuses)s)
    RETURNING d.job_id, d.device_uuid, d.execution_number, d.released_at
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.canceled', 'device_job', job_id || '/' || device_uuid,
           job_id, device_uuid,
           jsonb_build_object('to', 'CANCELED', 'reason', %(reason)s,
                              'execution_number', execution_number)
      FROM canceled
)
SELECT device_uuid FROM canceled WHERE released_at IS NOT NULL;

-- name: policy_remove_unreleased
-- A stopped rollout: the rows never released are REMOVED (their devices never saw the job).
WITH removed AS (
    UPDATE device_job_status d
       SET status = 'REMOVED', completed_at = %(now)s, last_updated_at = %(now)s,
           version_number = d.version_number + 1, reason = %(reason)s
     WHERE d.job_id = %(job_id)s AND d.released_at IS NULL AND d.status = 'QUEUED'
    RETURNING d.job_id, d.device_uuid, d.execution_number
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.removed', 'device_job', job_id || '/' || device_uuid,
           job_id, device_uuid,
           jsonb_build_object('from', 'QUEUED', 'to', 'REMOVED', 'reason', %(reason)s,
                              'execution_number', execution_number)
      FROM removed
)
SELECT count(*)::integer AS n FROM removed;

-- name: policy_windows_to_advance
-- Live jobs whose current maintenance window has closed: their next window is due.
SELECT job_id, scheduling_config
  FROM job_executions
 WHERE window_closes_at <= %(now)s AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS');

-- name: policy_claim_opened_windows
-- Released jobs whose current window is open and whose devices have not been nudged for it:
-- claimed by recording the window, so a second beat running the sweep claims nothing.
UPDATE job_executions
   SET window_nudged_for = window_opens_at
 WHERE window_closes_at > %(now)s AND window_opens_at <= %(now)s
   AND status IN ('QUEUED', 'IN_PROGRESS')
   AND window_nudged_for IS DISTINCT FROM window_opens_at
RETURNING job_id;

-- name: policy_set_window
-- The current or next maintenance window of one job.
UPDATE job_executions
   SET window_opens_at = %(window_opens_at)s, window_closes_at = %(window_closes_at)s
 WHERE job_id = %(job_id)s;

-- name: policy_reconcile_add
-- Continuous jobs: a row for each matching device that has none yet (one device, one job, or
-- all of them). Held back when the job has a rollout config.
WITH added AS (
    INSERT INTO device_job_status (job_id, device_uuid, queued_at, released_at)
    SELECT e.job_id, d.uuid, %(now)s, CASE WHEN e.rollout_config IS NULL THEN %(now)s END
      FROM job_executions e
      JOIN devices d
        ON e.target_type = 'all'
        OR ((NOT e.target_filter ? 'device_type'
             OR d.device_type = e.target_filter ->> 'device_type')
            AND d.attributes @> (e.target_filter - 'device_type'))
     WHERE e.execution_type = 'continuous' AND e.status IN ('QUEUED', 'IN_PROGRESS')
       AND e.fanout_status = 'DONE' AND (e.end_at IS NULL OR e.end_at > %(now)s)
       AND (%(job_id)s::uuid IS NULL OR e.job_id = %(job_id)s)
       AND (%(device_uuid)s::uuid IS NULL OR d.uuid = %(device_uuid)s)
       AND NOT EXISTS (SELECT 1 FROM device_job_status s
                        WHERE s.job_id = e.job_id AND s.device_uuid = d.uuid)
    ON CONFLICT DO NOTHING
    RETURNING job_id, device_uuid, released_at
), totals AS (
    UPDATE job_executions e SET total_devices = e.total_devices + a.n
      FROM (SELECT job_id, count(*) AS n FROM added GROUP BY job_id) a
     WHERE e.job_id = a.job_id
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.queued', 'device_job', job_id || '/' || device_uuid,
           job_id, device_uuid,
           jsonb_build_object('to', 'QUEUED', 'reason', 'device matches a continuous job',
                              'execution_number', 1)
      FROM added
)
SELECT job_id, device_uuid, released_at IS NOT NULL AS released FROM added;

-- name: policy_reconcile_remove
-- Continuous jobs: QUEUED rows of devices that no longer match become REMOVED.
WITH removed AS (
    UPDATE device_job_status s
       SET status = 'REMOVED', completed_at = %(now)s, last_updated_at = %(now)s,
           version_number = s.version_number + 1, reason = 'device no longer matches the target'
      FROM job_executions e, devices d
     WHERE s.job_id = e.job_id AND d.uuid = s.device_uuid
       AND e.execution_type = 'continuous' AND e.target_type = 'group'
       AND e.status IN ('QUEUED', 'IN_PROGRESS') AND s.is_latest AND s.status = 'QUEUED'
       AND (%(job_id)s::uuid IS NULL OR e.job_id = %(job_id)s)
       AND (%(device_uuid)s::uuid IS NULL OR s.device_uuid = %(device_uuid)s)
       AND NOT ((NOT e.target_filter ? 'device_type'
                 OR d.device_type = e.target_filter ->> 'device_type')
                AND d.attributes @> (e.target_filter - 'device_type'))
    RETURNING s.job_id, s.device_uuid, s.execution_number, s.released_at
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.removed', 'device_job', job_id || '/' || device_uuid,
           job_id, device_uuid,
           jsonb_build_object('from', 'QUEUED', 'to', 'REMOVED',
                              'reason', 'device no longer matches the target',
                              'execution_number', execution_number)
      FROM removed
)
SELECT job_id, device_uuid, released_at IS NOT NULL AS released FROM removed;

-- name: policy_rematched_rows
-- Continuous jobs: devices whose latest row was REMOVED and that match again.
SELECT s.id
  FROM device_job_status s
  JOIN job_executions e ON e.job_id = s.job_id
  JOIN devices d ON d.uuid = s.device_uuid
 WHERE e.execution_type = 'continuous' AND e.target_type = 'group'
   AND e.status IN ('QUEUED', 'IN_PROGRESS') AND (e.end_at IS NULL OR e.end_at > %(now)s)
   AND s.is_latest AND s.status = 'REMOVED'
   AND (%(job_id)s::uuid IS NULL OR e.job_id = %(job_id)s)
   AND (%(device_uuid)s::uuid IS NULL OR s.device_uuid = %(device_uuid)s)
   AND (NOT e.target_filter ? 'device_type' OR d.device_type = e.target_filter ->> 'device_type')
   AND d.attributes @> (e.target_filter - 'device_type')
 LIMIT %(limit)s
   FOR UPDATE OF s SKIP LOCKED;

-- name: policy_retryable_rows
-- Current FAILED/TIMED_OUT rows of live jobs with retries left for their failure type under
-- their retry_config (see retry_allowed in migration 080).
SELECT d.id
  FROM job_executions e
  JOIN device_job_status d ON d.job_id = e.job_id
 WHERE e.retry_config IS NOT NULL AND e.status IN ('QUEUED', 'IN_PROGRESS')
   AND d.is_latest AND d.status IN ('FAILED', 'TIMED_OUT')
   AND retry_allowed(e.retry_config, d.status, d.execution_number, d.job_id, d.device_uuid)
 ORDER BY d.id LIMIT %(limit)s
   FOR UPDATE OF d SKIP LOCKED;

-- name: policy_supersede_rows
-- The rows given stop being their device's latest attempt (a new attempt follows).
UPDATE device_job_status SET is_latest = false
 WHERE id = ANY(%(ids)s) AND is_latest
RETURNING id, job_id, device_uuid, execution_number, status;

-- name: policy_insert_next_attempts
-- A new QUEUED attempt (execution_number + 1) for each superseded row, released at once.
WITH attempts AS (
    INSERT INTO device_job_status (job_id, device_uuid, execution_number, queued_at, released_at)
    SELECT job_id, device_uuid, execution_number + 1, %(now)s, %(now)s
      FROM unnest(%(job_ids)s::uuid[], %(device_uuids)s::uuid[], %(execution_numbers)s::int[],
                  %(previous_statuses)s::text[])
           AS r(job_id, device_uuid, execution_number, previous_status)
    RETURNING job_id, device_uuid, execution_number
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, %(action)s, 'device_job', a.job_id || '/' || a.device_uuid,
           a.job_id, a.device_uuid,
           jsonb_build_object('to', 'QUEUED', 'execution_number', a.execution_number,
                              'previous_status', r.previous_status)
      FROM attempts a
      JOIN unnest(%(job_ids)s::uuid[], %(device_uuids)s::uuid[], %(previous_statuses)s::text[])
           AS r(job_id, device_uuid, previous_status)
        ON r.job_id = a.job_id AND r.device_uuid = a.device_uuid
)
SELECT job_id, device_uuid, execution_number FROM attempts;

-- name: policy_abort_candidates
-- Live jobs with an abort config, with their per-status counts of current rows.
SELECT e.job_id, e.abort_config,
       coalesce((SELECT jsonb_object_agg(status, n)
                   FROM (SELECT c.status, sum(c.n) AS n FROM job_status_counts c
                          WHERE c.job_id = e.job_id GROUP BY c.status) per_status), '{}')
           AS counts
  FROM job_executions e
 WHERE e.abort_config IS NOT NULL AND e.status IN ('QUEUED', 'IN_PROGRESS');

-- name: policy_lock_live_job
-- Lock one live job before ending it; NULL when it already ended or another sweep holds it.
SELECT job_id, status FROM job_executions
 WHERE job_id = %(job_id)s AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
   FOR NO KEY UPDATE SKIP LOCKED;

-- name: policy_job_state
-- One execution's status and policy state: what the sweeps have done with it so far.
SELECT job_id, status, reason, execution_type, total_devices, parent_job_id, scheduled_for,
       schedule, scheduling_config, rollout_config, abort_config, timeout_config, retry_config,
       start_at, end_at, end_behavior, next_run_at, run_count, window_opens_at,
       window_closes_at, released_devices
  FROM job_executions
 WHERE job_id = %(job_id)s;

-- name: policy_set_template_policies
-- A template's default execution policies (each NULL when the template sets none).
UPDATE job_templates
   SET execution_type = %(execution_type)s, schedule = %(schedule)s,
       scheduling_config = %(scheduling_config)s, rollout_config = %(rollout_config)s,
       abort_config = %(abort_config)s, timeout_config = %(timeout_config)s,
       retry_config = %(retry_config)s
 WHERE id = %(id)s;
