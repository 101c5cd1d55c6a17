-- name: insert_enrollment_token
-- A new enrollment token; only its hash is kept.
INSERT INTO enrollment_tokens (name, token_hash, expires_at, max_uses, device_type, attributes,
                               requires_acceptance, created_by)
VALUES (%(name)s, %(token_hash)s, %(expires_at)s, %(max_uses)s, %(device_type)s,
        %(attributes)s, %(requires_acceptance)s, %(created_by)s)
RETURNING id, name, expires_at, max_uses, uses, device_type, attributes, requires_acceptance,
          created_by, created_at, revoked_at;

-- name: list_enrollment_tokens
-- A page of enrollment tokens, newest first, without hashes.
SELECT id, name, expires_at, max_uses, uses, device_type, attributes, requires_acceptance,
       created_by, created_at, revoked_at
  FROM enrollment_tokens ORDER BY id DESC
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_enrollment_tokens
-- How many enrollment tokens there are.
SELECT count(*) AS n FROM enrollment_tokens;

-- name: revoke_enrollment_token
-- Revoke by id; revoking twice keeps the first time.
UPDATE enrollment_tokens SET revoked_at = coalesce(revoked_at, now())
 WHERE id = %(id)s
RETURNING id, name, expires_at, max_uses, uses, device_type, attributes, requires_acceptance,
          created_by, created_at, revoked_at;

-- name: use_enrollment_token
-- Spend one use of a live token in one statement: two devices racing for its last use cannot
-- both get it. No row: unknown, revoked, expired or used up (find_enrollment_token says which).
UPDATE enrollment_tokens SET uses = uses + 1
 WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
   AND (expires_at IS NULL OR expires_at > now())
   AND (max_uses IS NULL OR uses < max_uses)
RETURNING id, name, device_type, attributes, requires_acceptance;

-- name: find_enrollment_token
-- A token by its hash, to say why it was refused.
SELECT revoked_at, expires_at <= now() AS expired, max_uses, uses
  FROM enrollment_tokens WHERE token_hash = %(token_hash)s;

-- name: lock_device_by_hardware
-- The device enrolled from this hardware, locked while it is given a new token.
SELECT uuid, device_name FROM devices WHERE hardware_id = %(hardware_id)s FOR UPDATE;

-- name: insert_enrolled_device
-- A device that enrolled: registered like any other, with the hardware it enrolled from.
INSERT INTO devices (uuid, device_name, device_type, attributes, token_hash, hardware_id)
VALUES (%(uuid)s, %(device_name)s, %(device_type)s, %(attributes)s, %(token_hash)s,
        %(hardware_id)s)
RETURNING uuid, device_name, device_type, attributes, created_at, updated_at, last_seen_at;

-- name: set_enrolled_device_token
-- The same hardware enrolled again: its device keeps everything but gets a new token.
UPDATE devices SET token_hash = %(token_hash)s, updated_at = now()
 WHERE uuid = %(uuid)s
RETURNING uuid, device_name, device_type, attributes, created_at, updated_at, last_seen_at;

-- name: upsert_pending_enrollment
-- A device waiting for acceptance; the same hardware asking again keeps its uuid and gets the
-- new token and name.
INSERT INTO pending_enrollments (uuid, hardware_id, device_name, device_type, attributes,
                                 token_hash, enrollment_token_id)
VALUES (%(uuid)s, %(hardware_id)s, %(device_name)s, %(device_type)s, %(attributes)s,
        %(token_hash)s, %(enrollment_token_id)s)
ON CONFLICT (hardware_id) DO UPDATE
   SET device_name = excluded.device_name, device_type = excluded.device_type,
       attributes = excluded.attributes, token_hash = excluded.token_hash,
       enrollment_token_id = excluded.enrollment_token_id, requested_at = now()
RETURNING uuid, device_name, device_type, attributes, requested_at;

-- name: list_pending_enrollments
-- Devices waiting for an operator, oldest first, with the token they enrolled with.
SELECT p.uuid, p.device_name, p.device_type, p.attributes, p.requested_at,
       t.name AS enrollment_token_name
  FROM pending_enrollments p LEFT JOIN enrollment_tokens t ON t.id = p.enrollment_token_id
 ORDER BY p.requested_at, p.uuid
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_pending_enrollments
-- How many devices wait for an operator.
SELECT count(*) AS n FROM pending_enrollments;

-- name: take_pending_enrollment
-- Remove a pending enrollment (accepted or rejected) and answer it, token hash included.
DELETE FROM pending_enrollments WHERE uuid = %(uuid)s
RETURNING uuid, hardware_id, device_name, device_type, attributes, token_hash;
