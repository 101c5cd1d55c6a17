-- name: insert_job_event
-- One audit-trail row: who did what to which thing.
INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
VALUES (%(actor)s, %(action)s, %(target_type)s, %(target_id)s, %(job_id)s, %(device_uuid)s,
        coalesce(%(details)s, '{}'::jsonb));

-- name: list_target_events
-- The audit trail of one thing, oldest first, paged.
SELECT id, occurred_at, actor, action, target_type, target_id, job_id, device_uuid, details,
       count(*) OVER () AS total
  FROM job_events
 WHERE target_type = %(target_type)s AND target_id = %(target_id)s
 ORDER BY id
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_target_events
-- How many events list_target_events pages through.
SELECT count(*) AS n FROM job_events
 WHERE target_type = %(target_type)s AND target_id = %(target_id)s;

-- name: count_job_events
-- How many events list_job_events pages through.
SELECT count(*) AS n FROM job_events WHERE job_id = %(job_id)s;

-- name: list_job_events
-- The audit trail of one job (the job and each of its devices), oldest first, paged.
SELECT id, occurred_at, actor, action, target_type, target_id, job_id, device_uuid, details,
       count(*) OVER () AS total
  FROM job_events
 WHERE job_id = %(job_id)s
 ORDER BY id
 LIMIT %(limit)s OFFSET %(offset)s;
