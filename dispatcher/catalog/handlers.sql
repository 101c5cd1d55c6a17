-- name: insert_job_handler
-- A new handler script with the sha256 of its content; the name is unique.
INSERT INTO job_handlers (name, description, script_type, script_content, script_sha256,
                          permissions, default_args, created_by)
VALUES (%(name)s, %(description)s, %(script_type)s, %(script_content)s, %(script_sha256)s,
        %(permissions)s, %(default_args)s, %(created_by)s)
RETURNING id, name, description, script_type, script_content, script_sha256, permissions,
          default_args, created_by, created_at, updated_at;

-- name: get_job_handler
-- One handler by name, with its script.
SELECT id, name, description, script_type, script_content, script_sha256, permissions,
       default_args, created_by, created_at, updated_at
  FROM job_handlers WHERE name = %(name)s;

-- name: lock_job_handler
-- One handler, locked until the end of the transaction for an update or delete.
SELECT id, name, description, script_type, script_content, script_sha256, permissions,
       default_args, created_by, created_at, updated_at
  FROM job_handlers WHERE name = %(name)s FOR UPDATE;

-- name: list_job_handlers
-- A page of handlers by name, without their scripts (fetch one handler for its content).
SELECT id, name, description, script_type, script_sha256, permissions, default_args,
       created_by, created_at, updated_at
  FROM job_handlers
 ORDER BY name
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_job_handlers
-- How many handlers there are.
SELECT count(*) AS n FROM job_handlers;

-- name: update_job_handler
-- Replace every editable field of a handler.
UPDATE job_handlers
   SET description = %(description)s, script_type = %(script_type)s,
       script_content = %(script_content)s, script_sha256 = %(script_sha256)s,
       permissions = %(permissions)s, default_args = %(default_args)s, updated_at = now()
 WHERE name = %(name)s
RETURNING id, name, description, script_type, script_content, script_sha256, permissions,
          default_args, created_by, created_at, updated_at;

-- name: delete_job_handler
-- Remove a handler.
DELETE FROM job_handlers WHERE name = %(name)s;

-- name: get_device_job_handler
-- A handler by name, for a device one of whose pending or recently updated executions runs it
-- (by that name, or by its ".sh" twin: X.sh and X name one handler when only one exists).
SELECT h.name, h.script_type, h.script_content, h.script_sha256, h.permissions, h.default_args
  FROM job_handlers h
 WHERE h.name = %(name)s
   AND EXISTS (
       SELECT 1
         FROM device_job_status s JOIN job_executions e ON e.job_id = s.job_id
        WHERE s.device_uuid = %(device_uuid)s AND s.is_latest
          AND (s.status = ANY(%(pending)s)
               OR s.last_updated_at > now() - make_interval(secs => %(recent_s)s))
          AND (jsonb_path_exists(
                   e.job_document,
                   '$.steps[*] ? (@.type == "runHandler"
                                  && (@.input.handler == $name || @.input.handler == $twin))',
                   jsonb_build_object('name', %(name)s::text, 'twin', %(twin)s::text))
               OR jsonb_path_exists(
                   e.job_document,
                   '$.finalStep ? (@.type == "runHandler"
                                   && (@.input.handler == $name || @.input.handler == $twin))',
                   jsonb_build_object('name', %(name)s::text, 'twin', %(twin)s::text))));
