-- Recurring jobs: one run per parent and cron slot, and the list of a parent's runs.

-- name: due_recurring_jobs
-- Recurring parents with a slot due.
SELECT job_id FROM job_executions
 WHERE execution_type = 'recurring' AND status = 'SCHEDULED' AND next_run_at <= %(now)s
 ORDER BY next_run_at LIMIT %(limit)s;

-- name: lock_recurring_job
-- Lock one due recurring parent; a second beat's sweep skips it.
SELECT job_id, schedule, next_run_at, run_count, end_at, scheduling_config, total_devices
  FROM job_executions
 WHERE job_id = %(job_id)s AND execution_type = 'recurring' AND status = 'SCHEDULED'
   AND next_run_at <= %(now)s
   FOR NO KEY UPDATE SKIP LOCKED;

-- name: insert_run
-- The run of a recurring parent for one slot; the (parent_job_id, scheduled_for) unique index
-- makes a second insert for the same slot a no-op, whoever tries it.
INSERT INTO job_executions (
    job_id, parent_job_id, scheduled_for, template_id, job_name, job_document,
    job_document_signature, signed_job, parameters, target_type, target_devices, target_filter,
    target_group, execution_type, status, total_devices,
    scheduling_config, rollout_config, abort_config, timeout_config, retry_config,
    window_opens_at, window_closes_at, queued_at, created_by, stages, requires_approval,
    rollout_state)
SELECT %(run_job_id)s, p.job_id, %(scheduled_for)s, p.template_id, p.job_name, p.job_document,
       p.job_document_signature, p.signed_job, p.parameters, p.target_type, p.target_devices, p.target_filter,
       p.target_group, 'oneTime', 'QUEUED',
       %(total_devices)s, p.scheduling_config, p.rollout_config, p.abort_config,
       p.timeout_config, p.retry_config, %(window_opens_at)s, %(window_closes_at)s, %(now)s,
       p.created_by, p.stages, p.requires_approval,
       CASE WHEN p.stages IS NULL THEN NULL
            WHEN p.requires_approval THEN 'WAITING_FOR_APPROVAL' ELSE 'RUNNING' END
  FROM job_executions p
 WHERE p.job_id = %(parent_job_id)s
ON CONFLICT (parent_job_id, scheduled_for) WHERE parent_job_id IS NOT NULL DO NOTHING
RETURNING job_id, scheduled_for;

-- name: advance_schedule
-- After a firing: the next slot, one more run, and SUCCEEDED once the schedule has run out.
UPDATE job_executions
   SET next_run_at = %(next_run_at)s,
       run_count = run_count + %(fired)s,
       status = CASE WHEN %(next_run_at)s::timestamptz IS NULL THEN 'SUCCEEDED' ELSE status END,
       completed_at = CASE WHEN %(next_run_at)s::timestamptz IS NULL THEN %(now)s END
 WHERE job_id = %(job_id)s
RETURNING job_id, status, run_count, next_run_at;

-- name: count_runs
-- How many runs policy_list_runs pages through.
SELECT count(*) AS n FROM job_executions WHERE parent_job_id = %(parent_job_id)s;

-- name: list_runs
-- The runs of a recurring parent, newest slot first, paged.
SELECT job_id, job_name, status, scheduled_for, total_devices, queued_at, started_at,
       completed_at
  FROM job_executions
 WHERE parent_job_id = %(parent_job_id)s
 ORDER BY scheduled_for DESC
 LIMIT %(limit)s OFFSET %(offset)s;
