-- Devices per device_type, kept exact by triggers in the same transaction as the change, so
-- "how many devices does target_type all (or a device_type group) reach" is a read of a few
-- rows instead of a count over the whole fleet. Split over shards like job_status_counts, so
-- concurrent registrations do not queue on one row; readers sum the shards.
CREATE TABLE device_type_counts (
    device_type  text NOT NULL,
    shard        smallint NOT NULL,
    n            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (device_type, shard)
);

INSERT INTO device_type_counts (device_type, shard, n)
SELECT device_type, 0, count(*) FROM devices GROUP BY device_type;

CREATE FUNCTION device_type_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO device_type_counts AS c (device_type, shard, n)
        SELECT device_type, (pg_backend_pid() % 16)::smallint, count(*)
          FROM new_rows GROUP BY device_type ORDER BY device_type
        ON CONFLICT (device_type, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO device_type_counts AS c (device_type, shard, n)
        SELECT device_type, (pg_backend_pid() % 16)::smallint, -count(*)
          FROM old_rows GROUP BY device_type ORDER BY device_type
        ON CONFLICT (device_type, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

-- A device changing type moves one count; row-level with a column list, so the frequent
-- updates that do not touch device_type (last_seen_at on every report) never call it.
CREATE FUNCTION device_type_counts_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_type_counts AS c (device_type, shard, n)
    VALUES (OLD.device_type, (pg_backend_pid() % 16)::smallint, -1),
           (NEW.device_type, (pg_backend_pid() % 16)::smallint, 1)
    ON CONFLICT (device_type, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_type_count_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_type_counts_apply();
CREATE TRIGGER devices_type_count_delete AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_type_counts_apply();
CREATE TRIGGER devices_type_count_update AFTER UPDATE OF device_type ON devices
    FOR EACH ROW WHEN (OLD.device_type IS DISTINCT FROM NEW.device_type)
    EXECUTE FUNCTION device_type_counts_move();

CREATE FUNCTION device_type_counts_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM device_type_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_type_count_truncate AFTER TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION device_type_counts_clear();
