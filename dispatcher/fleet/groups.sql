-- Named groups of devices: a stored filter (dynamic) or a list of devices (static).

-- name: insert_group
-- A new group; a second one of the same name is a conflict.
INSERT INTO device_groups (name, description, filter, created_by)
VALUES (%(name)s, %(description)s, %(filter)s, %(created_by)s)
RETURNING name, description, filter, created_by, created_at, updated_at;

-- name: get_group
-- One group by name.
SELECT name, description, filter, created_by, created_at, updated_at
  FROM device_groups WHERE name = %(name)s;

-- name: lock_group
-- One group, locked until the end of the transaction (an edit or a delete).
SELECT name, description, filter, created_by, created_at, updated_at
  FROM device_groups WHERE name = %(name)s FOR UPDATE;

-- name: list_groups
-- A page of groups by name.
SELECT name, description, filter, created_by, created_at, updated_at
  FROM device_groups ORDER BY name LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_groups
-- How many groups list_groups pages through.
SELECT count(*) AS n FROM device_groups;

-- name: update_group
-- Replace a group's description and filter.
UPDATE device_groups
   SET description = %(description)s, filter = %(filter)s, updated_at = now()
 WHERE name = %(name)s
RETURNING name, description, filter, created_by, created_at, updated_at;

-- name: set_group_members
-- Make a static group's members exactly these devices (unknown uuids are refused first).
WITH gone AS (
    DELETE FROM device_group_members
     WHERE group_name = %(name)s AND device_uuid <> ALL (%(device_uuids)s::uuid[])
)
INSERT INTO device_group_members (group_name, device_uuid)
SELECT %(name)s, u FROM unnest(%(device_uuids)s::uuid[]) AS u
ON CONFLICT DO NOTHING;

-- name: group_member_uuids
-- A static group's devices, by uuid.
SELECT device_uuid FROM device_group_members WHERE group_name = %(name)s ORDER BY device_uuid;

-- name: count_static_group_members
-- How many devices a static group holds.
SELECT count(*) AS n FROM device_group_members WHERE group_name = %(name)s;

-- name: active_jobs_of_group
-- Unfinished executions that target a group (a group in use cannot be deleted).
SELECT job_id, execution_type
  FROM job_executions
 WHERE target_group = %(name)s AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
 ORDER BY job_id;

-- name: delete_group
-- Remove a group; its member rows go with it.
DELETE FROM device_groups WHERE name = %(name)s;
