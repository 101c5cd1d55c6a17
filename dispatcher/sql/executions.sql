-- name: insert_job_execution
-- A new execution, before its fan-out: total_devices is the count of devices targeted now.
INSERT INTO job_executions (job_id, template_id, job_name, job_document, parameters,
                            target_type, target_devices, target_filter, execution_type,
                            total_devices, created_by)
VALUES (%(job_id)s, %(template_id)s, %(job_name)s, %(job_document)s, %(parameters)s,
        %(target_type)s, %(target_devices)s, %(target_filter)s, %(execution_type)s,
        %(total_devices)s, %(created_by)s)
RETURNING job_id, job_name, template_id, status, target_type, target_filter, execution_type,
          total_devices, fanout_status, queued_at, created_by;
