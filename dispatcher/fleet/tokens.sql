-- name: insert_api_token
-- A new admin or viewer token; only its hash is kept.
INSERT INTO api_tokens (name, role, token_hash, created_by)
VALUES (%(name)s, %(role)s, %(token_hash)s, %(created_by)s)
RETURNING id, name, role, created_by, created_at, last_used_at, revoked_at;

-- name: list_api_tokens
-- Every token, newest first, without hashes.
SELECT id, name, role, created_by, created_at, last_used_at, revoked_at
  FROM api_tokens ORDER BY id DESC;

-- name: revoke_api_token
-- Revoke by id; revoking twice keeps the first time.
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
 WHERE id = %(id)s RETURNING id, name, role, revoked_at;

-- name: find_principal
-- Who owns this token hash: a device, or a live admin/viewer token. One round trip per request.
SELECT 'device' AS kind, uuid::text AS name, uuid AS device_uuid
  FROM devices WHERE token_hash = %(token_hash)s
UNION ALL
SELECT role, name, NULL FROM api_tokens WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
LIMIT 1;

-- name: touch_api_token
-- Note that an admin or viewer token was used; at most once a minute, whichever process asks.
UPDATE api_tokens SET last_used_at = now()
 WHERE token_hash = %(token_hash)s
   AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %(every_s)s));

-- name: device_token_verdict
-- Whether a token hash is this device's own, and when not, what it is (token_holder_kind): the
-- status report's check before its body is read, for a token this process has not verified.
SELECT v.uuid IS NOT NULL AS token_ok,
       CASE WHEN v.uuid IS NULL THEN token_holder_kind(%(token_hash)s) END AS token_kind
  FROM (SELECT) a
  LEFT JOIN devices v ON v.uuid = %(device_uuid)s AND v.token_hash = %(token_hash)s;
