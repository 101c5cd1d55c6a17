-- Continuous jobs follow the fleet: rows for devices that match, REMOVED for those that
-- stopped matching, a new attempt for those that match again.

-- name: active_continuous_jobs
-- The continuous jobs that follow the fleet now (one, or all), with their targets: each is
-- reconciled with its own compiled filter.
SELECT job_id, target_type, target_devices, target_filter, target_group
  FROM job_executions
 WHERE execution_type = 'continuous' AND status IN ('QUEUED', 'IN_PROGRESS')
   AND fanout_status = 'DONE' AND (end_at IS NULL OR end_at > %(now)s)
   AND target_type <> 'device'
   AND (%(job_id)s::uuid IS NULL OR job_id = %(job_id)s)
 ORDER BY job_id;

-- name: reconcile_add
-- Continuous jobs: a row for each matching device that has none yet (one device, one job, or
-- all of them). Held back when the job has a rollout config. A staged job puts the device in
-- its last stage, held back until that stage is released.
WITH added AS (
    INSERT INTO device_job_status (job_id, device_uuid, queued_at, released_at, stage)
    SELECT e.job_id, d.uuid, %(now)s,
           CASE WHEN e.rollout_config IS NULL AND coalesce(l.state, 'RELEASED') <> 'PENDING'
                THEN %(now)s END,
           l.stage
      FROM job_executions e
      LEFT JOIN LATERAL (SELECT s.stage, s.state FROM job_stages s
                          WHERE s.job_id = e.job_id ORDER BY s.stage DESC LIMIT 1) l ON true
      JOIN devices d ON {{target_filter}}
     WHERE e.job_id = %(job_id)s
       AND (%(device_uuid)s::uuid IS NULL OR d.uuid = %(device_uuid)s)
       AND NOT EXISTS (SELECT 1 FROM device_job_status s
                        WHERE s.job_id = e.job_id AND s.device_uuid = d.uuid)
    ON CONFLICT DO NOTHING
    RETURNING job_id, device_uuid, released_at
), totals AS (
    UPDATE job_executions e SET total_devices = e.total_devices + a.n
      FROM (SELECT job_id, count(*) AS n FROM added GROUP BY job_id) a
     WHERE e.job_id = a.job_id
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.queued', 'device_job', device_job_target_id(job_id, device_uuid),
           job_id, device_uuid,
           jsonb_build_object('to', 'QUEUED', 'reason', 'device matches a continuous job',
                              'execution_number', 1)
      FROM added
)
SELECT job_id, device_uuid, released_at IS NOT NULL AS released FROM added;

-- name: reconcile_remove
-- Continuous jobs: QUEUED rows of devices that no longer match become REMOVED.
WITH removed AS (
    UPDATE device_job_status s
       SET status = 'REMOVED', completed_at = %(now)s, last_updated_at = %(now)s,
           version_number = s.version_number + 1, reason = 'device no longer matches the target'
      FROM job_executions e, devices d
     WHERE s.job_id = e.job_id AND d.uuid = s.device_uuid
       AND e.job_id = %(job_id)s AND e.target_type = 'group'
       AND s.is_latest AND s.status = 'QUEUED'
       AND (%(device_uuid)s::uuid IS NULL OR s.device_uuid = %(device_uuid)s)
       AND NOT {{target_filter}}
    RETURNING s.job_id, s.device_uuid, s.execution_number, s.released_at
), events AS (
    INSERT INTO job_events (actor, action, target_type, target_id, job_id, device_uuid, details)
    SELECT %(actor)s, 'device_job.removed', 'device_job', device_job_target_id(job_id, device_uuid),
           job_id, device_uuid,
           jsonb_build_object('from', 'QUEUED', 'to', 'REMOVED',
                              'reason', 'device no longer matches the target',
                              'execution_number', execution_number)
      FROM removed
)
SELECT job_id, device_uuid, released_at IS NOT NULL AS released FROM removed;

-- name: rematched_rows
-- Continuous jobs: devices whose latest row was REMOVED and that match again.
SELECT s.id
  FROM device_job_status s
  JOIN devices d ON d.uuid = s.device_uuid
 WHERE s.job_id = %(job_id)s AND s.is_latest AND s.status = 'REMOVED'
   AND (%(device_uuid)s::uuid IS NULL OR s.device_uuid = %(device_uuid)s)
   AND {{target_filter}}
 LIMIT %(limit)s
   FOR UPDATE OF s SKIP LOCKED;
