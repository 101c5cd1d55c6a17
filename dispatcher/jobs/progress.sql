-- name: list_job_executions
-- A page of executions, newest first, optionally of one status.
SELECT job_id, job_name, template_id, target_type, target_filter, target_group, execution_type,
       status, total_devices, fanout_status, reason, queued_at, started_at, completed_at, created_by
  FROM job_executions
 WHERE (%(status)s::text IS NULL OR status = %(status)s)
 ORDER BY id DESC
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_job_executions
-- How many executions list_job_executions pages through.
SELECT count(*) AS n FROM job_executions WHERE (%(status)s::text IS NULL OR status = %(status)s);

-- name: get_job_execution
-- One execution with its document, targets, execution policies and signed job.
SELECT job_id, job_name, template_id, job_document, signed_job, parameters, target_type,
       target_devices,
       target_filter, target_group, execution_type, status, total_devices, fanout_status, reason, queued_at,
       started_at, completed_at, created_by, parent_job_id, scheduled_for, schedule,
       scheduling_config, rollout_config, abort_config, timeout_config, retry_config,
       next_run_at, run_count, released_devices, stages, requires_approval
  FROM job_executions
 WHERE job_id = %(job_id)s;

-- name: list_execution_device_statuses
-- A page of the latest row of each device of a job, by device uuid, optionally of one status.
-- The page's devices are found first on an index alone (device_job_status_latest_idx, or
-- device_job_status_job_status_idx with a status), so the rows skipped by a deep offset are
-- index entries, not joined rows; only the page's own rows are read and joined.
WITH page AS (
    SELECT device_uuid
      FROM device_job_status
     WHERE job_id = %(job_id)s AND is_latest
       AND (%(status)s::text IS NULL OR status = %(status)s)
     ORDER BY device_uuid
     LIMIT %(limit)s OFFSET %(offset)s
)
SELECT d.device_uuid, v.device_name, d.status, d.execution_number, d.version_number,
       d.queued_at, d.started_at, d.completed_at, d.last_updated_at, d.exit_code, d.stdout,
       d.stderr, d.stdout_truncated, d.stderr_truncated, d.reason, d.executed_steps,
       d.failed_step, d.status_details
  FROM page
  JOIN device_job_status d
    ON d.job_id = %(job_id)s AND d.device_uuid = page.device_uuid AND d.is_latest
  JOIN devices v ON v.uuid = d.device_uuid
 ORDER BY d.device_uuid;

-- name: job_status_counts_by_status
-- Live device counts of one job by status: the shards of job_status_counts summed.
SELECT status, sum(n)::bigint AS n
  FROM job_status_counts
 WHERE job_id = %(job_id)s
 GROUP BY status;

-- name: job_status_counts_for_jobs
-- Live device counts by status for several jobs at once (a page of the executions list).
SELECT job_id, status, sum(n)::bigint AS n
  FROM job_status_counts
 WHERE job_id = ANY(%(job_ids)s)
 GROUP BY job_id, status;

-- name: job_execution_exists
-- Whether an execution exists (before reading something that belongs to it).
SELECT 1 AS found FROM job_executions WHERE job_id = %(job_id)s;

-- name: count_job_events
-- How many events list_job_events pages through.
SELECT count(*) AS n FROM job_events WHERE job_id = %(job_id)s;

-- name: list_job_events
-- The audit trail of one job (the job and each of its devices), oldest first, paged.
SELECT id, occurred_at, actor, action, target_type, target_id, job_id, device_uuid, details
  FROM job_events
 WHERE job_id = %(job_id)s
 ORDER BY id
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: recent_job_events
-- The newest events of one job, newest first, without a total (served by job_events_job_idx).
SELECT id, occurred_at, actor, action, target_type, target_id, job_id, device_uuid, details
  FROM job_events
 WHERE job_id = %(job_id)s
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: count_executions_by_status
-- How many executions are in each status (an index-only scan of job_executions_status_idx).
SELECT status, count(*) AS n FROM job_executions GROUP BY status;

-- name: live_job_device_counts
-- The devices of every live execution by status: the counter shards of those jobs summed.
SELECT c.status, sum(c.n)::bigint AS n
  FROM job_status_counts c
  JOIN job_executions e ON e.job_id = c.job_id
 WHERE e.status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
 GROUP BY c.status;

-- name: search_execution_devices
-- A page of a job's devices (latest rows) whose name contains a text, by device uuid; one row
-- more than the page tells whether there are more. A text of three characters or more is
-- looked up in devices_name_trgm_idx, so a rare name is found without reading the fleet.
SELECT d.device_uuid, v.device_name, d.status, d.execution_number, d.version_number,
       d.queued_at, d.started_at, d.completed_at, d.last_updated_at, d.exit_code,
       d.stdout_truncated, d.stderr_truncated, d.reason, d.executed_steps, d.failed_step
  FROM devices v
  JOIN device_job_status d ON d.device_uuid = v.uuid AND d.job_id = %(job_id)s AND d.is_latest
 WHERE v.device_name ILIKE '%%' || %(name_contains)s || '%%'
   AND (%(status)s::text IS NULL OR d.status = %(status)s)
 ORDER BY v.uuid
 LIMIT %(limit)s + 1 OFFSET %(offset)s;

-- name: history_pruned_before
-- Executions finished before this were removed by the retention sweep (none: nothing was).
SELECT pruned_before FROM history_prunes WHERE kind = 'executions';
