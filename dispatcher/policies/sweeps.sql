-- The set-based statements behind the policy sweeps: starting scheduled jobs, timeouts, end
-- times, maintenance windows. Every statement takes its clock as %(now)s, and every row it
-- moves gets its job_events row in the same statement.

-- name: start_due_jobs
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

-- name: time_out_overdue
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
    SELECT %(actor)s, 'device_job.timed_out', 'device_job', device_job_target_id(job_id, device_uuid),
           job_id, device_uuid,
           jsonb_build_object('from', source, 'to', 'TIMED_OUT', 'reason', %(reason)s,
                              'execution_number', execution_number, 'timeout_at', timeout_at)
      FROM timed_out
)
SELECT job_id, count(*)::integer AS n FROM timed_out GROUP BY job_id;

-- name: jobs_past_end
-- Live jobs whose end time has passed, locked so one sweep handles each.
SELECT job_id, execution_type, status, end_behavior, end_at
  FROM job_executions
 WHERE end_at IS NOT NULL AND end_at <= %(now)s AND end_applied_at IS NULL
   AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
 ORDER BY end_at LIMIT %(limit)s
   FOR NO KEY UPDATE SKIP LOCKED;

-- name: mark_end_applied
-- The job's end behavior has been applied.
UPDATE job_executions SET end_applied_at = %(now)s WHERE job_id = %(job_id)s;

-- name: ended_jobs_holding_rows
-- Jobs past their end that stopped their rollout and still hold back rows (a fan-out that
-- was still running at the end time added them).
SELECT DISTINCT e.job_id
  FROM job_executions e
  JOIN device_job_status d ON d.job_id = e.job_id AND d.released_at IS NULL AND d.status = 'QUEUED'
 WHERE e.rollout_config IS NOT NULL AND e.end_at <= %(now)s
   AND e.status IN ('QUEUED', 'IN_PROGRESS');

-- name: remove_unreleased
-- A stopped rollout: the rows never released are REMOVED (their devices never saw the job).
WITH removed AS (
    UPDATE device_job_status d
       SET status = 'REMOVED', completed_at = %(now)s, last_updated_at = %(now)s,
           version_number = d.version_number + 1, reason = %(reason)s
     WHERE d.job_id = %(job_id)s AND d.released_at IS NULL AND d.status = 'QUEUED'
    RETURNING d.job_id, d.device_uuid, d.execution_number
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.removed', 'device_job', device_job_target_id(job_id, device_uuid),
           job_id, device_uuid,
           jsonb_build_object('from', 'QUEUED', 'to', 'REMOVED', 'reason', %(reason)s,
                              'execution_number', execution_number)
      FROM removed
)
SELECT count(*)::integer AS n FROM removed;

-- name: windows_to_advance
-- Live jobs whose current maintenance window has closed: their next window is due.
SELECT job_id, scheduling_config
  FROM job_executions
 WHERE window_closes_at <= %(now)s AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS');

-- name: claim_opened_windows
-- Released jobs whose current window is open and whose devices have not been nudged for it:
-- claimed by recording the window, so a second beat running the sweep claims nothing.
UPDATE job_executions
   SET window_nudged_for = window_opens_at
 WHERE window_closes_at > %(now)s AND window_opens_at <= %(now)s
   AND status IN ('QUEUED', 'IN_PROGRESS')
   AND window_nudged_for IS DISTINCT FROM window_opens_at
RETURNING job_id;

-- name: set_window
-- The current or next maintenance window of one job.
UPDATE job_executions
   SET window_opens_at = %(window_opens_at)s, window_closes_at = %(window_closes_at)s
 WHERE job_id = %(job_id)s;
