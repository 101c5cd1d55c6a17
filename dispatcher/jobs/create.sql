-- name: insert_job_execution
-- A new execution with its policies, before its fan-out: total_devices is the count of devices
-- targeted now. A staged job's rollout starts RUNNING, or WAITING_FOR_APPROVAL (a recurring
-- parent's runs are staged, not the parent).
INSERT INTO job_executions (
    job_id, template_id, job_name, job_document, job_document_signature, signed_job, parameters,
    target_type,
    target_devices, target_filter, target_group, total_devices, created_by, status, fanout_status, execution_type, schedule,
    scheduling_config, rollout_config, abort_config, timeout_config, retry_config, start_at,
    end_at, end_behavior, next_run_at, window_opens_at, window_closes_at, stages,
    requires_approval, rollout_state)
VALUES (
    %(job_id)s, %(template_id)s, %(job_name)s, %(job_document)s, %(job_document_signature)s,
    %(signed_job)s, %(parameters)s,
    %(target_type)s, %(target_devices)s, %(target_filter)s, %(target_group)s, %(total_devices)s, %(created_by)s,
    %(status)s, %(fanout_status)s, %(execution_type)s, %(schedule)s, %(scheduling_config)s,
    %(rollout_config)s, %(abort_config)s, %(timeout_config)s, %(retry_config)s, %(start_at)s,
    %(end_at)s, %(end_behavior)s, %(next_run_at)s, %(window_opens_at)s, %(window_closes_at)s,
    %(stages)s, %(requires_approval)s,
    CASE WHEN %(stages)s::jsonb IS NULL OR %(execution_type)s = 'recurring' THEN NULL
         WHEN %(requires_approval)s THEN 'WAITING_FOR_APPROVAL' ELSE 'RUNNING' END)
RETURNING job_id, job_name, template_id, status, target_type, target_filter, target_group,
          execution_type,
          total_devices, fanout_status, queued_at, created_by, requires_approval,
          rollout_state;

-- name: insert_device_signatures
-- A signed device-list execution's signature for each of its devices, in one statement.
INSERT INTO job_device_signatures (job_id, device_uuid, signature)
SELECT %(job_id)s, device_uuid, signature
  FROM unnest(%(devices)s::uuid[], %(signatures)s::text[]) AS s (device_uuid, signature);
