-- Portal sign-ins, kept on the server so that they can end there: signing out, revoking the
-- token and changing ADMIN_TOKEN end them. The browser's cookie holds a random session secret;
-- only its SHA-256 is stored, so a copy of this table signs no one in.
CREATE TABLE portal_sessions (
    secret_hash bytea PRIMARY KEY,
    -- The admin or viewer token signed in with; NULL for the bootstrap ADMIN_TOKEN.
    api_token_id integer REFERENCES api_tokens (id) ON DELETE CASCADE,
    -- For ADMIN_TOKEN sessions: an HMAC of that token (not the token's hash, which would be
    -- a credential), so that changing ADMIN_TOKEN ends them.
    bootstrap_fingerprint bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((api_token_id IS NULL) <> (bootstrap_fingerprint IS NULL))
);
CREATE INDEX portal_sessions_api_token_id ON portal_sessions (api_token_id);
CREATE INDEX portal_sessions_last_seen_at ON portal_sessions (last_seen_at);
