-- What a bearer token is, by its hash: 'device', or the role of a live admin/viewer token; NULL
-- when it is unknown or revoked. The device endpoints' statements call it when the token is
-- not the device's own, so one round trip tells a 401 (unknown) from a 403 (another caller's).
CREATE FUNCTION token_holder_kind(p_token_hash bytea) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT 'device' FROM devices WHERE token_hash = p_token_hash
    UNION ALL
    SELECT role FROM api_tokens WHERE token_hash = p_token_hash AND revoked_at IS NULL
    LIMIT 1
$$;
