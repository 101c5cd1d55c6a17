-- Reading and moving one job's rows by status: the per-job device list with a status filter,
-- bulk cancel (QUEUED rows) and retry (failed rows), each paged by device uuid.
CREATE INDEX device_job_status_job_status_idx ON device_job_status (job_id, status, device_uuid)
    WHERE is_latest;

-- The per-job totals every rollup decision and every counter read starts from: the shards of
-- job_status_counts summed, failures being FAILED, TIMED_OUT and REJECTED.
CREATE FUNCTION job_status_totals(p_job_id uuid)
RETURNS TABLE (pending bigint, succeeded bigint, failures bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(n) FILTER (WHERE status IN ('QUEUED', 'IN_PROGRESS')), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'SUCCEEDED'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status IN ('FAILED', 'TIMED_OUT', 'REJECTED')), 0)::bigint
      FROM job_status_counts
     WHERE job_id = p_job_id
$$;
