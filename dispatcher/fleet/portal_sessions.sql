-- name: insert_portal_session
-- A new portal sign-in with a live admin or viewer token (by its hash); nothing when it is not.
WITH token AS (
    SELECT id, role, name FROM api_tokens
     WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
), started AS (
    INSERT INTO portal_sessions (secret_hash, api_token_id)
    SELECT %(secret_hash)s, id FROM token
)
SELECT role, name FROM token;

-- name: insert_bootstrap_portal_session
-- A new portal sign-in with the bootstrap ADMIN_TOKEN (known by a fingerprint only).
INSERT INTO portal_sessions (secret_hash, bootstrap_fingerprint)
VALUES (%(secret_hash)s, %(bootstrap_fingerprint)s);

-- name: find_portal_session
-- The live session with this secret hash: its token's role and name (NULL ones for ADMIN_TOKEN
-- sessions), or nothing when it ended, its token was revoked or it went unused too long.
SELECT s.api_token_id, s.bootstrap_fingerprint, t.role, t.name,
       s.last_seen_at < now() - make_interval(secs => %(touch_every_s)s) AS stale
  FROM portal_sessions s
  LEFT JOIN api_tokens t ON t.id = s.api_token_id
 WHERE s.secret_hash = %(secret_hash)s
   AND s.last_seen_at > now() - make_interval(secs => %(idle_s)s)
   AND (s.api_token_id IS NULL OR t.revoked_at IS NULL);

-- name: touch_portal_session
-- Note that a session was used (at most once a minute), which keeps it from expiring.
UPDATE portal_sessions SET last_seen_at = now() WHERE secret_hash = %(secret_hash)s;

-- name: delete_portal_session
-- Sign out: the session ends for every copy of its cookie.
DELETE FROM portal_sessions WHERE secret_hash = %(secret_hash)s;

-- name: delete_idle_portal_sessions
-- Forget sessions unused for longer than they may be, at each sign-in.
DELETE FROM portal_sessions WHERE last_seen_at < now() - make_interval(secs => %(idle_s)s);
