-- Stage gates: the numbers a gate decides on, and the transitions of a rollout.

-- name: stage_gate_numbers
-- The current stage of a staged job with everything its gate decides on, its counters read
-- from the stage's shards (never by counting device rows).
SELECT e.job_id, e.status AS job_status, e.rollout_state, e.fanout_status,
       e.rollout_config IS NOT NULL AS held_by_rate,
       s.stage, s.name, s.state, s.gate, s.soak_until, s.deadline_at, s.acknowledged_failures,
       NOT EXISTS (SELECT 1 FROM job_stages n WHERE n.job_id = s.job_id AND n.stage > s.stage)
           AS is_last,
       t.size, t.queued, t.in_progress, t.succeeded, t.failures
  FROM job_executions e
  JOIN job_stages s ON s.job_id = e.job_id AND s.stage = coalesce(e.current_stage, 0)
 CROSS JOIN LATERAL job_stage_totals(s.job_id, s.stage) t
 WHERE e.job_id = %(job_id)s;

-- name: lock_rollout
-- A staged job, locked: every rollout transition of a job takes its turn on this row. Its
-- creator is the actor who created it (the request's created_by is only a label).
SELECT job_id, status, rollout_state, current_stage, fanout_status, requires_approval,
       stages IS NOT NULL AS staged,
       (SELECT v.actor FROM job_events v
         WHERE v.job_id = e.job_id AND v.action = 'job.created'
         ORDER BY v.id LIMIT 1) AS creator,
       (SELECT count(*) FROM job_stages s WHERE s.job_id = e.job_id)::integer AS planned_stages
  FROM job_executions e
 WHERE job_id = %(job_id)s
   FOR NO KEY UPDATE;

-- name: finish_stage
-- A stage leaves one of from_states for PASSED, FAILED or PROMOTED.
UPDATE job_stages
   SET state = %(state)s, finished_at = now()
 WHERE job_id = %(job_id)s AND stage = %(stage)s AND state = ANY (%(from_states)s)
RETURNING stage, name;

-- name: acknowledge_stage_failures
-- Resuming after a failed gate: the stage's failures so far are acknowledged.
UPDATE job_stages s
   SET acknowledged_failures = t.failures
  FROM job_stage_totals(%(job_id)s, %(stage)s) t
 WHERE s.job_id = %(job_id)s AND s.stage = %(stage)s
RETURNING s.acknowledged_failures;

-- name: set_stage_soak
-- A stage that passed its numbers soaks until soak_until.
UPDATE job_stages SET soak_until = %(soak_until)s
 WHERE job_id = %(job_id)s AND stage = %(stage)s AND state = 'RELEASED';

-- name: set_rollout_state
-- The rollout's state and the reason for it, in words.
UPDATE job_executions
   SET rollout_state = %(state)s, rollout_reason = %(reason)s,
       approved_by = coalesce(%(approved_by)s, approved_by),
       approved_at = CASE WHEN %(approved_by)s::text IS NULL THEN approved_at ELSE now() END
 WHERE job_id = %(job_id)s;

-- name: time_out_stage
-- One chunk of a stage's released devices still pending at its deadline becomes TIMED_OUT;
-- rows a report holds are skipped (the next sweep takes them).
WITH overdue AS (
    SELECT id, status FROM device_job_status
     WHERE job_id = %(job_id)s AND stage = %(stage)s AND is_latest
       AND status IN ('QUEUED', 'IN_PROGRESS') AND released_at IS NOT NULL
     ORDER BY id LIMIT %(chunk_size)s
       FOR UPDATE SKIP LOCKED
), timed_out AS (
    UPDATE device_job_status d
       SET status = 'TIMED_OUT', completed_at = now(), last_updated_at = now(),
           version_number = d.version_number + 1, reason = %(reason)s
      FROM overdue WHERE d.id = overdue.id
    RETURNING d.job_id, d.device_uuid, d.execution_number, overdue.status AS source
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.timed_out', 'device_job',
           device_job_target_id(job_id, device_uuid), job_id, device_uuid,
           jsonb_build_object('from', source, 'to', 'TIMED_OUT', 'reason', %(reason)s,
                              'execution_number', execution_number, 'stage', %(stage)s)
      FROM timed_out
)
SELECT count(*)::integer AS n FROM timed_out;

-- name: stage_gates_due
-- Staged jobs whose rollout runs with a released stage (the gate sweep decides each).
SELECT s.job_id
  FROM job_stages s
  JOIN job_executions e ON e.job_id = s.job_id
 WHERE s.state = 'RELEASED' AND e.rollout_state = 'RUNNING' AND e.fanout_status = 'DONE'
 ORDER BY s.released_at
 LIMIT %(limit)s;
