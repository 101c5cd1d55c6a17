-- name: abort_candidates
-- Live jobs with an abort config, with their per-status counts of current rows.
SELECT e.job_id, e.abort_config,
       coalesce((SELECT jsonb_object_agg(status, n)
                   FROM (SELECT c.status, sum(c.n) AS n FROM job_status_counts c
                          WHERE c.job_id = e.job_id GROUP BY c.status) per_status), '{}')
           AS counts
  FROM job_executions e
 WHERE e.abort_config IS NOT NULL AND e.status IN ('QUEUED', 'IN_PROGRESS');

-- name: lock_live_job
-- Lock one live job before ending it; NULL when it already ended or another sweep holds it.
SELECT job_id, status FROM job_executions
 WHERE job_id = %(job_id)s AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
   FOR NO KEY UPDATE SKIP LOCKED;
