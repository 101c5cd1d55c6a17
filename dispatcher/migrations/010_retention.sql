-- History is kept for a configured time, then removed by the retention sweep
-- (dispatcher/maintenance/retention.py). What the sweep last removed is recorded per kind of
-- history, so the API and the portal can say that older history was pruned.
CREATE TABLE history_prunes (
    kind text PRIMARY KEY CHECK (kind IN ('executions', 'recurring_runs', 'audit_events')),
    -- Finished before this (executions) or happened before this (audit events): removed.
    -- For recurring runs: the newest scheduled slot of a run removed for the count.
    pruned_before timestamptz NOT NULL,
    pruned_at timestamptz NOT NULL,
    rows_removed bigint NOT NULL DEFAULT 0
);

-- Finished executions by age, for the sweep to find the oldest.
CREATE INDEX job_executions_finished_idx ON job_executions (completed_at)
    WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELED');

-- Every row of a job, retried-away rows included: the sweep removes a job's rows in batches
-- through it, and removing the job itself (ON DELETE CASCADE) looks its rows up by it instead
-- of scanning the table.
CREATE INDEX device_job_status_job_idx ON device_job_status (job_id);

-- Audit events are appended in time order: a BRIN index finds the old ones for a few pages.
CREATE INDEX job_events_occurred_brin ON job_events USING brin (occurred_at);
