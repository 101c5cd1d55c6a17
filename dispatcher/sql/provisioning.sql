-- name: bulk_insert_devices
-- Register many devices in one statement. Each gets a random token that nobody holds; rotating
-- a device's token (POST /devices/:uuid/token) is how one is handed to a real device.
INSERT INTO devices (uuid, device_name, device_type, attributes, token_hash)
SELECT gen_random_uuid(), %(name_prefix)s || '-' || i, %(device_type)s, %(attributes)s,
       sha256(uuid_send(gen_random_uuid()))
  FROM generate_series(1, %(count)s) AS i;
