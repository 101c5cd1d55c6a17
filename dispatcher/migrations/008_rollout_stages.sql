-- Staged rollouts: a job's devices in numbered stages (canaries, a slice, the rest), each
-- released only after the stage before it passed its gate. The stage of each device is decided
-- at fan-out and stored on its row, so pause, resume and retry never reshuffle; each stage keeps
-- its state and its own exact per-status counters, so a gate is decided from a few counter rows,
-- never by counting device rows.

ALTER TABLE job_templates ADD COLUMN stages jsonb;

ALTER TABLE job_executions
    -- The stages as the API took them (NULL: not staged).
    ADD COLUMN stages jsonb,
    ADD COLUMN requires_approval boolean NOT NULL DEFAULT false,
    -- NULL for a job without stages.
    ADD COLUMN rollout_state text
        CHECK (rollout_state IN ('WAITING_FOR_APPROVAL', 'RUNNING', 'PAUSED', 'FINISHED',
                                 'STOPPED')),
    -- Why the rollout is in its state, in words ("gate failed: 2 of 2 devices ...").
    ADD COLUMN rollout_reason text,
    ADD COLUMN current_stage smallint,
    ADD COLUMN approved_by text,
    ADD COLUMN approved_at timestamptz;

-- The stage of a device's row (NULL: the job has no stages). A retry keeps it.
ALTER TABLE device_job_status ADD COLUMN stage smallint;

CREATE TABLE job_stages (
    job_id                 uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    stage                  smallint NOT NULL CHECK (stage >= 0),
    name                   text NOT NULL,
    -- Devices the stage was sized for at fan-out (count, or percent of the job's devices rounded
    -- up, at least one); NULL for the remainder stage. Its real size is its counters' sum.
    planned_size           integer CHECK (planned_size >= 0),
    target_filter          jsonb,
    -- NULL: every device must succeed.
    gate                   jsonb,
    state                  text NOT NULL DEFAULT 'PENDING'
                           CHECK (state IN ('PENDING', 'RELEASED', 'PASSED', 'FAILED',
                                            'PROMOTED')),
    released_at            timestamptz,
    finished_at            timestamptz,
    -- The stage passed its numbers and passes its gate at this time unless it fails before.
    soak_until             timestamptz,
    -- stage_timeout_minutes after the release: devices still pending then become TIMED_OUT.
    deadline_at            timestamptz,
    -- When every row of the released stage had been released (NULL while a release runs, so a
    -- release cut short by a dead worker is carried on by the gate sweep).
    rows_released_at       timestamptz,
    release_progress_at    timestamptz,
    -- Failures an operator acknowledged by resuming after the stage's gate failed.
    acknowledged_failures  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, stage)
);
-- The gate sweep reads only stages being rolled out.
CREATE INDEX job_stages_released_idx ON job_stages (released_at) WHERE state = 'RELEASED';

-- Releasing a stage reads its held-back rows, in id order, chunk by chunk.
CREATE INDEX device_job_status_stage_unreleased_idx ON device_job_status (job_id, stage, id)
    WHERE released_at IS NULL AND status = 'QUEUED' AND stage IS NOT NULL;

-- Per-stage device counts by status, sharded and kept exact by statement triggers exactly as
-- job_status_counts is: the latest row of each staged device counts once.
CREATE TABLE job_stage_counts (
    job_id  uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    stage   smallint NOT NULL,
    status  text NOT NULL,
    shard   smallint NOT NULL,
    n       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, stage, status, shard)
);

CREATE FUNCTION job_stage_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_stage_counts AS c (job_id, stage, status, shard, n)
        SELECT job_id, stage, status, (pg_backend_pid() % 16)::smallint, count(*)
          FROM new_rows WHERE is_latest AND stage IS NOT NULL
         GROUP BY job_id, stage, status ORDER BY job_id, stage, status
        ON CONFLICT (job_id, stage, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO job_stage_counts AS c (job_id, stage, status, shard, n)
        SELECT job_id, stage, status, (pg_backend_pid() % 16)::smallint, sum(delta)
          FROM (SELECT job_id, stage, status, -1 AS delta FROM old_rows
                 WHERE is_latest AND stage IS NOT NULL
                UNION ALL
                SELECT job_id, stage, status, 1 FROM new_rows
                 WHERE is_latest AND stage IS NOT NULL) d
         GROUP BY job_id, stage, status HAVING sum(delta) <> 0 ORDER BY job_id, stage, status
        ON CONFLICT (job_id, stage, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO job_stage_counts AS c (job_id, stage, status, shard, n)
        SELECT o.job_id, o.stage, o.status, (pg_backend_pid() % 16)::smallint, -count(*)
          FROM old_rows o
         WHERE o.is_latest AND o.stage IS NOT NULL
           AND EXISTS (SELECT 1 FROM job_executions e WHERE e.job_id = o.job_id)
         GROUP BY o.job_id, o.stage, o.status ORDER BY o.job_id, o.stage, o.status
        ON CONFLICT (job_id, stage, status, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER device_job_status_stage_count_insert AFTER INSERT ON device_job_status
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_stage_counts_apply();
CREATE TRIGGER device_job_status_stage_count_update AFTER UPDATE ON device_job_status
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_stage_counts_apply();
CREATE TRIGGER device_job_status_stage_count_delete AFTER DELETE ON device_job_status
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_stage_counts_apply();

-- A stage's totals from its shards: everything a gate decides on.
CREATE FUNCTION job_stage_totals(p_job_id uuid, p_stage smallint)
RETURNS TABLE (size bigint, queued bigint, in_progress bigint, succeeded bigint,
               failures bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(n), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'QUEUED'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'IN_PROGRESS'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'SUCCEEDED'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status IN ('FAILED', 'TIMED_OUT', 'REJECTED')), 0)::bigint
      FROM job_stage_counts
     WHERE job_id = p_job_id AND stage = p_stage
$$;

-- The dashboard shows the rollouts waiting for a person first.
CREATE INDEX job_executions_rollout_waiting_idx ON job_executions (id DESC)
    WHERE rollout_state IN ('WAITING_FOR_APPROVAL', 'PAUSED');
