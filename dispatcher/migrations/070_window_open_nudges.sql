-- Maintenance windows: when a job's window opens, its waiting devices are nudged once, so an
-- agent that polls rarely (MQTT on, a long poll interval) starts at the window's opening, not
-- at its next poll. window_nudged_for holds the opening time of the window whose devices have
-- been nudged; the sweep claims a window by setting it, so two beats nudge once.
ALTER TABLE job_executions ADD COLUMN window_nudged_for timestamptz;

-- Both window sweeps read only live jobs that have windows.
CREATE INDEX job_executions_live_windows ON job_executions (window_closes_at)
    WHERE window_closes_at IS NOT NULL AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS');
