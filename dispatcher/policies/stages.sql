-- Staged rollouts: the stages of a job, the fan-out's assignment of devices to them, and the
-- release of a stage's rows.

-- name: insert_job_stages
-- A job's stages as planned when its fan-out starts, all PENDING; a second plan adds nothing.
INSERT INTO job_stages (job_id, stage, name, planned_size, target_filter, gate)
SELECT %(job_id)s, s.stage, s.name, s.planned_size, s.target_filter::jsonb, s.gate::jsonb
  FROM unnest(%(numbers)s::smallint[], %(names)s::text[], %(planned_sizes)s::integer[],
              %(filters)s::text[], %(gates)s::text[])
       AS s (stage, name, planned_size, target_filter, gate)
ON CONFLICT (job_id, stage) DO NOTHING;

-- name: job_stage_plan
-- A job's stages with how many devices each has now (the fan-out fills them in order).
SELECT s.stage, s.name, s.planned_size, s.target_filter, s.state,
       (SELECT coalesce(sum(c.n), 0) FROM job_stage_counts c
         WHERE c.job_id = s.job_id AND c.stage = s.stage)::bigint AS size
  FROM job_stages s
 WHERE s.job_id = %(job_id)s
 ORDER BY s.stage;

-- name: fanout_insert_stage_filtered
-- The devices of a stage with its own target_filter: the first of the job's target that match
-- the stage's filter and have no row yet, by uuid, up to the stage's size (NULL: every one).
WITH picked AS (
    SELECT d.uuid
      FROM devices d
     WHERE (%(device_uuids)s::uuid[] IS NULL OR d.uuid = ANY (%(device_uuids)s::uuid[]))
       AND {{target_filter}}
       AND {{stage_filter}}
       AND NOT EXISTS (SELECT 1 FROM device_job_status s
                        WHERE s.job_id = %(job_id)s AND s.device_uuid = d.uuid)
     ORDER BY d.uuid
     LIMIT %(limit)s
), inserted AS (
    INSERT INTO device_job_status (job_id, device_uuid, stage, released_at)
    SELECT %(job_id)s, picked.uuid, %(stage)s, CASE WHEN %(released)s THEN now() END
      FROM picked
    ON CONFLICT DO NOTHING
    RETURNING device_uuid, released_at
)
SELECT ARRAY(SELECT device_uuid FROM inserted WHERE released_at IS NOT NULL) AS inserted;

-- name: fanout_insert_staged_chunk
-- The next keyset page of a staged job's target, as fanout_insert_chunk, each new row given
-- its stage: the page's devices without a row (the filtered stages took theirs first) are
-- numbered in uuid order and fill the unfiltered stages in order, stage_ends[i] being the last
-- position stage_numbers[i] takes. Rows of a released stage are released at once.
{{part:target_page}}, fresh AS (
    SELECT page.uuid, row_number() OVER (ORDER BY page.uuid) AS position
      FROM page
     WHERE NOT %(has_filtered_stages)s
        OR NOT EXISTS (SELECT 1 FROM device_job_status s
                        WHERE s.job_id = %(job_id)s AND s.device_uuid = page.uuid)
), inserted AS (
    INSERT INTO device_job_status (job_id, device_uuid, stage, released_at)
    SELECT %(job_id)s, fresh.uuid, b.stage,
           CASE WHEN b.stage = ANY (%(released_stages)s::smallint[]) THEN now() END
      FROM fresh
     CROSS JOIN LATERAL (
           SELECT s.stage
             FROM unnest(%(stage_numbers)s::smallint[], %(stage_ends)s::bigint[])
                  AS s (stage, position_end)
            WHERE fresh.position <= s.position_end
            ORDER BY s.position_end
            LIMIT 1) b
    ON CONFLICT DO NOTHING
    RETURNING device_uuid, released_at
)
SELECT (SELECT count(*) FROM page) AS selected,
       (SELECT uuid FROM page ORDER BY uuid DESC LIMIT 1) AS last_uuid,
       ARRAY(SELECT device_uuid FROM inserted WHERE released_at IS NOT NULL) AS inserted;

-- name: lock_stage_for_release
-- One released stage, locked for one chunk of its release: two releases take turns, and the
-- second sees the rows the first released.
SELECT s.stage, s.state, s.rows_released_at, e.rollout_config IS NOT NULL AS held_by_rate
  FROM job_stages s
  JOIN job_executions e ON e.job_id = s.job_id
 WHERE s.job_id = %(job_id)s AND s.stage = %(stage)s
   FOR NO KEY UPDATE OF s;

-- name: release_stage_chunk
-- Release the next chunk of a stage's held-back rows: the chunk's first and last ids are found
-- on the stage's partial index, then one UPDATE releases every held-back row between them (a
-- range scan, no join).
WITH bound AS (
    SELECT min(id) AS first_id, max(id) AS last_id
      FROM (SELECT id FROM device_job_status
             WHERE job_id = %(job_id)s AND stage = %(stage)s
               AND released_at IS NULL AND status = 'QUEUED' AND stage IS NOT NULL
             ORDER BY id
             LIMIT %(chunk_size)s) chunk
), released AS (
    UPDATE device_job_status d
       SET released_at = now()
      FROM bound
     WHERE d.job_id = %(job_id)s AND d.stage = %(stage)s
       AND d.released_at IS NULL AND d.status = 'QUEUED' AND d.stage IS NOT NULL
       AND d.id BETWEEN bound.first_id AND bound.last_id
    RETURNING d.device_uuid
), progress AS (
    UPDATE job_stages
       SET release_progress_at = now(),
           rows_released_at = CASE WHEN (SELECT count(*) FROM released) < %(chunk_size)s
                                   THEN now() END
     WHERE job_id = %(job_id)s AND stage = %(stage)s
)
SELECT ARRAY(SELECT device_uuid FROM released) AS released;

-- name: stalled_stage_releases
-- Released stages whose rows are not all released and whose release shows no progress for a
-- while (the worker releasing them died, or the enqueue was lost).
SELECT job_id, stage
  FROM job_stages
 WHERE state = 'RELEASED' AND rows_released_at IS NULL
   AND coalesce(release_progress_at, released_at) < %(now)s - make_interval(secs => %(stalled_after_s)s)
 ORDER BY released_at
 LIMIT %(limit)s;

-- name: job_rollout
-- The rollout of a job: its state and reason, and each stage with its counters.
SELECT e.rollout_state, e.rollout_reason, coalesce(e.current_stage, 0) AS current_stage,
       e.stages AS configured_stages, e.requires_approval, e.approved_by, e.approved_at
  FROM job_executions e
 WHERE e.job_id = %(job_id)s;

-- name: job_rollout_stages
-- Each planned stage of a job with its counters, read from the stage's counter shards.
SELECT s.stage, s.name, s.state, s.planned_size, s.released_at, s.finished_at, s.soak_until,
       s.deadline_at, s.acknowledged_failures, s.gate, t.size, t.queued, t.in_progress,
       t.succeeded, t.failures
  FROM job_stages s
 CROSS JOIN LATERAL job_stage_totals(s.job_id, s.stage) t
 WHERE s.job_id = %(job_id)s
 ORDER BY s.stage;

-- name: mark_stage_released
-- A PENDING stage becomes RELEASED and its job's current stage; its deadline is its gate's
-- stage_timeout_minutes from now. rows_released_at stays NULL while its rows are to be released.
-- A rollout without a reason yet (the fan-out releasing the first stage) gets one.
WITH released AS (
    UPDATE job_stages s
       SET state = 'RELEASED', released_at = now(), release_progress_at = now(),
           deadline_at = now() + make_interval(mins => (s.gate ->> 'stage_timeout_minutes')::integer),
           rows_released_at = CASE WHEN %(rows_released)s THEN now() END
     WHERE s.job_id = %(job_id)s AND s.stage = %(stage)s AND s.state = 'PENDING'
    RETURNING s.job_id, s.stage, s.name
), current AS (
    UPDATE job_executions e
       SET current_stage = r.stage,
           rollout_reason = coalesce(e.rollout_reason, 'stage ' || r.name || ' released')
      FROM released r WHERE e.job_id = r.job_id
)
SELECT stage, name FROM released;
