-- name: poll_device_job
-- The poll in one round trip: one row, whatever the token. Its verdict: token_ok when the device
-- exists and the token hash is its own (any token when the hash is NULL), else token_kind says
-- what the token is instead (token_holder_kind: another device's, an admin's or a viewer's;
-- NULL when unknown). With the token ok, the device's next job: its IN_PROGRESS row first
-- (resume), else its oldest QUEUED row that a rollout has released, of a job not canceled,
-- whose staged rollout is not paused, and inside its maintenance window if it has one; job columns are NULL when there is none.
-- has_pending says whether the device has any pending row, held back or not: only a device
-- without one is idle (a rollout release or an opening window notifies no one). A signed
-- device-list job's signature is the device's own (a recurring run's: its parent's).
SELECT a.device_uuid, c.token_ok,
       CASE WHEN NOT c.token_ok AND %(token_hash)s::bytea IS NOT NULL
            THEN token_holder_kind(%(token_hash)s) END AS token_kind,
       n.job_id, n.job_name, n.job_document, n.queued_at,
       n.execution_number, n.version_number, n.status, n.job_document_signature, n.signed_job,
       n.parent_job_id,
       c.token_ok AND (n.job_id IS NOT NULL OR EXISTS (
           SELECT 1 FROM device_job_status p
            WHERE p.device_uuid = v.uuid AND p.status IN ('QUEUED', 'IN_PROGRESS')
       )) AS has_pending
  FROM (SELECT %(device_uuid)s::uuid AS device_uuid) a
  LEFT JOIN devices v ON v.uuid = a.device_uuid
 CROSS JOIN LATERAL (
        SELECT v.uuid IS NOT NULL
               AND (%(token_hash)s::bytea IS NULL OR v.token_hash = %(token_hash)s) AS token_ok
       ) c
  LEFT JOIN LATERAL (
        SELECT d.job_id, e.job_name, e.job_document, d.queued_at, d.execution_number,
               d.version_number, d.status,
               coalesce(s.signature, e.job_document_signature) AS job_document_signature,
               e.signed_job, e.parent_job_id
          FROM device_job_status d
          JOIN job_executions e ON e.job_id = d.job_id
          LEFT JOIN job_device_signatures s
                 ON s.job_id = coalesce(e.parent_job_id, e.job_id)
                AND s.device_uuid = d.device_uuid
         WHERE c.token_ok
           AND d.device_uuid = v.uuid
           AND d.status IN ('QUEUED', 'IN_PROGRESS')
           AND (d.status = 'IN_PROGRESS'
                OR (d.released_at IS NOT NULL
                    AND e.status <> 'CANCELED'
                    AND e.rollout_state IS DISTINCT FROM 'PAUSED'
                    AND (e.window_closes_at IS NULL
                         OR (e.window_opens_at <= now() AND now() < e.window_closes_at))))
         ORDER BY d.status = 'IN_PROGRESS' DESC, d.queued_at, d.id
         LIMIT 1
       ) n ON true;
