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
