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
