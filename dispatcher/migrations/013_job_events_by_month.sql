-- The audit trail is partitioned by month (UTC) of occurred_at, so that audit retention drops
-- a month whole (a catalog change) instead of deleting its rows one by one
-- (tests/bench/bench_retention.py: 0.4 s and 2 MB of WAL against 71 s and 313 MB for the same
-- 1,000,000 rows). Months are created ahead by the event_partitions sweep; an event of a month
-- without its partition lands in job_events_default, and creating that month moves it out.
-- Every existing event is copied into its month's partition by this migration.

-- The jobs whose audit is never removed: not finished, or finished with a device still
-- running them (a job canceled without force).
CREATE VIEW live_job_ids AS
    SELECT job_id FROM job_executions
     WHERE status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
    UNION
    SELECT job_id FROM job_status_counts
     WHERE status IN ('QUEUED', 'IN_PROGRESS')
     GROUP BY job_id HAVING sum(n) > 0;

ALTER TABLE job_events RENAME TO job_events_unpartitioned;
ALTER TABLE job_events_unpartitioned DROP CONSTRAINT job_events_pkey;
DROP INDEX job_events_job_idx, job_events_target_idx, job_events_occurred_brin;

-- Who did what to which thing, and when: the same columns. The primary key holds the
-- partition key, as every unique index of a partitioned table must; ids still come from one
-- sequence.
CREATE TABLE job_events (LIKE job_events_unpartitioned INCLUDING DEFAULTS)
    PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE job_events_id_seq OWNED BY job_events.id;
CREATE TABLE job_events_default PARTITION OF job_events DEFAULT;

-- The partition of the month (UTC) that holds ``within``, created when missing: named
-- job_events_pYYYYMM, bounded by the first instants of the month and of the next. Events of
-- that month in the default partition move into it. Answers whether it was created.
CREATE FUNCTION create_job_events_month(within timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamp := date_trunc('month', within AT TIME ZONE 'UTC');
    lower_bound timestamptz := month_start AT TIME ZONE 'UTC';
    upper_bound timestamptz := (month_start + interval '1 month') AT TIME ZONE 'UTC';
    month_table text := 'job_events_p' || to_char(month_start, 'YYYYMM');
BEGIN
    IF to_regclass(month_table) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Two sweeps take turns, and nothing of that month lands in the default partition
    -- between the move and the attach. The locks the attach needs are taken first, in the
    -- order every statement on the table takes them (parent, then partition), so no waiting
    -- statement can deadlock with it: inserts into other months go on, reads wait a moment.
    LOCK TABLE job_events IN SHARE UPDATE EXCLUSIVE MODE;
    LOCK TABLE job_events_default IN ACCESS EXCLUSIVE MODE;
    IF to_regclass(month_table) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE job_events INCLUDING DEFAULTS)', month_table);
    EXECUTE format('WITH moved AS (DELETE FROM job_events_default WHERE occurred_at >= $1'
                   ' AND occurred_at < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   month_table) USING lower_bound, upper_bound;
    EXECUTE format('ALTER TABLE job_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   month_table, lower_bound, upper_bound);
    RETURN true;
END;
$$;

-- Drop the partition of the month that starts at ``month_start`` (UTC), unless it holds an
-- event of a live job (outcome 'live': its other events are deleted in batches instead), or
-- its locks are not had within ``lock_timeout_ms`` (outcome 'busy': the next run tries again).
-- Dropping a partition takes the parent's ACCESS EXCLUSIVE lock for a catalog change: the
-- timeout bounds how long inserts of events queue behind it when a long read holds the table.
CREATE FUNCTION drop_job_events_month(month_start timestamptz, lock_timeout_ms integer,
                                      OUT outcome text, OUT rows_removed bigint)
LANGUAGE plpgsql AS $$
DECLARE
    month_table text := 'job_events_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM');
    holds_live boolean;
BEGIN
    PERFORM set_config('lock_timeout', lock_timeout_ms || 'ms', true);
    BEGIN
        -- Reads go on; nothing is written into the month while it is looked at and dropped.
        EXECUTE format('LOCK TABLE %I IN SHARE ROW EXCLUSIVE MODE', month_table);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM live_job_ids l WHERE EXISTS'
                       ' (SELECT 1 FROM %I e WHERE e.job_id = l.job_id))', month_table)
           INTO STRICT holds_live;
        IF holds_live THEN
            outcome := 'live';
            rows_removed := 0;
            RETURN;
        END IF;
        -- How many events go: the planner's count once the month was analyzed (reading a
        -- whole month to drop it would cost more than the drop), else counted.
        SELECT reltuples::bigint INTO STRICT rows_removed
          FROM pg_class WHERE oid = month_table::regclass;
        IF rows_removed < 0 THEN
            EXECUTE format('SELECT count(*) FROM %I', month_table) INTO STRICT rows_removed;
        END IF;
        EXECUTE format('DROP TABLE %I', month_table);
        outcome := 'dropped';
    EXCEPTION WHEN lock_not_available THEN
        outcome := 'busy';
        rows_removed := 0;
    END;
END;
$$;

-- The existing events, each into the partition of its month.
SELECT create_job_events_month(month AT TIME ZONE 'UTC')
  FROM (SELECT date_trunc('month', min(occurred_at) AT TIME ZONE 'UTC') AS first_month,
               date_trunc('month', max(occurred_at) AT TIME ZONE 'UTC') AS last_month
          FROM job_events_unpartitioned) span,
       generate_series(span.first_month, span.last_month, interval '1 month') AS month;
INSERT INTO job_events SELECT * FROM job_events_unpartitioned;
DROP TABLE job_events_unpartitioned;

-- The indexes, built once the rows are in (one sorted build per partition).
ALTER TABLE job_events ADD PRIMARY KEY (id, occurred_at);
CREATE INDEX job_events_job_idx ON job_events (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX job_events_target_idx ON job_events (target_type, target_id, id);
-- Within a month, or in the default partition, old events are found for a few pages.
CREATE INDEX job_events_occurred_brin ON job_events USING brin (occurred_at);
