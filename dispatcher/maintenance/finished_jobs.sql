-- name: finished_jobs_not_completed
-- Active jobs whose fan-out is done and none of whose latest rows is pending, unless a retry or
-- a continuous target holds them open: what complete_job would complete.
SELECT e.job_id
  FROM job_executions e
 CROSS JOIN LATERAL job_status_totals(e.job_id) t
 WHERE e.status IN ('QUEUED', 'IN_PROGRESS') AND e.fanout_status = 'DONE' AND t.pending = 0
   AND NOT job_held_open(e.job_id)
 ORDER BY e.id
 LIMIT %(limit)s;
