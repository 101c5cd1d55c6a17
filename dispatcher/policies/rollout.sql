-- Rollout rates: the jobs that hold rows back, and the release of one wave.

-- name: rollout_jobs
-- Live jobs with a rollout config that still hold back rows and may deliver now.
SELECT e.job_id
  FROM job_executions e
 WHERE e.rollout_config IS NOT NULL AND e.status IN ('QUEUED', 'IN_PROGRESS')
   AND (e.end_at IS NULL OR e.end_at > %(now)s)
   AND (e.window_closes_at IS NULL
        OR (e.window_opens_at <= %(now)s AND %(now)s < e.window_closes_at))
   AND e.rollout_state IS DISTINCT FROM 'PAUSED'
   AND e.rollout_state IS DISTINCT FROM 'WAITING_FOR_APPROVAL'
   AND EXISTS (SELECT 1 FROM device_job_status d
                WHERE d.job_id = e.job_id AND d.released_at IS NULL AND d.status = 'QUEUED');

-- name: lock_rollout_progress
-- Lock one rollout job (a second sweep skips it) and read what its rate depends on.
SELECT e.job_id, e.rollout_config, e.released_devices,
       coalesce((SELECT sum(w.n) FROM rollout_waves w
                  WHERE w.job_id = e.job_id
                    AND w.released_at > %(now)s - make_interval(secs => %(window_s)s)
                    AND w.released_at <= %(now)s), 0)::integer AS released_last_minute,
       coalesce((SELECT sum(c.n) FROM job_status_counts c
                  WHERE c.job_id = e.job_id AND c.status = 'SUCCEEDED'), 0)::integer
           AS succeeded_devices
  FROM job_executions e
 WHERE e.job_id = %(job_id)s AND e.status IN ('QUEUED', 'IN_PROGRESS')
   FOR NO KEY UPDATE OF e SKIP LOCKED;

-- name: release_wave
-- Release up to %(limit)s held-back rows of one job, oldest first; one rollout_waves row. Of a
-- staged job, only rows of released stages: the rate applies within a stage.
WITH picked AS (
    SELECT id FROM device_job_status d
     WHERE job_id = %(job_id)s AND released_at IS NULL AND status = 'QUEUED'
       AND (d.stage IS NULL
            OR EXISTS (SELECT 1 FROM job_stages s
                        WHERE s.job_id = d.job_id AND s.stage = d.stage
                          AND s.state <> 'PENDING'))
     ORDER BY id LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE device_job_status d SET released_at = %(now)s
      FROM picked WHERE d.id = picked.id
    RETURNING d.device_uuid
), wave AS (
    INSERT INTO rollout_waves (job_id, released_at, n)
    SELECT %(job_id)s, %(now)s, count(*) FROM released HAVING count(*) > 0
    RETURNING n
), counted AS (
    UPDATE job_executions e SET released_devices = e.released_devices + wave.n
      FROM wave WHERE e.job_id = %(job_id)s
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, details)
    SELECT %(actor)s, 'job.rollout_wave', 'job', %(job_id)s::text, %(job_id)s,
           jsonb_build_object('released', wave.n, 'rate_per_minute', %(rate_per_minute)s)
      FROM wave
)
SELECT device_uuid FROM released;
