-- Devices per signature: one row per distinct (device_type, attributes) with the number of
-- devices that have exactly it, kept exact by statement-level triggers in the same transaction
-- as the change. Every target is counted from here, whatever its filter:
--     SELECT sum(n) FROM device_signatures WHERE device_type = … AND attributes @> filter
-- is exact because each device belongs to exactly one signature, and a signature matches a
-- filter exactly when its devices do. The cost grows with the number of matching distinct
-- signatures, not with devices: a fleet of a million devices described by a few hundred
-- combinations is counted from a few hundred rows.
--
-- A fleet whose devices each carry a unique attribute (a serial number, say) has one signature
-- per device; counting it then costs what a count over devices would (a GIN scan for a filter,
-- a scan of this table for the whole fleet or a device_type).
--
-- Rows are keyed on a hash of the type and the attributes' text, the full values kept beside
-- it. The text, not jsonb equality: {"rack": 7} and {"rack": 7.0} are equal jsonb but render
-- differently, so they are two signatures (both matching {"rack": 7}), and a device's row is
-- always found again under the key it was counted with. One row per signature (no shards):
-- concurrent registrations of the same signature queue on its row only for their commit.
-- Replaces device_type_counts and device_attribute_counts.
CREATE TABLE device_signatures (
    signature    uuid PRIMARY KEY,
    device_type  text NOT NULL,
    attributes   jsonb NOT NULL,
    n            bigint NOT NULL
) WITH (fillfactor = 70);  -- room for HOT updates: n changes, no indexed column does
CREATE INDEX device_signatures_attributes_gin
    ON device_signatures USING gin (attributes jsonb_path_ops);
CREATE INDEX device_signatures_type_idx ON device_signatures (device_type);

CREATE FUNCTION device_signature(device_type text, attributes jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT md5(jsonb_build_array(device_type, attributes)::text)::uuid
$$;

INSERT INTO device_signatures (signature, device_type, attributes, n)
SELECT device_signature(device_type, attributes), device_type, attributes, count(*)
  FROM devices
 GROUP BY device_signature(device_type, attributes), device_type, attributes;

-- Adds signature deltas, given per (device_type, attributes text), in key order (so concurrent
-- statements lock shared rows in the same order and cannot deadlock); signatures left with no
-- device are deleted.
CREATE FUNCTION device_signatures_add(added_types text[], added_attributes text[], added bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH given AS (
        SELECT t.device_type, t.attributes::jsonb AS attributes, t.delta
          FROM unnest(added_types, added_attributes, added) AS t (device_type, attributes, delta)
    )
    INSERT INTO device_signatures AS s (signature, device_type, attributes, n)
    SELECT device_signature(device_type, attributes), device_type, attributes, delta
      FROM given
     ORDER BY 1
    ON CONFLICT (signature) DO UPDATE SET n = s.n + excluded.n;
    DELETE FROM device_signatures s
     USING unnest(added_types, added_attributes, added) AS t (device_type, attributes, delta)
     WHERE t.delta < 0
       AND s.signature = device_signature(t.device_type, t.attributes::jsonb)
       AND s.n = 0;
END $$;

-- The devices a statement added, removed or moved, aggregated per signature. An UPDATE counts
-- only the rows whose type or attributes text changed, so last_seen_at writes move nothing.
CREATE FUNCTION device_signatures_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    added_types text[];
    added_attributes text[];
    added bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(g.device_type), array_agg(g.attributes), array_agg(g.delta)
          INTO added_types, added_attributes, added
          FROM (SELECT r.device_type, r.attributes::text AS attributes, count(*) AS delta
                  FROM new_rows r GROUP BY 1, 2) g;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(g.device_type), array_agg(g.attributes), array_agg(g.delta)
          INTO added_types, added_attributes, added
          FROM (SELECT r.device_type, r.attributes::text AS attributes, -count(*) AS delta
                  FROM old_rows r GROUP BY 1, 2) g;
    ELSE
        -- Full join on uuid: a row whose uuid changed leaves one signature and joins another.
        SELECT array_agg(g.device_type), array_agg(g.attributes), array_agg(g.delta)
          INTO added_types, added_attributes, added
          FROM (SELECT m.device_type, m.attributes, sum(m.delta) AS delta
                  FROM old_rows o
                  FULL JOIN new_rows r ON r.uuid = o.uuid
                 CROSS JOIN LATERAL (VALUES (o.device_type, o.attributes::text, -1),
                                            (r.device_type, r.attributes::text, 1))
                       AS m (device_type, attributes, delta)
                 WHERE m.device_type IS NOT NULL
                   AND (o.uuid IS NULL OR r.uuid IS NULL
                        OR o.device_type <> r.device_type
                        OR o.attributes::text <> r.attributes::text)
                 GROUP BY 1, 2
                HAVING sum(m.delta) <> 0) g;
    END IF;
    IF added IS NOT NULL THEN
        PERFORM device_signatures_add(added_types, added_attributes, added);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION device_signatures_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM device_signatures;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_signature_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_apply();
CREATE TRIGGER devices_signature_delete AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_apply();
-- Transition tables rule out a column list, so this fires for every UPDATE statement on
-- devices; for one that changes no type or attributes it reads its rows once and writes none.
CREATE TRIGGER devices_signature_update AFTER UPDATE ON devices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_apply();
CREATE TRIGGER devices_signature_truncate AFTER TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_clear();

DROP TRIGGER devices_type_count_insert ON devices;
DROP TRIGGER devices_type_count_delete ON devices;
DROP TRIGGER devices_type_count_update ON devices;
DROP TRIGGER devices_type_count_truncate ON devices;
DROP TRIGGER devices_attribute_count_insert ON devices;
DROP TRIGGER devices_attribute_count_delete ON devices;
DROP TRIGGER devices_attribute_count_update ON devices;
DROP TRIGGER devices_attribute_count_truncate ON devices;
DROP FUNCTION device_type_counts_apply(), device_type_counts_move(), device_type_counts_clear(),
              device_attribute_counts_apply(), device_attribute_counts_move(),
              device_attribute_counts_clear();
DROP TABLE device_type_counts, device_attribute_counts;
