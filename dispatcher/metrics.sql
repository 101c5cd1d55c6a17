-- name: metrics_executions_by_status
-- Job executions per status, read at each /metrics scrape (a scan of the small status index).
SELECT status, count(*) AS n
  FROM job_executions
 GROUP BY status;

-- name: metrics_device_executions_by_status
-- Latest device executions per status, summed from the sharded counters the triggers keep exact
-- (one row per job, status and shard: far fewer rows than device_job_status itself).
SELECT status, sum(n)::bigint AS n
  FROM job_status_counts
 GROUP BY status;
