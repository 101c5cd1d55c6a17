-- name: insert_device
-- Register a device; its token is stored only as a hash.
INSERT INTO devices (uuid, device_name, device_type, attributes, token_hash)
VALUES (%(uuid)s, %(device_name)s, %(device_type)s, %(attributes)s, %(token_hash)s)
RETURNING uuid, device_name, device_type, attributes, created_at, updated_at, last_seen_at;
