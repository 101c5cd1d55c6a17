-- A device's row of a job refers to its device and its job as before, but the reference is
-- checked once per statement instead of once per inserted row. The two foreign keys of
-- device_job_status cost more than the insert itself in a fan-out (EXPLAIN ANALYZE of a
-- 100,000-device chunk: 3.1 s for the device check and 2.1 s for the job check against 4.0 s
-- for the heap and its indexes), and at 1,000,000 devices the device check's row lock
-- (FOR KEY SHARE) dirtied a page of devices for every row inserted.
--
-- What the foreign keys gave, kept:
-- * No row without its job: every inserting statement locks its jobs (FOR KEY SHARE, one
--   lock a job, not a row) and fails with foreign_key_violation when one is gone. A job being
--   deleted waits for the inserting transaction, and its deletion then removes the rows.
-- * No row without its device: every inserting statement takes the devices' reference lock
--   shared (a transaction-level advisory lock) and then checks its devices exist, in one
--   anti-join. Deleting a device takes that lock exclusively first, so a delete either
--   commits before the check (which then sees the device gone and fails) or waits for the
--   inserting transaction to commit (and then removes the rows it inserted). Devices are
--   deleted rarely, by a person, and only ever wait for a chunk.
-- * ON DELETE CASCADE: a device's or a job's rows are deleted before it is, by a BEFORE
--   DELETE trigger, so the per-status counters of the job still exist while its rows go.

ALTER TABLE device_job_status
    DROP CONSTRAINT device_job_status_device_uuid_fkey,
    DROP CONSTRAINT device_job_status_job_id_fkey;

-- The advisory lock key that guards the devices that rows refer to ('dj' 'de' 'vi' 'ce').
CREATE FUNCTION device_references_lock_key() RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$ SELECT 7668010112093828965::bigint $$;

-- The statement's new rows refer to jobs and devices that exist, checked as a set. Named to
-- fire first among the AFTER INSERT triggers of device_job_status (they fire by name), so the
-- reference lock is taken before the counters' rows are.
CREATE FUNCTION device_job_status_check_references() RETURNS trigger
    LANGUAGE plpgsql
    -- The anti-join probes the devices' primary key for each new row: a hash join would
    -- read every device for a chunk of a few thousand.
    SET enable_hashjoin = off
    SET enable_mergejoin = off
    AS $$
DECLARE
    jobs bigint;
    locked bigint;
    missing uuid;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(device_references_lock_key());
    SELECT count(DISTINCT job_id) INTO jobs FROM new_rows;
    SELECT count(*) INTO locked
      FROM (SELECT 1 FROM job_executions e
             WHERE e.job_id IN (SELECT job_id FROM new_rows)
               FOR KEY SHARE OF e) l;
    IF locked <> jobs THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert into device_job_status refers to a job that does not exist',
            TABLE = 'device_job_status', COLUMN = 'job_id';
    END IF;
    SELECT n.device_uuid INTO missing
      FROM new_rows n
     WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.uuid = n.device_uuid)
     LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('insert into device_job_status refers to device %s, which does '
                             'not exist', missing),
            TABLE = 'device_job_status', COLUMN = 'device_uuid';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER device_job_status_check_references AFTER INSERT ON device_job_status
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_job_status_check_references();

-- A device's rows go before the device does, once no statement that may be inserting rows for
-- it is still uncommitted.
CREATE FUNCTION devices_delete_job_rows() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(device_references_lock_key());
    DELETE FROM device_job_status WHERE device_uuid = OLD.uuid;
    RETURN OLD;
END $$;

CREATE TRIGGER devices_delete_job_rows BEFORE DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_delete_job_rows();

-- A job's rows go before the job does (the job's row is already locked against inserters
-- here, so none can add more). Most jobs deleted by retention have none left.
CREATE FUNCTION job_executions_delete_job_rows() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM device_job_status WHERE job_id = OLD.job_id) THEN
        DELETE FROM device_job_status WHERE job_id = OLD.job_id;
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER job_executions_delete_job_rows BEFORE DELETE ON job_executions
    FOR EACH ROW EXECUTE FUNCTION job_executions_delete_job_rows();
