-- name: mark_fanout_enqueued
-- A fan-out task for this execution was handed to the broker just now.
UPDATE job_executions SET fanout_enqueued_at = now() WHERE job_id = %(job_id)s;
