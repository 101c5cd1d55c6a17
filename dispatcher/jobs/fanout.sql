-- name: fanout_lock_job
-- Lock the execution for one chunk: a concurrent cancel, or a second copy of the task, waits
-- for the chunk to commit and then sees its rows.
SELECT job_id, status, target_type, target_devices, target_filter, target_group, fanout_status,
       fanout_cursor,
       stages, rollout_state, rollout_config, total_devices, current_stage
  FROM job_executions
 WHERE job_id = %(job_id)s
   FOR NO KEY UPDATE;

-- part: target_page
-- The next keyset page of target devices after the cursor, for fanout_insert_chunk and
-- fanout_insert_staged_chunk. A NULL device list means any device, and the target's compiled
-- filter fills its slot (run unprepared, so each page is planned for the filter it has and
-- uses the index that fits).
WITH page AS (
    SELECT d.uuid
      FROM devices d
     WHERE (%(cursor)s::uuid IS NULL OR d.uuid > %(cursor)s::uuid)
       AND (%(device_uuids)s::uuid[] IS NULL OR d.uuid = ANY (%(device_uuids)s::uuid[]))
       AND {{target_filter}}
     ORDER BY d.uuid
     LIMIT %(chunk_size)s
)

-- name: fanout_insert_chunk
-- The next keyset page of target devices after the cursor becomes QUEUED rows of the job;
-- devices that already have a row are skipped, so a chunk that runs twice adds nothing. A job
-- with a rollout_config gets its rows held back (released_at NULL, released in waves by beat);
-- ``inserted`` lists the new rows released now, the devices to nudge.
{{part:target_page}}, inserted AS (
    INSERT INTO device_job_status (job_id, device_uuid, released_at)
    SELECT %(job_id)s, page.uuid, CASE WHEN e.rollout_config IS NULL THEN now() END
      FROM page, job_executions e
     WHERE e.job_id = %(job_id)s
    ON CONFLICT DO NOTHING
    RETURNING device_uuid, released_at
)
SELECT (SELECT count(*) FROM page) AS selected,
       (SELECT uuid FROM page ORDER BY uuid DESC LIMIT 1) AS last_uuid,
       ARRAY(SELECT device_uuid FROM inserted WHERE released_at IS NOT NULL) AS inserted;

-- name: fanout_advance
-- Record a committed chunk: the cursor moves past it, in the chunk's own transaction.
UPDATE job_executions
   SET fanout_status = 'RUNNING',
       fanout_cursor = %(cursor)s,
       fanout_started_at = coalesce(fanout_started_at, now()),
       fanout_progress_at = now()
 WHERE job_id = %(job_id)s;

-- name: fanout_finish
-- The fan-out is complete: total_devices becomes the number of devices that have a row.
UPDATE job_executions e
   SET fanout_status = 'DONE',
       fanout_cursor = coalesce(%(cursor)s, e.fanout_cursor),
       fanout_started_at = coalesce(e.fanout_started_at, now()),
       fanout_progress_at = now(),
       fanout_done_at = now(),
       total_devices = (SELECT coalesce(sum(c.n), 0) FROM job_status_counts c
                         WHERE c.job_id = e.job_id)
 WHERE e.job_id = %(job_id)s
RETURNING e.total_devices;
