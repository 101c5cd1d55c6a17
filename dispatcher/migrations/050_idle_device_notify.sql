-- API processes keep in memory which devices have no pending job (no QUEUED or IN_PROGRESS
-- row), with their token hashes, to answer most polls without a query (dispatcher/idle_devices.py).
-- These triggers tell them, on channel idle_devices, which devices to forget: every device that
-- may have got a pending row, or whose token changed or that was deleted. A notification is
-- delivered when its transaction commits; payloads are comma-separated device uuids, at most
-- 200 a notification (under PostgreSQL's 8000-byte payload limit), batched per statement.

CREATE FUNCTION notify_idle_devices(devices uuid[]) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('idle_devices', string_agg(d::text, ','))
      FROM (SELECT d, (row_number() OVER () - 1) / 200 AS batch
              FROM (SELECT DISTINCT d FROM unnest(devices) AS d) AS distinct_devices) AS numbered
     GROUP BY batch;
$$;

CREATE FUNCTION notify_idle_devices_queued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_idle_devices(ARRAY(
        SELECT device_uuid FROM new_rows WHERE status IN ('QUEUED', 'IN_PROGRESS')));
    RETURN NULL;
END;
$$;

-- Fan-out, retries and requeues insert pending rows, many a statement.
CREATE TRIGGER device_job_status_notify_queued AFTER INSERT ON device_job_status
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_idle_devices_queued();

CREATE FUNCTION notify_idle_device() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idle_devices', OLD.uuid::text);
    RETURN NULL;
END;
$$;

CREATE FUNCTION notify_idle_device_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idle_devices', NEW.device_uuid::text);
    RETURN NULL;
END;
$$;

-- The state table never moves a finished row back to pending; should anything, it is told.
-- Row-level with a WHEN, so the status reports (QUEUED -> IN_PROGRESS -> done) run no function.
CREATE TRIGGER device_job_status_notify_repending AFTER UPDATE OF status ON device_job_status
    FOR EACH ROW
    WHEN (OLD.status NOT IN ('QUEUED', 'IN_PROGRESS') AND NEW.status IN ('QUEUED', 'IN_PROGRESS'))
    EXECUTE FUNCTION notify_idle_device_job();

-- A token rotation (one device at a time) takes effect on the next poll.
CREATE TRIGGER devices_notify_token AFTER UPDATE OF token_hash ON devices
    FOR EACH ROW WHEN (OLD.token_hash IS DISTINCT FROM NEW.token_hash)
    EXECUTE FUNCTION notify_idle_device();

CREATE FUNCTION notify_idle_devices_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_idle_devices(ARRAY(SELECT uuid FROM old_rows));
    RETURN NULL;
END;
$$;

CREATE TRIGGER devices_notify_deleted AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_idle_devices_deleted();
