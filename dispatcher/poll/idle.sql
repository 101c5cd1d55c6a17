-- name: listen_idle_devices
-- Receive the idle_devices notifications (see schema.sql) on this connection.
LISTEN idle_devices;

-- name: known_devices_snapshot
-- Every device (its uuid's 16 bytes, the listener's key) with its token hash, and whether it is
-- idle (no pending row: nothing to poll for). Read through a cursor, page by page.
SELECT uuid_send(v.uuid), v.token_hash,
       NOT EXISTS (SELECT 1 FROM device_job_status d
                   WHERE d.device_uuid = v.uuid AND d.status IN ('QUEUED', 'IN_PROGRESS'))
  FROM devices v;

-- name: idle_devices_listener_alive
-- The listener's check that its connection still works.
SELECT 1;
