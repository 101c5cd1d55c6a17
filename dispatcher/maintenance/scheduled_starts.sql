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
