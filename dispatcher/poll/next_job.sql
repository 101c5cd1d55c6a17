-- name: poll_device_job
-- The poll in one round trip: the device, when the token hash is its own (any token when the
-- hash is NULL), with its next job: its IN_PROGRESS row first (resume), else its oldest QUEUED
-- row that a rollout has released, of a job not canceled, whose staged rollout is not paused,
-- and inside its maintenance window if it has one. Job columns are NULL when there is none; no row at all when the token is not the
-- device's. has_pending says whether the device has any pending row, held back or not: only a
-- device without one is idle (a rollout release or an opening window notifies no one).
SELECT v.uuid AS device_uuid, n.job_id, n.job_name, n.job_document, n.queued_at,
       n.execution_number, n.version_number, n.status, n.job_document_signature,
       n.job_id IS NOT NULL OR EXISTS (
           SELECT 1 FROM device_job_status p
            WHERE p.device_uuid = v.uuid AND p.status IN ('QUEUED', 'IN_PROGRESS')
       ) AS has_pending
  FROM devices v
  LEFT JOIN LATERAL (
        SELECT d.job_id, e.job_name, e.job_document, d.queued_at, d.execution_number,
               d.version_number, d.status, e.job_document_signature
          FROM device_job_status d
          JOIN job_executions e ON e.job_id = d.job_id
         WHERE d.device_uuid = v.uuid
           AND d.status IN ('QUEUED', 'IN_PROGRESS')
           AND (d.status = 'IN_PROGRESS'
                OR (d.released_at IS NOT NULL
                    AND e.status <> 'CANCELED'
                    AND e.rollout_state IS DISTINCT FROM 'PAUSED'
                    AND (e.window_closes_at IS NULL
                         OR (e.window_opens_at <= now() AND now() < e.window_closes_at))))
         ORDER BY d.status = 'IN_PROGRESS' DESC, d.queued_at, d.id
         LIMIT 1
       ) n ON true
 WHERE v.uuid = %(device_uuid)s
   AND (%(token_hash)s::bytea IS NULL OR v.token_hash = %(token_hash)s);
