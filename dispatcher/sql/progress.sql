-- name: list_job_executions
-- A page of executions, newest first, optionally of one status.
SELECT job_id, job_name, template_id, target_type, target_filter, execution_type, status,
       total_devices, fanout_status, reason, queued_at, started_at, completed_at, created_by,
       count(*) OVER () AS total
  FROM job_executions
 WHERE (%(status)s::text IS NULL OR status = %(status)s)
 ORDER BY id DESC
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_job_executions
-- How many executions list_job_executions pages through.
SELECT count(*) AS n FROM job_executions WHERE (%(status)s::text IS NULL OR status = %(status)s);

-- name: get_job_execution
-- One execution with its document, targets and execution policies.
SELECT job_id, job_name, template_id, job_document, parameters, target_type, target_devices,
       target_filter, execution_type, status, total_devices, fanout_status, reason, queued_at,
       started_at, completed_at, created_by, parent_job_id, scheduled_for, schedule,
       scheduling_config, rollout_config, abort_config, timeout_config, retry_config,
       next_run_at, run_count, released_devices
  FROM job_executions
 WHERE job_id = %(job_id)s;

-- name: list_execution_device_statuses
-- A page of the latest row of each device of a job, by device uuid, optionally of one status.
SELECT d.device_uuid, v.device_name, d.status, d.execution_number, d.version_number,
       d.queued_at, d.started_at, d.completed_at, d.last_updated_at, d.exit_code, d.stdout,
       d.stderr, d.stdout_truncated, d.stderr_truncated, d.reason, d.executed_steps,
       d.failed_step, d.status_details
  FROM device_job_status d
  JOIN devices v ON v.uuid = d.device_uuid
 WHERE d.job_id = %(job_id)s AND d.is_latest
   AND (%(status)s::text IS NULL OR d.status = %(status)s)
 ORDER BY d.device_uuid
 LIMIT %(limit)s OFFSET %(offset)s;
