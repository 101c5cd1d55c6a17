-- The whole data model: the seed's four tables with their columns, plus devices, the audit
-- trail, API tokens and the sharded per-job status counters.

CREATE TABLE devices (
    uuid          uuid PRIMARY KEY,
    device_name   text NOT NULL,
    device_type   text NOT NULL DEFAULT 'generic',
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz
);
-- Group targeting: {"environment": "production"} is containment (@>) on attributes.
CREATE INDEX devices_attributes_gin ON devices USING gin (attributes jsonb_path_ops);
CREATE INDEX devices_type_idx ON devices (device_type, uuid);

CREATE TABLE job_templates (
    id            serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    description   text,
    category      text NOT NULL DEFAULT 'custom'
                  CHECK (category IN ('system', 'maintenance', 'deployment', 'custom')),
    job_document  jsonb NOT NULL,
    -- Declared {{NAME}} placeholders and their defaults: {"SERVICE_NAME": "nginx"}.
    parameters    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(parameters) = 'object'),
    created_by    text,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_templates_category_idx ON job_templates (category);

CREATE TABLE job_handlers (
    id             serial PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    description    text,
    script_type    text NOT NULL CHECK (script_type IN ('bash', 'python', 'node')),
    script_content text NOT NULL,
    script_sha256  text NOT NULL,
    permissions    text NOT NULL DEFAULT '700' CHECK (permissions ~ '^[0-7]{3,4}$'),
    default_args   jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(default_args) = 'array'),
    created_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_executions (
    id                 bigserial PRIMARY KEY,
    job_id             uuid NOT NULL UNIQUE,
    template_id        integer REFERENCES job_templates (id) ON DELETE SET NULL,
    job_name           text NOT NULL,
    job_document       jsonb NOT NULL,
    parameters         jsonb NOT NULL DEFAULT '{}'::jsonb,
    target_type        text NOT NULL CHECK (target_type IN ('device', 'group', 'all')),
    target_devices     uuid[],
    target_filter      jsonb,
    execution_type     text NOT NULL DEFAULT 'oneTime'
                       CHECK (execution_type IN ('oneTime', 'recurring', 'continuous')),
    status             text NOT NULL DEFAULT 'QUEUED'
                       CHECK (status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS', 'SUCCEEDED',
                                         'FAILED', 'CANCELED')),
    -- Devices targeted. Live per-status counts are in job_status_counts; the two seed counters
    -- below are a snapshot written when the execution completes.
    total_devices      integer NOT NULL DEFAULT 0,
    succeeded_devices  integer NOT NULL DEFAULT 0,
    failed_devices     integer NOT NULL DEFAULT 0,
    -- Fan-out progress: rows are inserted in keyset-paged chunks after fanout_cursor.
    fanout_status      text NOT NULL DEFAULT 'PENDING'
                       CHECK (fanout_status IN ('PENDING', 'RUNNING', 'DONE')),
    fanout_cursor      uuid,
    fanout_enqueued_at timestamptz,
    fanout_started_at  timestamptz,
    fanout_done_at     timestamptz,
    reason             text,
    queued_at          timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    created_by         text
);
CREATE INDEX job_executions_status_idx ON job_executions (status, id DESC);
CREATE INDEX job_executions_queued_at_idx ON job_executions (id DESC);
CREATE INDEX job_executions_fanout_pending_idx ON job_executions (fanout_enqueued_at)
    WHERE fanout_status <> 'DONE';

CREATE TABLE device_job_status (
    id                bigserial PRIMARY KEY,
    job_id            uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    device_uuid       uuid NOT NULL REFERENCES devices (uuid) ON DELETE CASCADE,
    status            text NOT NULL DEFAULT 'QUEUED'
                      CHECK (status IN ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED',
                                        'TIMED_OUT', 'REJECTED', 'CANCELED', 'REMOVED')),
    execution_number  integer NOT NULL DEFAULT 1 CHECK (execution_number >= 1),
    version_number    integer NOT NULL DEFAULT 1,
    -- A retry adds a row with execution_number + 1; only the newest row of a device counts.
    is_latest         boolean NOT NULL DEFAULT true,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz,
    last_updated_at   timestamptz NOT NULL DEFAULT now(),
    exit_code         integer,
    stdout            text,
    stderr            text,
    stdout_truncated  boolean NOT NULL DEFAULT false,
    stderr_truncated  boolean NOT NULL DEFAULT false,
    reason            text,
    executed_steps    integer,
    failed_step       text,
    status_details    jsonb,
    UNIQUE (job_id, device_uuid, execution_number)
);
-- The poll: a device's pending rows, oldest first.
CREATE INDEX device_job_status_pending_idx ON device_job_status (device_uuid, queued_at)
    WHERE status IN ('QUEUED', 'IN_PROGRESS');
-- A device's history, newest first.
CREATE INDEX device_job_status_device_idx ON device_job_status (device_uuid, id DESC);
CREATE UNIQUE INDEX device_job_status_latest_idx ON device_job_status (job_id, device_uuid)
    WHERE is_latest;

-- Per-job device counts by status, split over shards so that thousands of devices of one job
-- reporting at once do not all queue on one row. Kept exact by statement triggers in the same
-- transaction as the status change; readers sum the shards.
CREATE TABLE job_status_counts (
    job_id  uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    status  text NOT NULL,
    shard   smallint NOT NULL,
    n       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, status, shard)
);

CREATE FUNCTION job_status_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_status_counts AS c (job_id, status, shard, n)
        SELECT job_id, status, (pg_backend_pid() % 16)::smallint, count(*)
          FROM new_rows WHERE is_latest
         GROUP BY job_id, status ORDER BY job_id, status
        ON CONFLICT (job_id, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO job_status_counts AS c (job_id, status, shard, n)
        SELECT job_id, status, (pg_backend_pid() % 16)::smallint, sum(delta)
          FROM (SELECT job_id, status, -1 AS delta FROM old_rows WHERE is_latest
                UNION ALL
                SELECT job_id, status, 1 FROM new_rows WHERE is_latest) d
         GROUP BY job_id, status HAVING sum(delta) <> 0 ORDER BY job_id, status
        ON CONFLICT (job_id, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO job_status_counts AS c (job_id, status, shard, n)
        SELECT o.job_id, o.status, (pg_backend_pid() % 16)::smallint, -count(*)
          FROM old_rows o
         WHERE o.is_latest AND EXISTS (SELECT 1 FROM job_executions e WHERE e.job_id = o.job_id)
         GROUP BY o.job_id, o.status ORDER BY o.job_id, o.status
        ON CONFLICT (job_id, status, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER device_job_status_count_insert AFTER INSERT ON device_job_status
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_status_counts_apply();
CREATE TRIGGER device_job_status_count_update AFTER UPDATE ON device_job_status
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_status_counts_apply();
CREATE TRIGGER device_job_status_count_delete AFTER DELETE ON device_job_status
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_status_counts_apply();

-- Audit trail: who did what to which thing, and when.
CREATE TABLE job_events (
    id           bigserial PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text NOT NULL,
    job_id       uuid,
    device_uuid  uuid,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX job_events_target_idx ON job_events (target_type, target_id, id);

CREATE TABLE api_tokens (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'viewer')),
    token_hash  bytea NOT NULL UNIQUE,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at  timestamptz
);
