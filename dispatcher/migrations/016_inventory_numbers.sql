-- Inventory numbers: every number a device's inventory holds, one row per leaf, indexed on
-- (path id, value), so that a range of one numeric fact ("inventory.disk_free_mb": {"$gte": 500})
-- is counted by an index-only scan instead of reading the jsonb of every device.
--
-- Reading a key out of each device's inventory costs about three times a bare sequential scan
-- of the devices table, whatever the jsonb operator; an index-only scan of (path id, value) reads
-- some 34 bytes a device. The rows follow the inventory by triggers, as the fact signatures do:
-- a report that changes no number rewrites none of them.
--
-- A leaf is a number reached through objects only (a path of keys), which is exactly what a
-- filter's comparison reads: a number inside a list is not a value of its path
-- (dispatcher.fleet.filters.number_range). Values are numeric, as jsonb compares them.

-- The number leaves of an inventory: (path, value) for each number reached through objects.
CREATE FUNCTION inventory_number_leaves(inventory jsonb) RETURNS TABLE (path text[], value numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH RECURSIVE member (path, value) AS (
        SELECT ARRAY[e.key], e.value
          FROM jsonb_each(CASE WHEN jsonb_typeof(inventory) = 'object' THEN inventory
                               ELSE '{}'::jsonb END) AS e
        UNION ALL
        SELECT m.path || e.key, e.value
          FROM member m
         CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(m.value) = 'object' THEN m.value
                                            ELSE '{}'::jsonb END) AS e
    )
    SELECT m.path, m.value::numeric FROM member m WHERE jsonb_typeof(m.value) = 'number'
$$;

-- Each path a number was ever reported at, by a small id: the (path_id, value) index of a
-- fleet's free disk is then some 34 bytes a device, where the path itself (an array) took 73.
-- Paths are never deleted (a device that reported one may report it again); a device reporting
-- ever new keys adds at most 100 a report.
CREATE TABLE inventory_number_paths (
    id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path  text[] NOT NULL UNIQUE
);

-- Narrow and written only when a number changes. A device's rows go with it and follow a
-- changed uuid by the foreign key (added after the backfill below).
CREATE TABLE device_inventory_numbers (
    device_uuid  uuid NOT NULL,
    path_id      integer NOT NULL,
    value        numeric NOT NULL,
    PRIMARY KEY (device_uuid, path_id)
);
CREATE INDEX device_inventory_numbers_range_idx ON device_inventory_numbers (path_id, value);

-- Devices inserted by a statement, set-based over its transition table. New paths are added
-- first, only the missing ones (an insert that meets a conflict would still take an id); one
-- that another transaction adds at the same time is waited for, and the next statement (read
-- committed) sees it.
CREATE FUNCTION inventory_numbers_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inventory_number_paths (path)
    SELECT DISTINCT l.path
      FROM new_rows r
     CROSS JOIN LATERAL inventory_number_leaves(r.inventory) l
     WHERE NOT EXISTS (SELECT 1 FROM inventory_number_paths p WHERE p.path = l.path)
    ON CONFLICT (path) DO NOTHING;
    INSERT INTO device_inventory_numbers (device_uuid, path_id, value)
    SELECT r.uuid, p.id, l.value
      FROM new_rows r
     CROSS JOIN LATERAL inventory_number_leaves(r.inventory) l
      JOIN inventory_number_paths p ON p.path = l.path;
    RETURN NULL;
END $$;

-- A changed inventory: the leaves that are gone or changed are deleted, the new and changed
-- ones inserted; the numbers that stayed as they were are not written. PL/pgSQL, so that the
-- plans are kept for the session (a SQL function in a trigger is planned in every statement).
CREATE FUNCTION inventory_numbers_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    path_ids integer[];
    leaf_values numeric[];
BEGIN
    INSERT INTO inventory_number_paths (path)
    SELECT l.path
      FROM inventory_number_leaves(NEW.inventory) l
     WHERE NOT EXISTS (SELECT 1 FROM inventory_number_paths p WHERE p.path = l.path)
    ON CONFLICT (path) DO NOTHING;
    SELECT coalesce(array_agg(p.id), '{}'), coalesce(array_agg(l.value), '{}')
      INTO path_ids, leaf_values
      FROM inventory_number_leaves(NEW.inventory) l
      JOIN inventory_number_paths p ON p.path = l.path;
    DELETE FROM device_inventory_numbers n
     WHERE n.device_uuid = NEW.uuid
       AND NOT EXISTS (SELECT 1 FROM unnest(path_ids, leaf_values) AS u (path_id, value)
                        WHERE u.path_id = n.path_id AND u.value = n.value);
    INSERT INTO device_inventory_numbers (device_uuid, path_id, value)
    SELECT NEW.uuid, u.path_id, u.value
      FROM unnest(path_ids, leaf_values) AS u (path_id, value)
    ON CONFLICT (device_uuid, path_id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_inventory_numbers_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_numbers_insert();
-- As devices_fact_signature_update: a sighting queues nothing, an unchanged report stops at the
-- WHEN test. Its name sorts after the foreign key's triggers, so a statement that changes a
-- uuid and the inventory finds the rows moved already.
CREATE TRIGGER devices_inventory_numbers_update
    AFTER UPDATE OF inventory ON devices
    FOR EACH ROW
    WHEN (OLD.inventory::text IS DISTINCT FROM NEW.inventory::text)
    EXECUTE FUNCTION inventory_numbers_update();

-- The devices registered so far.
CREATE TEMPORARY TABLE inventory_numbers_backfill ON COMMIT DROP AS
SELECT d.uuid, l.path, l.value
  FROM devices d
 CROSS JOIN LATERAL inventory_number_leaves(d.inventory) l;
INSERT INTO inventory_number_paths (path)
SELECT DISTINCT b.path FROM inventory_numbers_backfill b ORDER BY b.path;
INSERT INTO device_inventory_numbers (device_uuid, path_id, value)
SELECT b.uuid, p.id, b.value
  FROM inventory_numbers_backfill b
  JOIN inventory_number_paths p ON p.path = b.path
 ORDER BY b.uuid, p.id;

ALTER TABLE device_inventory_numbers
    ADD CONSTRAINT device_inventory_numbers_device_uuid_fkey FOREIGN KEY (device_uuid)
        REFERENCES devices (uuid) ON DELETE CASCADE ON UPDATE CASCADE;
