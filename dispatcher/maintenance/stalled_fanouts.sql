-- name: stalled_fanouts
-- Unfinished fan-outs of started jobs with no enqueue and no committed chunk for a while.
SELECT job_id
  FROM job_executions
 WHERE fanout_status <> 'DONE' AND status <> 'SCHEDULED'
   AND greatest(queued_at, fanout_enqueued_at, fanout_progress_at)
       < %(now)s - make_interval(secs => %(stalled_after_s)s)
 ORDER BY id
 LIMIT %(limit)s;
