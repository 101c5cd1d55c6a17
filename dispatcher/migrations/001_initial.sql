-- The whole data model. The product guide's four tables keep their names and columns
-- (job_templates, job_executions, device_job_status, job_handlers); the rest is ours: devices,
-- the audit trail, API tokens, the sharded per-job status counters, the device signatures that
-- count any target, rollout waves, and the notifications that keep the API processes' idle
-- devices exact. dispatcher/schema.sql is this schema as PostgreSQL dumps it.

-- Statuses, execution types and end behaviors are checked here as the literals of
-- schemas/vocabulary.py, which every Python module takes them from.

-- Devices ----------------------------------------------------------------------------------

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

-- Whether a device is reached by a job's stored target (continuous jobs follow the fleet):
-- target_type all reaches every device; a group filter matches device_type against the column
-- and every other key by containment on the attributes.
CREATE FUNCTION device_matches_target(p_device_type text, p_attributes jsonb,
                                      p_target_type text, p_target_filter jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_target_type
               WHEN 'all' THEN true
               WHEN 'group' THEN (NOT p_target_filter ? 'device_type'
                                  OR p_device_type = p_target_filter ->> 'device_type')
                                 AND p_attributes @> (p_target_filter - 'device_type')
               ELSE false
           END
$$;

-- Devices per signature: one row per distinct (device_type, attributes) with the number of
-- devices that have exactly it, kept exact by statement-level triggers in the same transaction
-- as the change. Every target is counted from here, whatever its filter:
--     SELECT sum(n) FROM device_signatures WHERE device_type = … AND attributes @> filter
-- is exact because each device belongs to exactly one signature, and a signature matches a
-- filter exactly when its devices do. The cost grows with the number of matching distinct
-- signatures, not with devices: a fleet of a million devices described by a few hundred
-- combinations is counted from a few hundred rows.
--
-- A fleet whose devices each carry a unique attribute (a serial number, say) has one signature
-- per device; counting it then costs what a count over devices would (a GIN scan for a filter,
-- a scan of this table for the whole fleet or a device_type).
--
-- Rows are keyed on a hash of the type and the attributes' text, the full values kept beside
-- it. The text, not jsonb equality: {"rack": 7} and {"rack": 7.0} are equal jsonb but render
-- differently, so they are two signatures (both matching {"rack": 7}), and a device's row is
-- always found again under the key it was counted with. One row per signature (no shards):
-- concurrent registrations of the same signature queue on its row only for their commit.
CREATE TABLE device_signatures (
    signature    uuid PRIMARY KEY,
    device_type  text NOT NULL,
    attributes   jsonb NOT NULL,
    n            bigint NOT NULL
) WITH (fillfactor = 70);  -- room for HOT updates: n changes, no indexed column does
CREATE INDEX device_signatures_attributes_gin
    ON device_signatures USING gin (attributes jsonb_path_ops);
CREATE INDEX device_signatures_type_idx ON device_signatures (device_type);

CREATE FUNCTION device_signature(device_type text, attributes jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT md5(jsonb_build_array(device_type, attributes)::text)::uuid
$$;

-- Adds signature deltas, given per (device_type, attributes text), in key order (so concurrent
-- statements lock shared rows in the same order and cannot deadlock); signatures left with no
-- device are deleted.
CREATE FUNCTION device_signatures_add(added_types text[], added_attributes text[], added bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH given AS (
        SELECT t.device_type, t.attributes::jsonb AS attributes, t.delta
          FROM unnest(added_types, added_attributes, added) AS t (device_type, attributes, delta)
    )
    INSERT INTO device_signatures AS s (signature, device_type, attributes, n)
    SELECT device_signature(device_type, attributes), device_type, attributes, delta
      FROM given
     ORDER BY 1
    ON CONFLICT (signature) DO UPDATE SET n = s.n + excluded.n;
    DELETE FROM device_signatures s
     USING unnest(added_types, added_attributes, added) AS t (device_type, attributes, delta)
     WHERE t.delta < 0
       AND s.signature = device_signature(t.device_type, t.attributes::jsonb)
       AND s.n = 0;
END $$;

-- The devices a statement added, removed or moved, aggregated per signature. An UPDATE counts
-- only the rows whose type or attributes text changed, so last_seen_at writes move nothing.
CREATE FUNCTION device_signatures_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    added_types text[];
    added_attributes text[];
    added bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(g.device_type), array_agg(g.attributes), array_agg(g.delta)
          INTO added_types, added_attributes, added
          FROM (SELECT r.device_type, r.attributes::text AS attributes, count(*) AS delta
                  FROM new_rows r GROUP BY 1, 2) g;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(g.device_type), array_agg(g.attributes), array_agg(g.delta)
          INTO added_types, added_attributes, added
          FROM (SELECT r.device_type, r.attributes::text AS attributes, -count(*) AS delta
                  FROM old_rows r GROUP BY 1, 2) g;
    ELSE
        -- Full join on uuid: a row whose uuid changed leaves one signature and joins another.
        SELECT array_agg(g.device_type), array_agg(g.attributes), array_agg(g.delta)
          INTO added_types, added_attributes, added
          FROM (SELECT m.device_type, m.attributes, sum(m.delta) AS delta
                  FROM old_rows o
                  FULL JOIN new_rows r ON r.uuid = o.uuid
                 CROSS JOIN LATERAL (VALUES (o.device_type, o.attributes::text, -1),
                                            (r.device_type, r.attributes::text, 1))
                       AS m (device_type, attributes, delta)
                 WHERE m.device_type IS NOT NULL
                   AND (o.uuid IS NULL OR r.uuid IS NULL
                        OR o.device_type <> r.device_type
                        OR o.attributes::text <> r.attributes::text)
                 GROUP BY 1, 2
                HAVING sum(m.delta) <> 0) g;
    END IF;
    IF added IS NOT NULL THEN
        PERFORM device_signatures_add(added_types, added_attributes, added);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION device_signatures_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM device_signatures;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_signature_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_apply();
CREATE TRIGGER devices_signature_delete AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_apply();
-- Transition tables rule out a column list, so this fires for every UPDATE statement on
-- devices; for one that changes no type or attributes it reads its rows once and writes none.
CREATE TRIGGER devices_signature_update AFTER UPDATE ON devices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_apply();
CREATE TRIGGER devices_signature_truncate AFTER TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION device_signatures_clear();

-- Templates and handlers -------------------------------------------------------------------

CREATE TABLE job_templates (
    id                 serial PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    description        text,
    category           text NOT NULL DEFAULT 'custom'
                       CHECK (category IN ('system', 'maintenance', 'deployment', 'custom')),
    job_document       jsonb NOT NULL,
    -- Declared {{NAME}} placeholders and their defaults: {"SERVICE_NAME": "nginx"}.
    parameters         jsonb NOT NULL DEFAULT '{}'::jsonb
                       CHECK (jsonb_typeof(parameters) = 'object'),
    created_by         text,
    is_active          boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- Default execution policies of the template's executions (NULL: none), as the API took them.
    execution_type     text CHECK (execution_type IN ('oneTime', 'recurring', 'continuous')),
    schedule           jsonb,
    scheduling_config  jsonb,
    rollout_config     jsonb,
    abort_config       jsonb,
    timeout_config     jsonb,
    retry_config       jsonb
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

-- Executions ------------------------------------------------------------------------------

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
    -- below are a snapshot written when the execution completes or is canceled.
    total_devices      integer NOT NULL DEFAULT 0,
    succeeded_devices  integer NOT NULL DEFAULT 0,
    failed_devices     integer NOT NULL DEFAULT 0,
    -- Fan-out progress: rows are inserted in keyset-paged chunks after fanout_cursor. The
    -- sweeper enqueues a fan-out again only when neither an enqueue nor a committed chunk
    -- happened recently, so a long fan-out making progress is left alone.
    fanout_status      text NOT NULL DEFAULT 'PENDING'
                       CHECK (fanout_status IN ('PENDING', 'RUNNING', 'DONE')),
    fanout_cursor      uuid,
    fanout_enqueued_at timestamptz,
    fanout_started_at  timestamptz,
    fanout_progress_at timestamptz,
    fanout_done_at     timestamptz,
    reason             text,
    queued_at          timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    created_by         text,
    -- Execution policies, each stored as the validated JSON the API took; the few values the
    -- sweeps filter on are also columns, so each sweep is one indexed query.
    -- A run of a recurring job points at its parent; scheduled_for is the cron slot it fills.
    parent_job_id      uuid REFERENCES job_executions (job_id) ON DELETE CASCADE,
    scheduled_for      timestamptz,
    schedule           jsonb,
    scheduling_config  jsonb,
    rollout_config     jsonb,
    abort_config       jsonb,
    timeout_config     jsonb,
    retry_config       jsonb,
    -- scheduling_config.start_time / end_time (or schedule.end_time for a recurring parent).
    start_at           timestamptz,
    end_at             timestamptz,
    end_behavior       text CHECK (end_behavior IN ('STOP_ROLLOUT', 'CANCEL', 'FORCE_CANCEL')),
    -- When the end behavior was applied, so the end-time sweep handles each job once.
    end_applied_at     timestamptz,
    -- Recurring parent: the next cron slot to fire and how many runs it has fired.
    next_run_at        timestamptz,
    run_count          integer NOT NULL DEFAULT 0,
    -- Maintenance windows: the current or next window [window_opens_at, window_closes_at).
    -- Devices receive the job only inside it; both NULL means no windows (always open).
    window_opens_at    timestamptz,
    window_closes_at   timestamptz,
    -- The opening time of the window whose waiting devices have been nudged: the sweep claims
    -- a window by setting it, so two beats nudge once.
    window_nudged_for  timestamptz,
    -- Rollout: rows released to their devices so far, for exponential rates.
    released_devices   integer NOT NULL DEFAULT 0,
    CONSTRAINT job_executions_run_has_slot CHECK ((parent_job_id IS NULL) = (scheduled_for IS NULL))
);
CREATE INDEX job_executions_status_idx ON job_executions (status, id DESC);
CREATE INDEX job_executions_fanout_pending_idx ON job_executions (fanout_enqueued_at)
    WHERE fanout_status <> 'DONE';
-- One run per parent and slot: two beats firing the same slot insert one row.
CREATE UNIQUE INDEX job_executions_run_slot_idx ON job_executions (parent_job_id, scheduled_for)
    WHERE parent_job_id IS NOT NULL;
CREATE INDEX job_executions_runs_idx ON job_executions (parent_job_id, id DESC)
    WHERE parent_job_id IS NOT NULL;
-- Sweeps look only at live jobs that carry the policy in question.
CREATE INDEX job_executions_recurring_due_idx ON job_executions (next_run_at)
    WHERE execution_type = 'recurring' AND status = 'SCHEDULED';
CREATE INDEX job_executions_start_due_idx ON job_executions (start_at)
    WHERE status = 'SCHEDULED' AND execution_type <> 'recurring';
CREATE INDEX job_executions_end_due_idx ON job_executions (end_at)
    WHERE end_at IS NOT NULL AND end_applied_at IS NULL
      AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS');
CREATE INDEX job_executions_live_windows ON job_executions (window_closes_at)
    WHERE window_closes_at IS NOT NULL AND status IN ('SCHEDULED', 'QUEUED', 'IN_PROGRESS');

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
    -- NULL: held back by a rollout, invisible to the device poll until a wave releases it.
    released_at       timestamptz DEFAULT now(),
    -- When a QUEUED or IN_PROGRESS row is overdue and becomes TIMED_OUT.
    timeout_at        timestamptz,
    UNIQUE (job_id, device_uuid, execution_number)
);
-- The poll: a device's pending rows, oldest first.
CREATE INDEX device_job_status_pending_idx ON device_job_status (device_uuid, queued_at)
    WHERE status IN ('QUEUED', 'IN_PROGRESS');
-- A device's history, newest first.
CREATE INDEX device_job_status_device_idx ON device_job_status (device_uuid, id DESC);
CREATE UNIQUE INDEX device_job_status_latest_idx ON device_job_status (job_id, device_uuid)
    WHERE is_latest;
-- Reading and moving one job's rows by status: the per-job device list with a status filter,
-- bulk cancel (QUEUED rows) and retry (failed rows), each paged by device uuid.
CREATE INDEX device_job_status_job_status_idx ON device_job_status (job_id, status, device_uuid)
    WHERE is_latest;
CREATE INDEX device_job_status_timeout_idx ON device_job_status (timeout_at)
    WHERE status IN ('QUEUED', 'IN_PROGRESS') AND timeout_at IS NOT NULL;
CREATE INDEX device_job_status_unreleased_idx ON device_job_status (job_id, id)
    WHERE released_at IS NULL AND status = 'QUEUED';
-- Auto-retry and abort look at the failed rows of one job.
CREATE INDEX device_job_status_failed_idx ON device_job_status (job_id)
    WHERE is_latest AND status IN ('FAILED', 'TIMED_OUT');

-- The audit trail's id of one device's execution of one job.
CREATE FUNCTION device_job_target_id(p_job_id uuid, p_device_uuid uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_job_id::text || '/' || p_device_uuid::text
$$;

-- One row per rollout wave: the sliding one-minute rate limit sums the last minute's waves.
CREATE TABLE rollout_waves (
    id           bigserial PRIMARY KEY,
    job_id       uuid NOT NULL REFERENCES job_executions (job_id) ON DELETE CASCADE,
    released_at  timestamptz NOT NULL,
    n            integer NOT NULL CHECK (n > 0)
);
CREATE INDEX rollout_waves_job_idx ON rollout_waves (job_id, released_at);

-- Counters --------------------------------------------------------------------------------

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

-- The per-job totals every completion decision and every counter read starts from: the shards
-- of job_status_counts summed, failures being FAILED, TIMED_OUT and REJECTED.
CREATE FUNCTION job_status_totals(p_job_id uuid)
RETURNS TABLE (pending bigint, succeeded bigint, failures bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(n) FILTER (WHERE status IN ('QUEUED', 'IN_PROGRESS')), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'SUCCEEDED'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status IN ('FAILED', 'TIMED_OUT', 'REJECTED')), 0)::bigint
      FROM job_status_counts
     WHERE job_id = p_job_id
$$;

-- Retries are counted per failure type, as each retry criterion says: "number_of_retries" for
-- FAILED, for TIMED_OUT, or for ALL failures (the criterion for the exact type wins over ALL).
-- A device that failed once and then timed out has used one FAILED retry and no TIMED_OUT one;
-- an ALL criterion counts every failure retried so far. The retries a device has used for a
-- type are its superseded attempts of the job that ended in that type; fewer earlier attempts
-- than the limit settle it without counting them.
CREATE FUNCTION retry_allowed(p_retry_config jsonb, p_status text, p_execution_number integer,
                              p_job_id uuid, p_device_uuid uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT CASE
                   WHEN p_execution_number - 1 < c.retries THEN true
                   ELSE (SELECT count(*)
                           FROM device_job_status d
                          WHERE d.device_uuid = p_device_uuid AND d.job_id = p_job_id
                            AND NOT d.is_latest
                            AND d.status = ANY(CASE WHEN c.failure_type = 'ALL'
                                                    THEN ARRAY['FAILED', 'TIMED_OUT']
                                                    ELSE ARRAY[c.failure_type] END)) < c.retries
               END
          FROM (SELECT criterion ->> 'failure_type' AS failure_type,
                       (criterion ->> 'number_of_retries')::integer AS retries
                  FROM jsonb_array_elements(p_retry_config -> 'criteria_list') criterion
                 WHERE criterion ->> 'failure_type' IN (p_status, 'ALL')
                 ORDER BY criterion ->> 'failure_type' = 'ALL'
                 LIMIT 1) c), false)
$$;

-- What keeps a job open although none of its rows is pending: a failed row its retry_config
-- will queue again, or a continuous job that still takes new devices until its end time.
CREATE FUNCTION job_held_open(p_job_id uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM job_executions e
         WHERE e.job_id = p_job_id
           AND ((e.execution_type = 'continuous' AND (e.end_at IS NULL OR e.end_at > now()))
                OR (e.retry_config IS NOT NULL AND EXISTS (
                    SELECT 1 FROM device_job_status d
                     WHERE d.job_id = e.job_id AND d.is_latest
                       AND d.status IN ('FAILED', 'TIMED_OUT')
                       AND retry_allowed(e.retry_config, d.status, d.execution_number,
                                         d.job_id, d.device_uuid)))))
$$;

-- Idle devices ----------------------------------------------------------------------------

-- API processes keep in memory which devices have no pending job (no QUEUED or IN_PROGRESS
-- row), with their token hashes, to answer most polls without a query (dispatcher/poll/idle.py).
-- These triggers tell them, on channel idle_devices, which devices to forget: every device that
-- may have got a pending row, or whose token changed or that was deleted. A notification is
-- delivered when its transaction commits; payloads are comma-separated device uuids, at most
-- 200 a notification (under PostgreSQL's 8000-byte payload limit), batched per statement.

CREATE FUNCTION notify_idle_devices(devices uuid[]) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('idle_devices', string_agg(d::text, ','))
      FROM (SELECT d, (row_number() OVER () - 1) / 200 AS batch
              FROM (SELECT DISTINCT d FROM unnest(devices) AS d) AS distinct_devices) AS numbered
     GROUP BY batch;
$$;

CREATE FUNCTION notify_idle_devices_queued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_idle_devices(ARRAY(
        SELECT device_uuid FROM new_rows WHERE status IN ('QUEUED', 'IN_PROGRESS')));
    RETURN NULL;
END;
$$;

-- Fan-out, retries and requeues insert pending rows, many a statement.
CREATE TRIGGER device_job_status_notify_queued AFTER INSERT ON device_job_status
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_idle_devices_queued();

CREATE FUNCTION notify_idle_device() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idle_devices', OLD.uuid::text);
    RETURN NULL;
END;
$$;

CREATE FUNCTION notify_idle_device_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idle_devices', NEW.device_uuid::text);
    RETURN NULL;
END;
$$;

-- The state table never moves a finished row back to pending; should anything, it is told.
-- Row-level with a WHEN, so the status reports (QUEUED -> IN_PROGRESS -> done) run no function.
CREATE TRIGGER device_job_status_notify_repending AFTER UPDATE OF status ON device_job_status
    FOR EACH ROW
    WHEN (OLD.status NOT IN ('QUEUED', 'IN_PROGRESS') AND NEW.status IN ('QUEUED', 'IN_PROGRESS'))
    EXECUTE FUNCTION notify_idle_device_job();

-- A token rotation (one device at a time) takes effect on the next poll.
CREATE TRIGGER devices_notify_token AFTER UPDATE OF token_hash ON devices
    FOR EACH ROW WHEN (OLD.token_hash IS DISTINCT FROM NEW.token_hash)
    EXECUTE FUNCTION notify_idle_device();

CREATE FUNCTION notify_idle_devices_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_idle_devices(ARRAY(SELECT uuid FROM old_rows));
    RETURN NULL;
END;
$$;

CREATE TRIGGER devices_notify_deleted AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_idle_devices_deleted();

-- Audit trail and tokens ------------------------------------------------------------------

-- Who did what to which thing, and when.
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

-- Admin and viewer tokens; only their hashes are kept.
CREATE TABLE api_tokens (
    id           serial PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'viewer')),
    token_hash   bytea NOT NULL UNIQUE,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
