-- When a fan-out last committed a chunk. The sweeper re-enqueues a fan-out only when neither
-- an enqueue nor a committed chunk happened recently, so a long fan-out that is making progress
-- is left alone while one whose worker died is picked up again.
ALTER TABLE job_executions ADD COLUMN fanout_progress_at timestamptz;
