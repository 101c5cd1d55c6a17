-- name: insert_job_event
-- One audit-trail row: who did what to which thing.
INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
VALUES (%(actor)s, %(action)s, %(target_type)s, %(target_id)s, %(job_id)s, %(device_uuid)s,
        coalesce(%(details)s, '{}'::jsonb));
