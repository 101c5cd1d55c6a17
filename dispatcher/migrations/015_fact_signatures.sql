-- Fact signatures: a filter on the device type, attributes and a few low-cardinality inventory
-- facts (os, kernel, model, …) is counted from a narrow table instead of the devices.
--
-- Counting such a filter on devices reads the heap of the wide devices table for every match
-- (the jsonb GIN indexes always recheck, and a bitmap heap scan here fetches every page), some
-- 30,000 pages for a filter that matches 33,000 of a million devices. Instead each device
-- belongs to one fact signature, a distinct (device_type, attributes, summarised inventory);
-- a filter is evaluated on the few thousand signatures, and the devices of the matching ones
-- are counted by an index-only scan of device_fact_signatures, a table of two uuids per device
-- that is written only when a device's signature changes (never by a sighting), so its
-- visibility map stays set.
--
-- A signature row has the columns the devices table has (device_type, attributes, inventory),
-- the inventory holding only the summarised facts, each with its whole value, so that the
-- compiled filter predicate evaluates on a signature exactly as on each of its devices, as
-- long as every inventory path it names starts with a summarised path
-- (dispatcher.fleet.filters.counts_from_fact_signatures).
--
-- There are no per-signature counters (concurrent inventory reports would queue on the rows of
-- popular signatures). Signatures no device has any more are left in place: they match no
-- device and cost one probe of the index each when a filter selects them; deleting them safely
-- would need every trigger to lock the signature it points a device at.

-- The summarised inventory facts, the one list: dotted paths of at most two keys, a key being
-- either a fact or the parent of facts, never both. Changing it needs a migration that
-- recomputes every signature.
CREATE FUNCTION fact_signature_paths() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['os.id', 'os.version_id', 'os.pretty_name', 'kernel', 'arch',
                 'agent_version', 'python_version', 'model', 'memory_mb']
$$;

-- The keys under ``parent`` ('' for the top level) that fact_signature_paths() names.
-- Immutable with a constant argument, so it is folded once where fact_summary's plans are
-- made (once a session).
CREATE FUNCTION fact_signature_keys(parent text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT CASE WHEN parent = '' THEN split_part(p, '.', 1)
                                            ELSE substr(p, length(parent) + 2) END), '{}')
      FROM unnest(fact_signature_paths()) AS p
     WHERE parent = '' OR starts_with(p, parent || '.')
$$;

-- The summarised facts of an inventory: each path of fact_signature_paths() the inventory has,
-- with its value as reported (a JSON null included), nested as in the inventory; "os" is the
-- one parent key (another would be added here). PL/pgSQL, not SQL: its plans are kept for the
-- session, where a SQL function called from a trigger is planned again in every statement (a
-- millisecond, each inventory report).
CREATE FUNCTION fact_summary(inventory jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    summary jsonb := '{}'::jsonb;
    os jsonb := inventory -> 'os';
    os_summary jsonb := '{}'::jsonb;
    fact text;
BEGIN
    FOREACH fact IN ARRAY fact_signature_keys('') LOOP
        IF inventory ? fact AND fact <> 'os' THEN
            summary := summary || jsonb_build_object(fact, inventory -> fact);
        END IF;
    END LOOP;
    IF jsonb_typeof(os) = 'object' THEN
        FOREACH fact IN ARRAY fact_signature_keys('os') LOOP
            IF os ? fact THEN
                os_summary := os_summary || jsonb_build_object(fact, os -> fact);
            END IF;
        END LOOP;
        IF os_summary <> '{}'::jsonb THEN
            summary := summary || jsonb_build_object('os', os_summary);
        END IF;
    END IF;
    RETURN summary;
END $$;

-- Keyed on the text of the values, as device_signature() is: {"rack": 7} and {"rack": 7.0} are
-- equal jsonb but render differently (->> tells them apart), so they are two signatures.
CREATE FUNCTION fact_signature(device_type text, attributes jsonb, summary jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT md5(jsonb_build_array(device_type, attributes, summary)::text)::uuid
$$;

CREATE TABLE fact_signatures (
    signature    uuid PRIMARY KEY,
    device_type  text NOT NULL,
    attributes   jsonb NOT NULL,
    -- Only the summarised facts (fact_summary).
    inventory    jsonb NOT NULL
);
CREATE INDEX fact_signatures_attributes_gin ON fact_signatures USING gin (attributes jsonb_path_ops);
CREATE INDEX fact_signatures_inventory_gin ON fact_signatures USING gin (inventory jsonb_path_ops);
CREATE INDEX fact_signatures_type_idx ON fact_signatures (device_type);

-- Each device's signature. Narrow and rarely written: a count of the devices of some
-- signatures is an index-only scan of the (signature, device_uuid) index. A device's row goes
-- with it (a deleted device, a truncated table) and follows a changed uuid by the foreign key
-- (added after the backfill below, checked there once rather than row by row).
CREATE TABLE device_fact_signatures (
    device_uuid  uuid PRIMARY KEY,
    signature    uuid NOT NULL
);
CREATE INDEX device_fact_signatures_signature_idx
    ON device_fact_signatures (signature, device_uuid);

-- Devices inserted by a statement, set-based over its transition table.
CREATE FUNCTION fact_signatures_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH placed AS (
        SELECT r.uuid, r.device_type, r.attributes, s.summary,
               fact_signature(r.device_type, r.attributes, s.summary) AS signature
          FROM new_rows r
         CROSS JOIN LATERAL (SELECT fact_summary(r.inventory) AS summary) s
    ), added AS (
        INSERT INTO fact_signatures (signature, device_type, attributes, inventory)
        SELECT DISTINCT ON (p.signature) p.signature, p.device_type, p.attributes, p.summary
          FROM placed p
         ORDER BY p.signature
        ON CONFLICT (signature) DO NOTHING
    )
    INSERT INTO device_fact_signatures (device_uuid, signature)
    SELECT p.uuid, p.signature FROM placed p;
    RETURN NULL;
END $$;

-- A device whose type, attributes or inventory changed moves to its new signature, unless its
-- signature is the one it has (most reports change an unsummarised fact: a free disk), then
-- the signature is added if it is new. Every device has its row (the insert trigger, the
-- backfill), so one UPDATE both tests and moves.
CREATE FUNCTION fact_signature_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    summary jsonb := fact_summary(NEW.inventory);
    moved_to uuid := fact_signature(NEW.device_type, NEW.attributes, summary);
BEGIN
    UPDATE device_fact_signatures SET signature = moved_to
     WHERE device_uuid = NEW.uuid AND signature <> moved_to;
    IF FOUND THEN
        INSERT INTO fact_signatures (signature, device_type, attributes, inventory)
        VALUES (moved_to, NEW.device_type, NEW.attributes, summary)
        ON CONFLICT (signature) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_fact_signature_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION fact_signatures_insert();
-- A row trigger, not a statement trigger over transition tables (which rule out a column
-- list): an UPDATE that sets none of these columns, a sighting's last_seen_at, queues no
-- trigger at all, and one that leaves them as they were (an unchanged inventory report) stops
-- at the WHEN test, which compares text (7 and 7.0 are equal jsonb, not equal facts) and calls
-- no function (a trigger's WHEN is not planned: a function there is set up in every
-- statement). Moving many devices in one statement (a bulk attribute change) costs one call
-- per device. Its name sorts after the foreign key's triggers, so a statement that changes a
-- uuid and the signature finds the row moved already.
CREATE TRIGGER devices_fact_signature_update
    AFTER UPDATE OF device_type, attributes, inventory ON devices
    FOR EACH ROW
    WHEN (OLD.device_type IS DISTINCT FROM NEW.device_type
          OR OLD.attributes::text IS DISTINCT FROM NEW.attributes::text
          OR OLD.inventory::text IS DISTINCT FROM NEW.inventory::text)
    EXECUTE FUNCTION fact_signature_move();

-- The devices registered so far.
CREATE TEMPORARY TABLE fact_signatures_backfill ON COMMIT DROP AS
SELECT d.uuid, d.device_type, d.attributes, s.summary,
       fact_signature(d.device_type, d.attributes, s.summary) AS signature
  FROM devices d
 CROSS JOIN LATERAL (SELECT fact_summary(d.inventory) AS summary) s;
INSERT INTO fact_signatures (signature, device_type, attributes, inventory)
SELECT DISTINCT ON (b.signature) b.signature, b.device_type, b.attributes, b.summary
  FROM fact_signatures_backfill b
 ORDER BY b.signature;
INSERT INTO device_fact_signatures (device_uuid, signature)
SELECT b.uuid, b.signature FROM fact_signatures_backfill b ORDER BY b.signature, b.uuid;

ALTER TABLE device_fact_signatures
    ADD CONSTRAINT device_fact_signatures_device_uuid_fkey FOREIGN KEY (device_uuid)
        REFERENCES devices (uuid) ON DELETE CASCADE ON UPDATE CASCADE;
