-- Retries are counted per failure type, as each retry criterion says: "number_of_retries" for
-- FAILED, for TIMED_OUT, or for ALL failures. A device that failed once and then timed out has
-- used one FAILED retry and no TIMED_OUT one; before, every earlier attempt counted against
-- every criterion. An ALL criterion counts every failure retried so far.
--
-- The retries a device has used for a type are its superseded attempts of the job that ended
-- in that type. Fewer earlier attempts than the limit settle it without counting them.
CREATE FUNCTION retry_allowed(p_retry_config jsonb, p_status text, p_execution_number integer,
                              p_job_id uuid, p_device_uuid uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT CASE
                   WHEN p_execution_number - 1 < c.retries THEN true
                   ELSE (SELECT count(*)
                           FROM device_job_status d
                          WHERE d.device_uuid = p_device_uuid AND d.job_id = p_job_id
                            AND NOT d.is_latest
                            AND d.status = ANY(CASE WHEN c.failure_type = 'ALL'
                                                    THEN ARRAY['FAILED', 'TIMED_OUT']
                                                    ELSE ARRAY[c.failure_type] END)) < c.retries
               END
          FROM (SELECT criterion ->> 'failure_type' AS failure_type,
                       (criterion ->> 'number_of_retries')::integer AS retries
                  FROM jsonb_array_elements(p_retry_config -> 'criteria_list') criterion
                 WHERE criterion ->> 'failure_type' IN (p_status, 'ALL')
                 ORDER BY criterion ->> 'failure_type' = 'ALL'
                 LIMIT 1) c), false)
$$;

CREATE OR REPLACE FUNCTION job_held_open(p_job_id uuid)
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
                       AND retry_allowed(e.retry_config, d.status, d.execution_number,
                                         d.job_id, d.device_uuid)))))
$$;

DROP FUNCTION retry_allowed(jsonb, text, integer);
