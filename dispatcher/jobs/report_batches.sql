-- name: report_device_jobs
-- The status reports one API process received within a few milliseconds, in one statement and
-- so one commit: report_device_job (reports.sql) for each of them, one answer row per report,
-- in the order given (n). Each column of the reports comes as one text array (the n-th
-- element of each is report n), decoded here: bytea as hex, jsonb as JSON text, sources as
-- comma-separated statuses. The batch holds at most one report per device and job. Device rows
-- are locked in id order and the jobs leaving QUEUED in job order, so two batches (or a batch
-- and a single report) sharing rows wait for each other and never deadlock; the counting
-- triggers already write their rows in key order. The job.started event names the reporter of
-- the first report that started the job.
WITH input AS MATERIALIZED (
    SELECT r.n, r.job_id::uuid AS job_id, r.device_uuid::uuid AS device_uuid,
           decode(r.token_hash, 'hex') AS token_hash, r.status,
           string_to_array(r.sources, ',') AS sources, r.starts::boolean AS starts,
           r.terminal::boolean AS terminal, r.expected_version::integer AS expected_version,
           r.step_timeout_minutes::integer AS step_timeout_minutes, r.actor,
           r.exit_code::integer AS exit_code, r.stdout,
           r.stdout_truncated::boolean AS stdout_truncated, r.stderr,
           r.stderr_truncated::boolean AS stderr_truncated, r.reason,
           r.executed_steps::integer AS executed_steps, r.failed_step,
           r.status_details::jsonb AS status_details
      FROM unnest(%(job_ids)s::text[], %(device_uuids)s::text[], %(token_hashes)s::text[],
                  %(statuses)s::text[], %(sources)s::text[], %(starts)s::text[],
                  %(terminals)s::text[], %(expected_versions)s::text[],
                  %(step_timeouts)s::text[], %(actors)s::text[], %(exit_codes)s::text[],
                  %(stdouts)s::text[], %(stdouts_truncated)s::text[], %(stderrs)s::text[],
                  %(stderrs_truncated)s::text[], %(reasons)s::text[],
                  %(executed_steps)s::text[], %(failed_steps)s::text[],
                  %(status_details)s::text[])
           WITH ORDINALITY AS r(job_id, device_uuid, token_hash, status, sources, starts,
                                terminal, expected_version, step_timeout_minutes, actor,
                                exit_code, stdout, stdout_truncated, stderr, stderr_truncated,
                                reason, executed_steps, failed_step, status_details, n)
), caller AS MATERIALIZED (
    SELECT i.n, v.uuid, v.device_name
      FROM input i
      JOIN devices v ON v.uuid = i.device_uuid
     WHERE i.token_hash IS NULL OR v.token_hash = i.token_hash
), target AS MATERIALIZED (
    SELECT c.n, d.id, d.status AS from_status, d.version_number AS from_version,
           d AS current_row, e.job_name, e.status AS job_status,
           make_interval(mins => (e.timeout_config ->> 'in_progress_timeout_minutes')::integer)
           AS job_timeout
      FROM caller c
      JOIN input i ON i.n = c.n
      JOIN device_job_status d
        ON d.job_id = i.job_id AND d.device_uuid = i.device_uuid AND d.is_latest
      JOIN job_executions e ON e.job_id = d.job_id
     ORDER BY d.id
       FOR UPDATE OF d
), moved AS (
    UPDATE device_job_status d
       SET status = i.status,
           version_number = d.version_number + 1,
           started_at = CASE WHEN i.starts THEN coalesce(d.started_at, now())
                             ELSE d.started_at END,
           completed_at = CASE WHEN i.terminal THEN now() END,
           last_updated_at = now(),
           exit_code = coalesce(i.exit_code, d.exit_code),
           stdout = coalesce(i.stdout, d.stdout),
           stdout_truncated = coalesce(i.stdout_truncated, d.stdout_truncated),
           stderr = coalesce(i.stderr, d.stderr),
           stderr_truncated = coalesce(i.stderr_truncated, d.stderr_truncated),
           reason = coalesce(i.reason, d.reason),
           executed_steps = coalesce(i.executed_steps, d.executed_steps),
           failed_step = coalesce(i.failed_step, d.failed_step),
           status_details = coalesce(i.status_details, d.status_details),
           timeout_at = CASE
               WHEN i.status <> 'IN_PROGRESS' THEN d.timeout_at
               WHEN i.step_timeout_minutes = -1
                   THEN coalesce(d.started_at, now()) + t.job_timeout
               WHEN i.step_timeout_minutes > 0
                   THEN least(coalesce(d.started_at, now()) + t.job_timeout,
                              now() + make_interval(mins => i.step_timeout_minutes))
               ELSE coalesce(d.timeout_at, coalesce(d.started_at, now()) + t.job_timeout)
           END
      FROM target t
      JOIN input i ON i.n = t.n
     WHERE d.id = t.id
       AND t.from_status = ANY(i.sources)
       AND (i.expected_version IS NULL OR t.from_version = i.expected_version)
    RETURNING t.n, d.id, d.job_id, d.device_uuid, d.status, d.version_number, d AS stored_row,
              t.from_status, i.actor
), queued_jobs AS (
    SELECT e.job_id
      FROM job_executions e
     WHERE e.job_id IN (SELECT m.job_id FROM moved m) AND e.status = 'QUEUED'
     ORDER BY e.job_id
       FOR UPDATE
), started AS (
    UPDATE job_executions e
       SET status = 'IN_PROGRESS', started_at = coalesce(e.started_at, now())
      FROM queued_jobs q
     WHERE e.job_id = q.job_id AND e.status = 'QUEUED'
    RETURNING e.job_id,
              (SELECT m.actor FROM moved m WHERE m.job_id = e.job_id ORDER BY m.n LIMIT 1)
              AS actor
), events AS (
    -- The devices' events in report order, then the jobs' (one INSERT, so in that order).
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT actor, action, target_type, target_id, job_id, device_uuid, details
      FROM (SELECT 1 AS kind, m.n, m.actor, 'device_job.status_changed' AS action,
                   'device_job' AS target_type,
                   device_job_target_id(m.job_id, m.device_uuid) AS target_id, m.job_id,
                   m.device_uuid,
                   jsonb_build_object('from', m.from_status, 'to', m.status,
                                      'version_number', m.version_number) AS details
              FROM moved m
            UNION ALL
            SELECT 2, 0, s.actor, 'job.started', 'job', s.job_id::text, s.job_id, NULL,
                   jsonb_build_object('from', 'QUEUED', 'to', 'IN_PROGRESS')
              FROM started s) e
     ORDER BY kind, n
)
SELECT i.n,
       c.uuid IS NOT NULL AS token_ok,
       CASE WHEN c.uuid IS NULL AND i.token_hash IS NOT NULL
            THEN token_holder_kind(i.token_hash) END AS token_kind,
       m.id IS NOT NULL AS moved,
       t.id IS NULL AND c.uuid IS NOT NULL AND EXISTS (
           SELECT 1 FROM device_job_status d
            WHERE d.job_id = i.job_id AND d.device_uuid = i.device_uuid AND d.is_latest
       ) AS row_changed,
       {{part:reported_row}}
  FROM input i
  LEFT JOIN caller c ON c.n = i.n
  LEFT JOIN target t ON t.n = i.n
  LEFT JOIN moved m ON m.n = i.n
  LEFT JOIN LATERAL (SELECT (coalesce(m.stored_row, t.current_row)).*) r ON true
 ORDER BY i.n;
