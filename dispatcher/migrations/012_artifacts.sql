-- Files uploaded once and delivered to devices by download-file steps ("artifact:NAME").
-- The bytes live in the artifact storage under their sha256 (stored once, whatever the number
-- of names); a name may be uploaded again with new content, and an execution keeps the
-- artifact it was pinned to at execute.
CREATE TABLE artifacts (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (name <> '' AND length(name) <= 255),
    size bigint NOT NULL CHECK (size >= 0),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type text NOT NULL,
    storage_key text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, sha256)
);
CREATE INDEX artifacts_name_created_at ON artifacts (name, created_at DESC);
CREATE INDEX artifacts_sha256 ON artifacts (sha256);

-- The artifacts each execution pinned at execute: what its devices may download, and what may
-- not be deleted while the execution is live.
CREATE TABLE job_artifacts (
    job_id uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    artifact_id uuid NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, artifact_id)
);
CREATE INDEX job_artifacts_artifact_id ON job_artifacts (artifact_id);
