-- name: insert_device
-- Register a device; its token is stored only as a hash.
INSERT INTO devices (uuid, device_name, device_type, attributes, token_hash)
VALUES (%(uuid)s, %(device_name)s, %(device_type)s, %(attributes)s, %(token_hash)s)
RETURNING uuid, device_name, device_type, attributes, created_at, updated_at, last_seen_at,
       inventory, inventory_updated_at;

-- name: get_device
-- One device, without its token hash.
SELECT uuid, device_name, device_type, attributes, created_at, updated_at, last_seen_at,
       inventory, inventory_updated_at
  FROM devices WHERE uuid = %(uuid)s;

-- name: lock_device
-- One device, locked until the end of the transaction so a change can compare before and after.
SELECT uuid, device_name, device_type, attributes, created_at, updated_at, last_seen_at,
       inventory, inventory_updated_at
  FROM devices WHERE uuid = %(uuid)s FOR UPDATE;

-- name: list_devices
-- A page of the devices a filter matches, by uuid.
SELECT d.uuid, d.device_name, d.device_type, d.attributes, d.created_at, d.updated_at,
       d.last_seen_at, d.inventory, d.inventory_updated_at
  FROM devices d
 WHERE {{device_filter}}
 ORDER BY d.uuid
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: update_device
-- Replace a device's name, type and attributes.
UPDATE devices
   SET device_name = %(device_name)s, device_type = %(device_type)s,
       attributes = %(attributes)s, updated_at = now()
 WHERE uuid = %(uuid)s
RETURNING uuid, device_name, device_type, attributes, created_at, updated_at, last_seen_at,
       inventory, inventory_updated_at;

-- name: count_device_job_statuses
-- How many job status rows (all executions) a device has; deleting the device removes them.
SELECT count(*) AS n FROM device_job_status WHERE device_uuid = %(uuid)s;

-- name: device_pending_jobs
-- The jobs in which a device is still QUEUED or IN_PROGRESS: deleting the device may leave
-- each of them with nothing pending, so they are rolled up after the delete.
SELECT job_id
  FROM device_job_status
 WHERE device_uuid = %(uuid)s AND is_latest AND status IN ('QUEUED', 'IN_PROGRESS');

-- name: delete_device
-- Remove a device; its job status rows go with it (ON DELETE CASCADE).
DELETE FROM devices WHERE uuid = %(uuid)s;

-- name: set_device_token
-- Replace a device's token hash: the old token stops working at commit.
UPDATE devices SET token_hash = %(token_hash)s, updated_at = now()
 WHERE uuid = %(uuid)s
RETURNING uuid;
