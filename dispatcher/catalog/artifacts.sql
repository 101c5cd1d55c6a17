-- name: insert_artifact
-- A new artifact, unless this name already holds this very content (then nothing).
INSERT INTO artifacts (id, name, size, sha256, content_type, storage_key, created_by)
VALUES (%(id)s, %(name)s, %(size)s, %(sha256)s, %(content_type)s, %(storage_key)s,
        %(created_by)s)
ON CONFLICT (name, sha256) DO NOTHING
RETURNING id, name, size, sha256, content_type, created_by, created_at;

-- name: get_artifact_by_content
-- The artifact this name already holds with this content.
SELECT id, name, size, sha256, content_type, created_by, created_at
  FROM artifacts WHERE name = %(name)s AND sha256 = %(sha256)s;

-- name: get_artifact
-- One artifact with the executions that pinned it, newest first.
SELECT a.id, a.name, a.size, a.sha256, a.content_type, a.created_by, a.created_at,
       a.storage_key, uses.used_by
  FROM artifacts a
 CROSS JOIN LATERAL (
       SELECT coalesce(jsonb_agg(jsonb_build_object(
                  'job_id', e.job_id, 'job_name', e.job_name, 'status', e.status)
                  ORDER BY e.queued_at DESC), '[]'::jsonb) AS used_by
         FROM job_artifacts ja JOIN job_executions e ON e.job_id = ja.job_id
        WHERE ja.artifact_id = a.id) uses
 WHERE a.id = %(id)s;

-- name: list_artifacts
-- A page of artifacts, newest first, each with its live executions (at most 20 named).
SELECT a.id, a.name, a.size, a.sha256, a.content_type, a.created_by, a.created_at,
       uses.used_by
  FROM artifacts a
 CROSS JOIN LATERAL (
       SELECT coalesce(jsonb_agg(jsonb_build_object(
                  'job_id', u.job_id, 'job_name', u.job_name, 'status', u.status)), '[]'::jsonb)
              AS used_by
         FROM (SELECT e.job_id, e.job_name, e.status
                 FROM job_artifacts ja JOIN job_executions e ON e.job_id = ja.job_id
                WHERE ja.artifact_id = a.id AND e.status = ANY(%(live)s)
                ORDER BY e.queued_at DESC LIMIT 20) u) uses
 ORDER BY a.created_at DESC, a.id
 LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_artifacts
-- How many artifacts there are.
SELECT count(*) AS n FROM artifacts;

-- name: lock_artifact
-- One artifact, locked until the end of the transaction for its delete (an execute pinning
-- it holds it FOR SHARE until committed).
SELECT id, name, size, sha256, content_type, created_by, created_at, storage_key
  FROM artifacts WHERE id = %(id)s FOR UPDATE;

-- name: artifact_live_jobs
-- The live executions that pinned an artifact (read after locking it, so none is missed).
SELECT e.job_id
  FROM job_artifacts ja JOIN job_executions e ON e.job_id = ja.job_id
 WHERE ja.artifact_id = %(id)s AND e.status = ANY(%(live)s)
 ORDER BY e.queued_at;

-- name: delete_artifact
-- Remove an artifact; answers whether another artifact still holds its content.
WITH gone AS (DELETE FROM artifacts WHERE id = %(id)s RETURNING sha256)
SELECT EXISTS (SELECT 1 FROM artifacts a, gone WHERE a.sha256 = gone.sha256
                AND a.id <> %(id)s) AS content_kept;

-- name: artifact_kept
-- Whether any artifact holds this content (an upload that failed its check leaves it alone).
SELECT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = %(sha256)s) AS kept;

-- name: resolve_artifacts
-- The artifact each reference names: by id, else the newest upload of that name. Locked
-- against a delete until the execution that pins them is committed.
SELECT r.reference, a.id, a.name, a.sha256, a.size
  FROM unnest(%(references)s::text[]) AS r(reference)
 CROSS JOIN LATERAL (
       SELECT id, name, sha256, size FROM artifacts
        WHERE name = r.reference
           OR (r.reference ~* '^[0-9a-f-]{36}$' AND id::text = lower(r.reference))
        ORDER BY (id::text = lower(r.reference)) DESC, created_at DESC
        LIMIT 1 FOR SHARE) a;

-- name: insert_job_artifacts
-- The artifacts an execution pinned.
INSERT INTO job_artifacts (job_id, artifact_id)
SELECT %(job_id)s, unnest(%(artifact_ids)s::uuid[])
ON CONFLICT DO NOTHING;

-- name: get_device_artifact
-- An artifact for a device, only while one of its unfinished executions (or a run of a
-- recurring execution) pinned it.
SELECT a.id, a.name, a.size, a.sha256, a.content_type, a.storage_key
  FROM artifacts a
 WHERE a.id = %(id)s
   AND EXISTS (
       SELECT 1
         FROM device_job_status s JOIN job_executions e ON e.job_id = s.job_id
         JOIN job_artifacts ja ON ja.job_id IN (e.job_id, e.parent_job_id)
        WHERE s.device_uuid = %(device_uuid)s AND s.is_latest
          AND s.status = ANY(%(pending)s) AND ja.artifact_id = a.id);
