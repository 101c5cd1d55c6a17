-- name: job_pending_devices
-- How many latest rows of a job are still QUEUED or IN_PROGRESS.
SELECT pending FROM job_status_totals(%(job_id)s);

-- name: lock_job_execution
-- One execution, locked: completion, cancel and retry of a job take their turns on this row.
SELECT job_id, status, started_at, fanout_status
  FROM job_executions
 WHERE job_id = %(job_id)s
   FOR UPDATE;

-- name: complete_job
-- SUCCEEDED or FAILED once the fan-out is done and no latest row is pending, with a snapshot of
-- the counters. Run with the job row locked, so the counts it reads are after any retry.
UPDATE job_executions e
   SET status = CASE WHEN t.failures > 0 THEN 'FAILED' ELSE 'SUCCEEDED' END,
       started_at = coalesce(e.started_at, now()),
       completed_at = now(),
       succeeded_devices = t.succeeded,
       failed_devices = t.failures,
       -- Every device of a paused staged job is done: so is its rollout. A running one is
       -- finished by its last gate, decided after this.
       rollout_state = CASE WHEN e.rollout_state = 'PAUSED' THEN 'FINISHED'
                            ELSE e.rollout_state END
  FROM job_status_totals(%(job_id)s) t
 WHERE e.job_id = %(job_id)s
   AND e.status IN ('QUEUED', 'IN_PROGRESS')
   AND e.fanout_status = 'DONE'
   AND t.pending = 0
   AND NOT job_held_open(e.job_id)
RETURNING e.job_id, e.status, e.completed_at, e.succeeded_devices, e.failed_devices;

-- name: snapshot_job_counters
-- Write the seed's succeeded/failed counters of a job from the live counts.
UPDATE job_executions e
   SET succeeded_devices = t.succeeded, failed_devices = t.failures
  FROM job_status_totals(%(job_id)s) t
 WHERE e.job_id = %(job_id)s;
