-- Execution policies: recurring and continuous jobs, scheduling and maintenance windows, rollout
-- rate, abort, timeouts and retries. Every policy is stored as the validated JSON the API took;
-- the few values the sweeps filter on are also columns, so each sweep is one indexed query.

ALTER TABLE job_executions
    -- A run of a recurring job points at its parent; scheduled_for is the cron slot it fills.
    ADD COLUMN parent_job_id     uuid REFERENCES job_executions (job_id) ON DELETE CASCADE,
    ADD COLUMN scheduled_for     timestamptz,
    ADD COLUMN schedule          jsonb,
    ADD COLUMN scheduling_config jsonb,
    ADD COLUMN rollout_config    jsonb,
    ADD COLUMN abort_config      jsonb,
    ADD COLUMN timeout_config    jsonb,
    ADD COLUMN retry_config      jsonb,
    -- scheduling_config.start_time / end_time (or schedule.end_time for a recurring parent).
    ADD COLUMN start_at          timestamptz,
    ADD COLUMN end_at            timestamptz,
    ADD COLUMN end_behavior      text CHECK (end_behavior IN ('STOP_ROLLOUT', 'CANCEL',
                                                              'FORCE_CANCEL')),
    -- Recurring parent: the next cron slot to fire and how many runs it has fired.
    ADD COLUMN next_run_at       timestamptz,
    ADD COLUMN run_count         integer NOT NULL DEFAULT 0,
    -- Maintenance windows: the current or next window [window_opens_at, window_closes_at).
    -- Devices receive the job only inside it; both NULL means no windows (always open).
    ADD COLUMN window_opens_at   timestamptz,
    ADD COLUMN window_closes_at  timestamptz,
    -- Rollout: rows released so far (devices notified), for exponential rates.
    ADD COLUMN released_devices  integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT job_executions_run_has_slot
        CHECK ((parent_job_id IS NULL) = (scheduled_for IS NULL));

-- One run per parent and slot: two beats firing the same slot insert one row.
CREATE UNIQUE INDEX job_executions_run_slot_idx ON job_executions (parent_job_id, scheduled_for)
    WHERE parent_job_id IS NOT NULL;
CREATE INDEX job_executions_runs_idx ON job_executions (parent_job_id, id DESC)
    WHERE parent_job_id IS NOT NULL;
-- Sweeps look only at live jobs that carry the policy in question.
CREATE INDEX job_executions_recurring_due_idx ON job_executions (next_run_at)
    WHERE execution_type = 'recurring' AND status = 'SCHEDULED';
CREATE INDEX job_executions_start_due_idx ON job_executions (start_at)
    WHERE status = 'SCHEDULED' AND execution_type <> 'recurring';
CREATE INDEX job_executions_end_due_idx ON job_executions (end_at)
    WHERE end_at IS NOT NULL AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS');
ALTER TABLE job_templates
    ADD COLUMN execution_type    text CHECK (execution_type IN ('oneTime', 'recurring',
                                                                'continuous')),
    ADD COLUMN schedule          jsonb,
    ADD COLUMN scheduling_config jsonb,
    ADD COLUMN rollout_config    jsonb,
    ADD COLUMN abort_config      jsonb,
    ADD COLUMN timeout_config    jsonb,
    ADD COLUMN retry_config      jsonb;

-- released_at NULL: held back by a rollout, invisible to the device poll. The default keeps
-- every existing insert released at once, as before.
ALTER TABLE device_job_status
    ADD COLUMN released_at timestamptz DEFAULT now(),
    -- When an IN_PROGRESS (or QUEUED) row is overdue and becomes TIMED_OUT.
    ADD COLUMN timeout_at  timestamptz;

CREATE INDEX device_job_status_timeout_idx ON device_job_status (timeout_at)
    WHERE status IN ('QUEUED', 'IN_PROGRESS') AND timeout_at IS NOT NULL;
CREATE INDEX device_job_status_unreleased_idx ON device_job_status (job_id, id)
    WHERE released_at IS NULL AND status = 'QUEUED';
-- Auto-retry and abort look at the failed rows of one job.
CREATE INDEX device_job_status_failed_idx ON device_job_status (job_id)
    WHERE is_latest AND status IN ('FAILED', 'TIMED_OUT');

-- One row per rollout wave: the sliding one-minute rate limit sums the last minute's waves.
CREATE TABLE rollout_waves (
    id           bigserial PRIMARY KEY,
    job_id       uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    released_at  timestamptz NOT NULL,
    n            integer NOT NULL CHECK (n > 0)
);
CREATE INDEX rollout_waves_job_idx ON rollout_waves (job_id, released_at);
