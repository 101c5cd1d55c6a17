-- What keeps a job open although none of its rows is pending: a failed row its retry_config
-- will queue again, or a continuous job that still takes new devices until its end time.

-- Whether a row that ended in p_status after p_execution_number attempts gets another one:
-- the criterion for the exact failure type wins over ALL.
CREATE FUNCTION retry_allowed(p_retry_config jsonb, p_status text, p_execution_number integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_execution_number <= (
        SELECT (c ->> 'number_of_retries')::integer
          FROM jsonb_array_elements(p_retry_config -> 'criteria_list') c
         WHERE c ->> 'failure_type' IN (p_status, 'ALL')
         ORDER BY c ->> 'failure_type' = 'ALL'
         LIMIT 1), false)
$$;

CREATE FUNCTION job_held_open(p_job_id uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM job_executions e
         WHERE e.job_id = p_job_id
           AND ((e.execution_type = 'continuous' AND (e.end_at IS NULL OR e.end_at > now()))
                OR (e.retry_config IS NOT NULL AND EXISTS (
                    SELECT 1 FROM device_job_status d
                     WHERE d.job_id = e.job_id AND d.is_latest
                       AND d.status IN ('FAILED', 'TIMED_OUT')
                       AND retry_allowed(e.retry_config, d.status, d.execution_number)))))
$$;

-- When the end behavior was applied, so the end-time sweep handles each job once.
ALTER TABLE job_executions ADD COLUMN end_applied_at timestamptz;
DROP INDEX job_executions_end_due_idx;
CREATE INDEX job_executions_end_due_idx ON job_executions (end_at)
    WHERE end_at IS NOT NULL AND end_applied_at IS NULL
      AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS');
