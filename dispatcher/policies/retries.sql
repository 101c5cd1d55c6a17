-- name: retryable_rows
-- Current FAILED/TIMED_OUT rows of live jobs with retries left for their failure type under
-- their retry_config (see retry_allowed in schema.sql).
SELECT d.id
  FROM job_executions e
  JOIN device_job_status d ON d.job_id = e.job_id
 WHERE e.retry_config IS NOT NULL AND e.status IN ('QUEUED', 'IN_PROGRESS')
   AND d.is_latest AND d.status IN ('FAILED', 'TIMED_OUT')
   AND retry_allowed(e.retry_config, d.status, d.execution_number, d.job_id, d.device_uuid)
 ORDER BY d.id LIMIT %(limit)s
   FOR UPDATE OF d SKIP LOCKED;
