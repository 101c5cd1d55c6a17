-- name: prunable_executions
-- Finished executions past their retention, oldest first: finished before the cutoff, or a
-- recurring job's finished runs beyond the newest ones kept. Never one a device still runs
-- (a job canceled without force leaves its IN_PROGRESS devices running), nor a job with runs
-- left (its runs go first).
WITH aged AS (
    SELECT j.job_id, 'executions' AS kind, j.completed_at AS mark
      FROM job_executions j
     WHERE %(finished_before)s::timestamptz IS NOT NULL
       AND j.status IN ('SUCCEEDED', 'FAILED', 'CANCELED')
       AND j.completed_at < %(finished_before)s::timestamptz
), surplus AS (
    SELECT r.job_id, 'recurring_runs' AS kind, r.scheduled_for AS mark
      FROM job_executions p
      CROSS JOIN LATERAL (
          SELECT run.job_id, run.status, run.scheduled_for
            FROM job_executions run
           WHERE run.parent_job_id = p.job_id
           ORDER BY run.id DESC
          OFFSET %(runs_kept)s
      ) r
     WHERE %(runs_kept)s::integer > 0 AND p.execution_type = 'recurring'
       AND p.parent_job_id IS NULL
       AND r.status IN ('SUCCEEDED', 'FAILED', 'CANCELED')
), candidates AS (
    SELECT DISTINCT ON (job_id) job_id, kind, mark
      FROM (SELECT * FROM aged UNION ALL SELECT * FROM surplus) c
     ORDER BY job_id, kind
)
SELECT c.job_id, c.kind, c.mark
  FROM candidates c
 WHERE NOT EXISTS (SELECT 1 FROM job_executions run WHERE run.parent_job_id = c.job_id)
   AND coalesce((SELECT sum(n) FROM job_status_counts s
                  WHERE s.job_id = c.job_id AND s.status IN ('QUEUED', 'IN_PROGRESS')), 0) = 0
 ORDER BY c.mark
 LIMIT %(jobs)s;

-- name: delete_rows_of_pruned_jobs
-- One batch of the device rows of pruned jobs. Only terminal rows of a job still finished:
-- a job retried meanwhile keeps its rows.
WITH doomed AS (
    SELECT d.id FROM device_job_status d
     WHERE d.job_id = ANY(%(job_ids)s::uuid[])
       AND d.status NOT IN ('QUEUED', 'IN_PROGRESS')
       AND EXISTS (SELECT 1 FROM job_executions j WHERE j.job_id = d.job_id
                      AND j.status IN ('SUCCEEDED', 'FAILED', 'CANCELED'))
     LIMIT %(batch_size)s
       FOR UPDATE SKIP LOCKED
)
DELETE FROM device_job_status d USING doomed WHERE d.id = doomed.id;

-- name: delete_signatures_of_pruned_jobs
-- One batch of the per-device signatures of pruned jobs.
WITH doomed AS (
    SELECT s.job_id, s.device_uuid FROM job_device_signatures s
     WHERE s.job_id = ANY(%(job_ids)s::uuid[])
       AND EXISTS (SELECT 1 FROM job_executions j WHERE j.job_id = s.job_id
                      AND j.status IN ('SUCCEEDED', 'FAILED', 'CANCELED'))
     LIMIT %(batch_size)s
)
DELETE FROM job_device_signatures s USING doomed
 WHERE s.job_id = doomed.job_id AND s.device_uuid = doomed.device_uuid;

-- name: delete_pruned_executions
-- The pruned jobs themselves, once no device row of theirs is left (their stages, waves and
-- counters go with them); a job retried or given runs meanwhile stays.
WITH removed AS (
    DELETE FROM job_executions j
     WHERE j.job_id = ANY(%(job_ids)s::uuid[])
       AND j.status IN ('SUCCEEDED', 'FAILED', 'CANCELED')
       AND NOT EXISTS (SELECT 1 FROM device_job_status d WHERE d.job_id = j.job_id)
       AND NOT EXISTS (SELECT 1 FROM job_executions run WHERE run.parent_job_id = j.job_id)
    RETURNING j.job_id
)
SELECT count(*)::integer AS n FROM removed;

-- name: expired_job_event_months
-- The first instants of the months of job_events whose partition is wholly before the cutoff,
-- oldest first (partitions are named job_events_pYYYYMM, months in UTC).
SELECT month_start
  FROM (SELECT to_date(substring(c.relname FROM '^job_events_p([0-9]{6})$'), 'YYYYMM')
               ::timestamp AT TIME ZONE 'UTC' AS month_start
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'job_events'::regclass) months
 WHERE month_start IS NOT NULL
   AND (month_start AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'
       <= %(happened_before)s
 ORDER BY month_start;

-- name: drop_job_events_month
-- One month of audit events dropped whole, unless it holds an event of a live job.
SELECT outcome, rows_removed
  FROM drop_job_events_month(%(month_start)s, %(lock_timeout_ms)s);

-- name: delete_old_audit_events
-- One batch of audit events older than the cutoff, except those of a live job: what is left
-- in a month kept for a live job's events, and in the default partition.
WITH doomed AS (
    SELECT e.id, e.occurred_at FROM job_events e
     WHERE e.occurred_at < %(happened_before)s
       AND (e.job_id IS NULL OR e.job_id NOT IN (SELECT job_id FROM live_job_ids))
     LIMIT %(batch_size)s
)
DELETE FROM job_events e USING doomed
 WHERE e.id = doomed.id AND e.occurred_at = doomed.occurred_at
   AND e.occurred_at < %(happened_before)s;

-- name: record_history_prune
-- What a run of the sweep removed, so that the API and the portal can say so.
INSERT INTO history_prunes AS p (kind, pruned_before, pruned_at, rows_removed)
VALUES (%(kind)s, %(pruned_before)s, %(now)s, %(rows_removed)s)
ON CONFLICT (kind) DO UPDATE
   SET pruned_before = greatest(p.pruned_before, excluded.pruned_before),
       pruned_at = excluded.pruned_at,
       rows_removed = p.rows_removed + excluded.rows_removed;
