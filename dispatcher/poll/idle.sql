-- name: listen_idle_devices
-- Receive the idle_devices notifications (see schema.sql) on this connection.
LISTEN idle_devices;

-- name: idle_devices_snapshot
-- Every device with no pending row (nothing to poll for), with its token hash.
SELECT v.uuid, v.token_hash
  FROM devices v
 WHERE NOT EXISTS (SELECT 1 FROM device_job_status d
                   WHERE d.device_uuid = v.uuid AND d.status IN ('QUEUED', 'IN_PROGRESS'));

-- name: idle_devices_listener_alive
-- The listener's check that its connection still works.
SELECT 1;
