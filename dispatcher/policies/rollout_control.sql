-- Staged rollouts an operator looks at.

-- name: rollouts_waiting_for_a_person
-- Live staged jobs whose rollout waits for a person (approval, or paused), newest first.
SELECT job_id, job_name, status, rollout_state, rollout_reason, current_stage, queued_at,
       created_by
  FROM job_executions
 WHERE rollout_state IN ('WAITING_FOR_APPROVAL', 'PAUSED')
   AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS')
 ORDER BY id DESC
 LIMIT %(limit)s;
