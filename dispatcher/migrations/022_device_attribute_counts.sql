-- Devices per (device_type, top-level attribute, scalar value), kept exact by triggers in the
-- same transaction as the change, so a group filter with one attribute, such as
-- {"environment": "production"} (optionally with a device_type), is counted from a few rows
-- instead of a GIN scan that visits every matching device. Only scalar values are counted: for
-- them containment (@>) is equality. Filters with several attributes, or an object or array
-- value, are still counted with the GIN index. Sharded like device_type_counts.
CREATE TABLE device_attribute_counts (
    attribute    text NOT NULL,
    value        jsonb NOT NULL,
    device_type  text NOT NULL,
    shard        smallint NOT NULL,
    n            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (attribute, value, device_type, shard)
);

INSERT INTO device_attribute_counts (attribute, value, device_type, shard, n)
SELECT a.key, a.value, d.device_type, 0, count(*)
  FROM devices d, jsonb_each(d.attributes) a
 WHERE jsonb_typeof(a.value) NOT IN ('object', 'array')
 GROUP BY a.key, a.value, d.device_type;

CREATE FUNCTION device_attribute_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO device_attribute_counts AS c (attribute, value, device_type, shard, n)
        SELECT a.key, a.value, r.device_type, (pg_backend_pid() % 16)::smallint, count(*)
          FROM new_rows r, jsonb_each(r.attributes) a
         WHERE jsonb_typeof(a.value) NOT IN ('object', 'array')
         GROUP BY a.key, a.value, r.device_type ORDER BY a.key, a.value, r.device_type
        ON CONFLICT (attribute, value, device_type, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO device_attribute_counts AS c (attribute, value, device_type, shard, n)
        SELECT a.key, a.value, r.device_type, (pg_backend_pid() % 16)::smallint, -count(*)
          FROM old_rows r, jsonb_each(r.attributes) a
         WHERE jsonb_typeof(a.value) NOT IN ('object', 'array')
         GROUP BY a.key, a.value, r.device_type ORDER BY a.key, a.value, r.device_type
        ON CONFLICT (attribute, value, device_type, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

-- A device whose attributes or type change moves its counts; row-level with a column list, so
-- updates that touch neither (last_seen_at on every report) never call it.
CREATE FUNCTION device_attribute_counts_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_attribute_counts AS c (attribute, value, device_type, shard, n)
    SELECT attribute, value, device_type, (pg_backend_pid() % 16)::smallint, sum(delta)
      FROM (SELECT a.key AS attribute, a.value, OLD.device_type AS device_type, -1 AS delta
              FROM jsonb_each(OLD.attributes) a
             WHERE jsonb_typeof(a.value) NOT IN ('object', 'array')
            UNION ALL
            SELECT a.key, a.value, NEW.device_type, 1
              FROM jsonb_each(NEW.attributes) a
             WHERE jsonb_typeof(a.value) NOT IN ('object', 'array')) d
     GROUP BY attribute, value, device_type HAVING sum(delta) <> 0
     ORDER BY attribute, value, device_type
    ON CONFLICT (attribute, value, device_type, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION device_attribute_counts_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM device_attribute_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_attribute_count_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_attribute_counts_apply();
CREATE TRIGGER devices_attribute_count_delete AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_attribute_counts_apply();
CREATE TRIGGER devices_attribute_count_update AFTER UPDATE OF device_type, attributes ON devices
    FOR EACH ROW WHEN (OLD.device_type IS DISTINCT FROM NEW.device_type
                       OR OLD.attributes IS DISTINCT FROM NEW.attributes)
    EXECUTE FUNCTION device_attribute_counts_move();
CREATE TRIGGER devices_attribute_count_truncate AFTER TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION device_attribute_counts_clear();
