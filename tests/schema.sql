-- The schema that dispatcher/migrations builds, as pg_dump prints it (written
-- by tests/schema_dump.py, checked by tests/integration/test_schema.py).
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

COMMENT ON EXTENSION pg_trgm IS 'text similarity measurement and index searching based on trigrams';

CREATE FUNCTION public.create_job_events_month(within timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql
    AS $_$
DECLARE
    month_start timestamp := date_trunc('month', within AT TIME ZONE 'UTC');
    lower_bound timestamptz := month_start AT TIME ZONE 'UTC';
    upper_bound timestamptz := (month_start + interval '1 month') AT TIME ZONE 'UTC';
    month_table text := 'job_events_p' || to_char(month_start, 'YYYYMM');
BEGIN
    IF to_regclass(month_table) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Two sweeps take turns, and nothing of that month lands in the default partition
    -- between the move and the attach. The locks the attach needs are taken first, in the
    -- order every statement on the table takes them (parent, then partition), so no waiting
    -- statement can deadlock with it: inserts into other months go on, reads wait a moment.
    LOCK TABLE job_events IN SHARE UPDATE EXCLUSIVE MODE;
    LOCK TABLE job_events_default IN ACCESS EXCLUSIVE MODE;
    IF to_regclass(month_table) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE job_events INCLUDING DEFAULTS)', month_table);
    EXECUTE format('WITH moved AS (DELETE FROM job_events_default WHERE occurred_at >= $1'
                   ' AND occurred_at < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   month_table) USING lower_bound, upper_bound;
    EXECUTE format('ALTER TABLE job_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   month_table, lower_bound, upper_bound);
    RETURN true;
END;
$_$;

CREATE FUNCTION public.device_job_target_id(p_job_id uuid, p_device_uuid uuid) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT p_job_id::text || '/' || p_device_uuid::text
$$;

CREATE FUNCTION public.device_signature(device_type text, attributes jsonb) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT md5(jsonb_build_array(device_type, attributes)::text)::uuid
$$;

CREATE FUNCTION public.device_signatures_add(added_types text[], added_attributes text[], added bigint[]) RETURNS void
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.device_signatures_apply() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.device_signatures_clear() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    DELETE FROM device_signatures;
    RETURN NULL;
END $$;

CREATE FUNCTION public.drop_job_events_month(month_start timestamp with time zone, lock_timeout_ms integer, OUT outcome text, OUT rows_removed bigint) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
    month_table text := 'job_events_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM');
    holds_live boolean;
BEGIN
    PERFORM set_config('lock_timeout', lock_timeout_ms || 'ms', true);
    BEGIN
        -- Reads go on; nothing is written into the month while it is looked at and dropped.
        EXECUTE format('LOCK TABLE %I IN SHARE ROW EXCLUSIVE MODE', month_table);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM live_job_ids l WHERE EXISTS'
                       ' (SELECT 1 FROM %I e WHERE e.job_id = l.job_id))', month_table)
           INTO STRICT holds_live;
        IF holds_live THEN
            outcome := 'live';
            rows_removed := 0;
            RETURN;
        END IF;
        -- How many events go: the planner's count once the month was analyzed (reading a
        -- whole month to drop it would cost more than the drop), else counted.
        SELECT reltuples::bigint INTO STRICT rows_removed
          FROM pg_class WHERE oid = month_table::regclass;
        IF rows_removed < 0 THEN
            EXECUTE format('SELECT count(*) FROM %I', month_table) INTO STRICT rows_removed;
        END IF;
        EXECUTE format('DROP TABLE %I', month_table);
        outcome := 'dropped';
    EXCEPTION WHEN lock_not_available THEN
        outcome := 'busy';
        rows_removed := 0;
    END;
END;
$$;

CREATE FUNCTION public.fact_signature(device_type text, attributes jsonb, summary jsonb) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT md5(jsonb_build_array(device_type, attributes, summary)::text)::uuid
$$;

CREATE FUNCTION public.fact_signature_keys(parent text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(array_agg(DISTINCT CASE WHEN parent = '' THEN split_part(p, '.', 1)
                                            ELSE substr(p, length(parent) + 2) END), '{}')
      FROM unnest(fact_signature_paths()) AS p
     WHERE parent = '' OR starts_with(p, parent || '.')
$$;

CREATE FUNCTION public.fact_signature_move() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    summary jsonb := fact_summary(NEW.inventory);
    moved_to uuid := fact_signature(NEW.device_type, NEW.attributes, summary);
BEGIN
    UPDATE device_fact_signatures SET signature = moved_to
     WHERE device_uuid = NEW.uuid AND signature <> moved_to;
    IF FOUND THEN
        INSERT INTO fact_signatures (signature, device_type, attributes, inventory)
        VALUES (moved_to, NEW.device_type, NEW.attributes, summary)
        ON CONFLICT (signature) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION public.fact_signature_paths() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ARRAY['os.id', 'os.version_id', 'os.pretty_name', 'kernel', 'arch',
                 'agent_version', 'python_version', 'model', 'memory_mb']
$$;

CREATE FUNCTION public.fact_signatures_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    WITH placed AS (
        SELECT r.uuid, r.device_type, r.attributes, s.summary,
               fact_signature(r.device_type, r.attributes, s.summary) AS signature
          FROM new_rows r
         CROSS JOIN LATERAL (SELECT fact_summary(r.inventory) AS summary) s
    ), added AS (
        INSERT INTO fact_signatures (signature, device_type, attributes, inventory)
        SELECT DISTINCT ON (p.signature) p.signature, p.device_type, p.attributes, p.summary
          FROM placed p
         ORDER BY p.signature
        ON CONFLICT (signature) DO NOTHING
    )
    INSERT INTO device_fact_signatures (device_uuid, signature)
    SELECT p.uuid, p.signature FROM placed p;
    RETURN NULL;
END $$;

CREATE FUNCTION public.fact_summary(inventory jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
DECLARE
    summary jsonb := '{}'::jsonb;
    os jsonb := inventory -> 'os';
    os_summary jsonb := '{}'::jsonb;
    fact text;
BEGIN
    FOREACH fact IN ARRAY fact_signature_keys('') LOOP
        IF inventory ? fact AND fact <> 'os' THEN
            summary := summary || jsonb_build_object(fact, inventory -> fact);
        END IF;
    END LOOP;
    IF jsonb_typeof(os) = 'object' THEN
        FOREACH fact IN ARRAY fact_signature_keys('os') LOOP
            IF os ? fact THEN
                os_summary := os_summary || jsonb_build_object(fact, os -> fact);
            END IF;
        END LOOP;
        IF os_summary <> '{}'::jsonb THEN
            summary := summary || jsonb_build_object('os', os_summary);
        END IF;
    END IF;
    RETURN summary;
END $$;

CREATE FUNCTION public.inventory_number_leaves(inventory jsonb) RETURNS TABLE(path text[], value numeric)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    WITH RECURSIVE member (path, value) AS (
        SELECT ARRAY[e.key], e.value
          FROM jsonb_each(CASE WHEN jsonb_typeof(inventory) = 'object' THEN inventory
                               ELSE '{}'::jsonb END) AS e
        UNION ALL
        SELECT m.path || e.key, e.value
          FROM member m
         CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(m.value) = 'object' THEN m.value
                                            ELSE '{}'::jsonb END) AS e
    )
    SELECT m.path, m.value::numeric FROM member m WHERE jsonb_typeof(m.value) = 'number'
$$;

CREATE FUNCTION public.inventory_numbers_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO inventory_number_paths (path)
    SELECT DISTINCT l.path
      FROM new_rows r
     CROSS JOIN LATERAL inventory_number_leaves(r.inventory) l
     WHERE NOT EXISTS (SELECT 1 FROM inventory_number_paths p WHERE p.path = l.path)
    ON CONFLICT (path) DO NOTHING;
    INSERT INTO device_inventory_numbers (device_uuid, path_id, value)
    SELECT r.uuid, p.id, l.value
      FROM new_rows r
     CROSS JOIN LATERAL inventory_number_leaves(r.inventory) l
      JOIN inventory_number_paths p ON p.path = l.path;
    RETURN NULL;
END $$;

CREATE FUNCTION public.inventory_numbers_update() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    path_ids integer[];
    leaf_values numeric[];
BEGIN
    INSERT INTO inventory_number_paths (path)
    SELECT l.path
      FROM inventory_number_leaves(NEW.inventory) l
     WHERE NOT EXISTS (SELECT 1 FROM inventory_number_paths p WHERE p.path = l.path)
    ON CONFLICT (path) DO NOTHING;
    SELECT coalesce(array_agg(p.id), '{}'), coalesce(array_agg(l.value), '{}')
      INTO path_ids, leaf_values
      FROM inventory_number_leaves(NEW.inventory) l
      JOIN inventory_number_paths p ON p.path = l.path;
    DELETE FROM device_inventory_numbers n
     WHERE n.device_uuid = NEW.uuid
       AND NOT EXISTS (SELECT 1 FROM unnest(path_ids, leaf_values) AS u (path_id, value)
                        WHERE u.path_id = n.path_id AND u.value = n.value);
    INSERT INTO device_inventory_numbers (device_uuid, path_id, value)
    SELECT NEW.uuid, u.path_id, u.value
      FROM unnest(path_ids, leaf_values) AS u (path_id, value)
    ON CONFLICT (device_uuid, path_id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION public.job_held_open(p_job_id uuid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
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

CREATE FUNCTION public.job_stage_counts_apply() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_stage_counts AS c (job_id, stage, status, shard, n)
        SELECT job_id, stage, status, (pg_backend_pid() % 16)::smallint, count(*)
          FROM new_rows WHERE is_latest AND stage IS NOT NULL
         GROUP BY job_id, stage, status ORDER BY job_id, stage, status
        ON CONFLICT (job_id, stage, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO job_stage_counts AS c (job_id, stage, status, shard, n)
        SELECT job_id, stage, status, (pg_backend_pid() % 16)::smallint, sum(delta)
          FROM (SELECT job_id, stage, status, -1 AS delta FROM old_rows
                 WHERE is_latest AND stage IS NOT NULL
                UNION ALL
                SELECT job_id, stage, status, 1 FROM new_rows
                 WHERE is_latest AND stage IS NOT NULL) d
         GROUP BY job_id, stage, status HAVING sum(delta) <> 0 ORDER BY job_id, stage, status
        ON CONFLICT (job_id, stage, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO job_stage_counts AS c (job_id, stage, status, shard, n)
        SELECT o.job_id, o.stage, o.status, (pg_backend_pid() % 16)::smallint, -count(*)
          FROM old_rows o
         WHERE o.is_latest AND o.stage IS NOT NULL
           AND EXISTS (SELECT 1 FROM job_executions e WHERE e.job_id = o.job_id)
         GROUP BY o.job_id, o.stage, o.status ORDER BY o.job_id, o.stage, o.status
        ON CONFLICT (job_id, stage, status, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION public.job_stage_totals(p_job_id uuid, p_stage smallint) RETURNS TABLE(size bigint, queued bigint, in_progress bigint, succeeded bigint, failures bigint)
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(sum(n), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'QUEUED'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'IN_PROGRESS'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'SUCCEEDED'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status IN ('FAILED', 'TIMED_OUT', 'REJECTED')), 0)::bigint
      FROM job_stage_counts
     WHERE job_id = p_job_id AND stage = p_stage
$$;

CREATE FUNCTION public.job_status_counts_apply() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.job_status_totals(p_job_id uuid) RETURNS TABLE(pending bigint, succeeded bigint, failures bigint)
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(sum(n) FILTER (WHERE status IN ('QUEUED', 'IN_PROGRESS')), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status = 'SUCCEEDED'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE status IN ('FAILED', 'TIMED_OUT', 'REJECTED')), 0)::bigint
      FROM job_status_counts
     WHERE job_id = p_job_id
$$;

CREATE FUNCTION public.notify_idle_device() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('idle_devices', OLD.uuid::text);
    RETURN NULL;
END;
$$;

CREATE FUNCTION public.notify_idle_device_job() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('idle_devices', NEW.device_uuid::text);
    RETURN NULL;
END;
$$;

CREATE FUNCTION public.notify_idle_devices(devices uuid[]) RETURNS void
    LANGUAGE sql
    AS $$
    SELECT pg_notify('idle_devices', string_agg(d::text, ','))
      FROM (SELECT d, (row_number() OVER () - 1) / 200 AS batch
              FROM (SELECT DISTINCT d FROM unnest(devices) AS d) AS distinct_devices) AS numbered
     GROUP BY batch;
$$;

CREATE FUNCTION public.notify_idle_devices_deleted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM notify_idle_devices(ARRAY(SELECT uuid FROM old_rows));
    RETURN NULL;
END;
$$;

CREATE FUNCTION public.notify_idle_devices_queued() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM notify_idle_devices(ARRAY(
        SELECT device_uuid FROM new_rows WHERE status IN ('QUEUED', 'IN_PROGRESS')));
    RETURN NULL;
END;
$$;

CREATE FUNCTION public.retry_allowed(p_retry_config jsonb, p_status text, p_execution_number integer, p_job_id uuid, p_device_uuid uuid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
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

CREATE FUNCTION public.token_holder_kind(p_token_hash bytea) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT 'device' FROM devices WHERE token_hash = p_token_hash
    UNION ALL
    SELECT role FROM api_tokens WHERE token_hash = p_token_hash AND revoked_at IS NULL
    LIMIT 1
$$;

CREATE TABLE public.api_tokens (
    id integer NOT NULL,
    name text NOT NULL,
    role text NOT NULL,
    token_hash bytea NOT NULL,
    created_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT api_tokens_role_check CHECK ((role = ANY (ARRAY['admin'::text, 'viewer'::text])))
);

CREATE SEQUENCE public.api_tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.api_tokens_id_seq OWNED BY public.api_tokens.id;

CREATE TABLE public.artifacts (
    id uuid NOT NULL,
    name text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    content_type text NOT NULL,
    storage_key text NOT NULL,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT artifacts_name_check CHECK (((name <> ''::text) AND (length(name) <= 255))),
    CONSTRAINT artifacts_sha256_check CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT artifacts_size_check CHECK ((size >= 0))
);

CREATE TABLE public.device_fact_signatures (
    device_uuid uuid NOT NULL,
    signature uuid NOT NULL
);

CREATE TABLE public.device_group_members (
    group_name text NOT NULL,
    device_uuid uuid NOT NULL
);

CREATE TABLE public.device_groups (
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    filter jsonb,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT device_groups_filter_check CHECK (((filter IS NULL) OR (jsonb_typeof(filter) = 'object'::text))),
    CONSTRAINT device_groups_name_check CHECK ((name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'::text))
);

CREATE TABLE public.device_inventory_numbers (
    device_uuid uuid NOT NULL,
    path_id integer NOT NULL,
    value numeric NOT NULL
);

CREATE TABLE public.device_job_status (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    device_uuid uuid NOT NULL,
    status text DEFAULT 'QUEUED'::text NOT NULL,
    execution_number integer DEFAULT 1 NOT NULL,
    version_number integer DEFAULT 1 NOT NULL,
    is_latest boolean DEFAULT true NOT NULL,
    queued_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    last_updated_at timestamp with time zone DEFAULT now() NOT NULL,
    exit_code integer,
    stdout text,
    stderr text,
    stdout_truncated boolean DEFAULT false NOT NULL,
    stderr_truncated boolean DEFAULT false NOT NULL,
    reason text,
    executed_steps integer,
    failed_step text,
    status_details jsonb,
    released_at timestamp with time zone DEFAULT now(),
    timeout_at timestamp with time zone,
    stage smallint,
    CONSTRAINT device_job_status_execution_number_check CHECK ((execution_number >= 1)),
    CONSTRAINT device_job_status_status_check CHECK ((status = ANY (ARRAY['QUEUED'::text, 'IN_PROGRESS'::text, 'SUCCEEDED'::text, 'FAILED'::text, 'TIMED_OUT'::text, 'REJECTED'::text, 'CANCELED'::text, 'REMOVED'::text])))
);

CREATE SEQUENCE public.device_job_status_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.device_job_status_id_seq OWNED BY public.device_job_status.id;

CREATE TABLE public.device_signatures (
    signature uuid NOT NULL,
    device_type text NOT NULL,
    attributes jsonb NOT NULL,
    n bigint NOT NULL
)
WITH (fillfactor='70');

CREATE TABLE public.devices (
    uuid uuid NOT NULL,
    device_name text NOT NULL,
    device_type text DEFAULT 'generic'::text NOT NULL,
    attributes jsonb DEFAULT '{}'::jsonb NOT NULL,
    token_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone,
    hardware_id text,
    inventory jsonb DEFAULT '{}'::jsonb NOT NULL,
    inventory_updated_at timestamp with time zone,
    CONSTRAINT devices_attributes_check CHECK ((jsonb_typeof(attributes) = 'object'::text)),
    CONSTRAINT devices_inventory_check CHECK ((jsonb_typeof(inventory) = 'object'::text))
);

CREATE TABLE public.enrollment_tokens (
    id bigint NOT NULL,
    name text NOT NULL,
    token_hash bytea NOT NULL,
    expires_at timestamp with time zone,
    max_uses integer,
    uses integer DEFAULT 0 NOT NULL,
    device_type text NOT NULL,
    attributes jsonb DEFAULT '{}'::jsonb NOT NULL,
    requires_acceptance boolean DEFAULT false NOT NULL,
    created_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT enrollment_tokens_max_uses_check CHECK ((max_uses > 0))
);

CREATE SEQUENCE public.enrollment_tokens_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.enrollment_tokens_id_seq OWNED BY public.enrollment_tokens.id;

CREATE TABLE public.fact_signatures (
    signature uuid NOT NULL,
    device_type text NOT NULL,
    attributes jsonb NOT NULL,
    inventory jsonb NOT NULL
);

CREATE TABLE public.fleet_counts (
    singleton boolean DEFAULT true NOT NULL,
    total bigint NOT NULL,
    online bigint NOT NULL,
    online_within_s integer NOT NULL,
    counted_at timestamp with time zone NOT NULL,
    CONSTRAINT fleet_counts_singleton_check CHECK (singleton)
);

CREATE TABLE public.history_prunes (
    kind text NOT NULL,
    pruned_before timestamp with time zone NOT NULL,
    pruned_at timestamp with time zone NOT NULL,
    rows_removed bigint DEFAULT 0 NOT NULL,
    CONSTRAINT history_prunes_kind_check CHECK ((kind = ANY (ARRAY['executions'::text, 'recurring_runs'::text, 'audit_events'::text])))
);

CREATE TABLE public.inventory_number_paths (
    id integer NOT NULL,
    path text[] NOT NULL
);

ALTER TABLE public.inventory_number_paths ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.inventory_number_paths_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.job_artifacts (
    job_id uuid NOT NULL,
    artifact_id uuid NOT NULL
);

CREATE TABLE public.job_device_signatures (
    job_id uuid NOT NULL,
    device_uuid uuid NOT NULL,
    signature text NOT NULL
);

CREATE TABLE public.job_events (
    id bigint NOT NULL,
    occurred_at timestamp with time zone DEFAULT now() NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text NOT NULL,
    job_id uuid,
    device_uuid uuid,
    details jsonb DEFAULT '{}'::jsonb NOT NULL
)
PARTITION BY RANGE (occurred_at);

CREATE SEQUENCE public.job_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.job_events_id_seq OWNED BY public.job_events.id;

CREATE TABLE public.job_events_default (
    id bigint DEFAULT nextval('public.job_events_id_seq'::regclass) NOT NULL,
    occurred_at timestamp with time zone DEFAULT now() NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text NOT NULL,
    job_id uuid,
    device_uuid uuid,
    details jsonb DEFAULT '{}'::jsonb NOT NULL
);

CREATE TABLE public.job_executions (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    template_id integer,
    job_name text NOT NULL,
    job_document jsonb NOT NULL,
    parameters jsonb DEFAULT '{}'::jsonb NOT NULL,
    target_type text NOT NULL,
    target_devices uuid[],
    target_filter jsonb,
    execution_type text DEFAULT 'oneTime'::text NOT NULL,
    status text DEFAULT 'QUEUED'::text NOT NULL,
    total_devices integer DEFAULT 0 NOT NULL,
    succeeded_devices integer DEFAULT 0 NOT NULL,
    failed_devices integer DEFAULT 0 NOT NULL,
    fanout_status text DEFAULT 'PENDING'::text NOT NULL,
    fanout_cursor uuid,
    fanout_enqueued_at timestamp with time zone,
    fanout_started_at timestamp with time zone,
    fanout_progress_at timestamp with time zone,
    fanout_done_at timestamp with time zone,
    reason text,
    queued_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    created_by text,
    parent_job_id uuid,
    scheduled_for timestamp with time zone,
    schedule jsonb,
    scheduling_config jsonb,
    rollout_config jsonb,
    abort_config jsonb,
    timeout_config jsonb,
    retry_config jsonb,
    start_at timestamp with time zone,
    end_at timestamp with time zone,
    end_behavior text,
    end_applied_at timestamp with time zone,
    next_run_at timestamp with time zone,
    run_count integer DEFAULT 0 NOT NULL,
    window_opens_at timestamp with time zone,
    window_closes_at timestamp with time zone,
    window_nudged_for timestamp with time zone,
    released_devices integer DEFAULT 0 NOT NULL,
    job_document_signature text,
    signed_job text,
    stages jsonb,
    requires_approval boolean DEFAULT false NOT NULL,
    rollout_state text,
    rollout_reason text,
    current_stage smallint,
    approved_by text,
    approved_at timestamp with time zone,
    target_group text,
    CONSTRAINT job_executions_end_behavior_check CHECK ((end_behavior = ANY (ARRAY['STOP_ROLLOUT'::text, 'CANCEL'::text, 'FORCE_CANCEL'::text]))),
    CONSTRAINT job_executions_execution_type_check CHECK ((execution_type = ANY (ARRAY['oneTime'::text, 'recurring'::text, 'continuous'::text]))),
    CONSTRAINT job_executions_fanout_status_check CHECK ((fanout_status = ANY (ARRAY['PENDING'::text, 'RUNNING'::text, 'DONE'::text]))),
    CONSTRAINT job_executions_rollout_state_check CHECK ((rollout_state = ANY (ARRAY['WAITING_FOR_APPROVAL'::text, 'RUNNING'::text, 'PAUSED'::text, 'FINISHED'::text, 'STOPPED'::text]))),
    CONSTRAINT job_executions_run_has_slot CHECK (((parent_job_id IS NULL) = (scheduled_for IS NULL))),
    CONSTRAINT job_executions_status_check CHECK ((status = ANY (ARRAY['SCHEDULED'::text, 'QUEUED'::text, 'IN_PROGRESS'::text, 'SUCCEEDED'::text, 'FAILED'::text, 'CANCELED'::text]))),
    CONSTRAINT job_executions_target_type_check CHECK ((target_type = ANY (ARRAY['device'::text, 'group'::text, 'all'::text])))
);

CREATE SEQUENCE public.job_executions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.job_executions_id_seq OWNED BY public.job_executions.id;

CREATE TABLE public.job_handlers (
    id integer NOT NULL,
    name text NOT NULL,
    description text,
    script_type text NOT NULL,
    script_content text NOT NULL,
    script_sha256 text NOT NULL,
    permissions text DEFAULT '700'::text NOT NULL,
    default_args jsonb DEFAULT '[]'::jsonb NOT NULL,
    created_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT job_handlers_default_args_check CHECK ((jsonb_typeof(default_args) = 'array'::text)),
    CONSTRAINT job_handlers_permissions_check CHECK ((permissions ~ '^[0-7]{3,4}$'::text)),
    CONSTRAINT job_handlers_script_type_check CHECK ((script_type = ANY (ARRAY['bash'::text, 'python'::text, 'node'::text])))
);

CREATE SEQUENCE public.job_handlers_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.job_handlers_id_seq OWNED BY public.job_handlers.id;

CREATE TABLE public.job_stage_counts (
    job_id uuid NOT NULL,
    stage smallint NOT NULL,
    status text NOT NULL,
    shard smallint NOT NULL,
    n bigint DEFAULT 0 NOT NULL
);

CREATE TABLE public.job_stages (
    job_id uuid NOT NULL,
    stage smallint NOT NULL,
    name text NOT NULL,
    planned_size integer,
    target_filter jsonb,
    gate jsonb,
    state text DEFAULT 'PENDING'::text NOT NULL,
    released_at timestamp with time zone,
    finished_at timestamp with time zone,
    soak_until timestamp with time zone,
    deadline_at timestamp with time zone,
    rows_released_at timestamp with time zone,
    release_progress_at timestamp with time zone,
    acknowledged_failures integer DEFAULT 0 NOT NULL,
    CONSTRAINT job_stages_planned_size_check CHECK ((planned_size >= 0)),
    CONSTRAINT job_stages_stage_check CHECK ((stage >= 0)),
    CONSTRAINT job_stages_state_check CHECK ((state = ANY (ARRAY['PENDING'::text, 'RELEASED'::text, 'PASSED'::text, 'FAILED'::text, 'PROMOTED'::text])))
);

CREATE TABLE public.job_status_counts (
    job_id uuid NOT NULL,
    status text NOT NULL,
    shard smallint NOT NULL,
    n bigint DEFAULT 0 NOT NULL
);

CREATE TABLE public.job_templates (
    id integer NOT NULL,
    name text NOT NULL,
    description text,
    category text DEFAULT 'custom'::text NOT NULL,
    job_document jsonb NOT NULL,
    parameters jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_by text,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    execution_type text,
    schedule jsonb,
    scheduling_config jsonb,
    rollout_config jsonb,
    abort_config jsonb,
    timeout_config jsonb,
    retry_config jsonb,
    stages jsonb,
    CONSTRAINT job_templates_category_check CHECK ((category = ANY (ARRAY['system'::text, 'maintenance'::text, 'deployment'::text, 'custom'::text]))),
    CONSTRAINT job_templates_execution_type_check CHECK ((execution_type = ANY (ARRAY['oneTime'::text, 'recurring'::text, 'continuous'::text]))),
    CONSTRAINT job_templates_parameters_check CHECK ((jsonb_typeof(parameters) = 'object'::text))
);

CREATE SEQUENCE public.job_templates_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.job_templates_id_seq OWNED BY public.job_templates.id;

CREATE VIEW public.live_job_ids AS
 SELECT job_executions.job_id
   FROM public.job_executions
  WHERE (job_executions.status = ANY (ARRAY['SCHEDULED'::text, 'QUEUED'::text, 'IN_PROGRESS'::text]))
UNION
 SELECT job_status_counts.job_id
   FROM public.job_status_counts
  WHERE (job_status_counts.status = ANY (ARRAY['QUEUED'::text, 'IN_PROGRESS'::text]))
  GROUP BY job_status_counts.job_id
 HAVING (sum(job_status_counts.n) > (0)::numeric);

CREATE TABLE public.pending_enrollments (
    uuid uuid NOT NULL,
    hardware_id text NOT NULL,
    device_name text NOT NULL,
    device_type text NOT NULL,
    attributes jsonb NOT NULL,
    token_hash bytea NOT NULL,
    enrollment_token_id bigint,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.portal_sessions (
    secret_hash bytea NOT NULL,
    api_token_id integer,
    bootstrap_fingerprint bytea,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT portal_sessions_check CHECK (((api_token_id IS NULL) <> (bootstrap_fingerprint IS NULL)))
);

CREATE TABLE public.rollout_waves (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    released_at timestamp with time zone NOT NULL,
    n integer NOT NULL,
    CONSTRAINT rollout_waves_n_check CHECK ((n > 0))
);

CREATE SEQUENCE public.rollout_waves_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.rollout_waves_id_seq OWNED BY public.rollout_waves.id;

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.job_events ATTACH PARTITION public.job_events_default DEFAULT;

ALTER TABLE ONLY public.api_tokens ALTER COLUMN id SET DEFAULT nextval('public.api_tokens_id_seq'::regclass);

ALTER TABLE ONLY public.device_job_status ALTER COLUMN id SET DEFAULT nextval('public.device_job_status_id_seq'::regclass);

ALTER TABLE ONLY public.enrollment_tokens ALTER COLUMN id SET DEFAULT nextval('public.enrollment_tokens_id_seq'::regclass);

ALTER TABLE ONLY public.job_events ALTER COLUMN id SET DEFAULT nextval('public.job_events_id_seq'::regclass);

ALTER TABLE ONLY public.job_executions ALTER COLUMN id SET DEFAULT nextval('public.job_executions_id_seq'::regclass);

ALTER TABLE ONLY public.job_handlers ALTER COLUMN id SET DEFAULT nextval('public.job_handlers_id_seq'::regclass);

ALTER TABLE ONLY public.job_templates ALTER COLUMN id SET DEFAULT nextval('public.job_templates_id_seq'::regclass);

ALTER TABLE ONLY public.rollout_waves ALTER COLUMN id SET DEFAULT nextval('public.rollout_waves_id_seq'::regclass);

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.artifacts
    ADD CONSTRAINT artifacts_name_sha256_key UNIQUE (name, sha256);

ALTER TABLE ONLY public.artifacts
    ADD CONSTRAINT artifacts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.device_fact_signatures
    ADD CONSTRAINT device_fact_signatures_pkey PRIMARY KEY (device_uuid);

ALTER TABLE ONLY public.device_group_members
    ADD CONSTRAINT device_group_members_pkey PRIMARY KEY (group_name, device_uuid);

ALTER TABLE ONLY public.device_groups
    ADD CONSTRAINT device_groups_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.device_inventory_numbers
    ADD CONSTRAINT device_inventory_numbers_pkey PRIMARY KEY (device_uuid, path_id);

ALTER TABLE ONLY public.device_job_status
    ADD CONSTRAINT device_job_status_job_id_device_uuid_execution_number_key UNIQUE (job_id, device_uuid, execution_number);

ALTER TABLE ONLY public.device_job_status
    ADD CONSTRAINT device_job_status_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.device_signatures
    ADD CONSTRAINT device_signatures_pkey PRIMARY KEY (signature);

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_pkey PRIMARY KEY (uuid);

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.enrollment_tokens
    ADD CONSTRAINT enrollment_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.enrollment_tokens
    ADD CONSTRAINT enrollment_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.fact_signatures
    ADD CONSTRAINT fact_signatures_pkey PRIMARY KEY (signature);

ALTER TABLE ONLY public.fleet_counts
    ADD CONSTRAINT fleet_counts_pkey PRIMARY KEY (singleton);

ALTER TABLE ONLY public.history_prunes
    ADD CONSTRAINT history_prunes_pkey PRIMARY KEY (kind);

ALTER TABLE ONLY public.inventory_number_paths
    ADD CONSTRAINT inventory_number_paths_path_key UNIQUE (path);

ALTER TABLE ONLY public.inventory_number_paths
    ADD CONSTRAINT inventory_number_paths_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.job_artifacts
    ADD CONSTRAINT job_artifacts_pkey PRIMARY KEY (job_id, artifact_id);

ALTER TABLE ONLY public.job_device_signatures
    ADD CONSTRAINT job_device_signatures_pkey PRIMARY KEY (job_id, device_uuid);

ALTER TABLE ONLY public.job_events
    ADD CONSTRAINT job_events_pkey PRIMARY KEY (id, occurred_at);

ALTER TABLE ONLY public.job_events_default
    ADD CONSTRAINT job_events_default_pkey PRIMARY KEY (id, occurred_at);

ALTER TABLE ONLY public.job_executions
    ADD CONSTRAINT job_executions_job_id_key UNIQUE (job_id);

ALTER TABLE ONLY public.job_executions
    ADD CONSTRAINT job_executions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.job_handlers
    ADD CONSTRAINT job_handlers_name_key UNIQUE (name);

ALTER TABLE ONLY public.job_handlers
    ADD CONSTRAINT job_handlers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.job_stage_counts
    ADD CONSTRAINT job_stage_counts_pkey PRIMARY KEY (job_id, stage, status, shard);

ALTER TABLE ONLY public.job_stages
    ADD CONSTRAINT job_stages_pkey PRIMARY KEY (job_id, stage);

ALTER TABLE ONLY public.job_status_counts
    ADD CONSTRAINT job_status_counts_pkey PRIMARY KEY (job_id, status, shard);

ALTER TABLE ONLY public.job_templates
    ADD CONSTRAINT job_templates_name_key UNIQUE (name);

ALTER TABLE ONLY public.job_templates
    ADD CONSTRAINT job_templates_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.pending_enrollments
    ADD CONSTRAINT pending_enrollments_hardware_id_key UNIQUE (hardware_id);

ALTER TABLE ONLY public.pending_enrollments
    ADD CONSTRAINT pending_enrollments_pkey PRIMARY KEY (uuid);

ALTER TABLE ONLY public.portal_sessions
    ADD CONSTRAINT portal_sessions_pkey PRIMARY KEY (secret_hash);

ALTER TABLE ONLY public.rollout_waves
    ADD CONSTRAINT rollout_waves_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

CREATE INDEX artifacts_name_created_at ON public.artifacts USING btree (name, created_at DESC);

CREATE INDEX artifacts_sha256 ON public.artifacts USING btree (sha256);

CREATE INDEX device_fact_signatures_signature_idx ON public.device_fact_signatures USING btree (signature, device_uuid);

CREATE INDEX device_group_members_device_idx ON public.device_group_members USING btree (device_uuid);

CREATE INDEX device_inventory_numbers_range_idx ON public.device_inventory_numbers USING btree (path_id, value);

CREATE INDEX device_job_status_device_idx ON public.device_job_status USING btree (device_uuid, id DESC);

CREATE INDEX device_job_status_failed_idx ON public.device_job_status USING btree (job_id) WHERE (is_latest AND (status = ANY (ARRAY['FAILED'::text, 'TIMED_OUT'::text])));

CREATE INDEX device_job_status_job_idx ON public.device_job_status USING btree (job_id);

CREATE INDEX device_job_status_job_status_idx ON public.device_job_status USING btree (job_id, status, device_uuid) WHERE is_latest;

CREATE UNIQUE INDEX device_job_status_latest_idx ON public.device_job_status USING btree (job_id, device_uuid) WHERE is_latest;

CREATE INDEX device_job_status_pending_idx ON public.device_job_status USING btree (device_uuid, queued_at) WHERE (status = ANY (ARRAY['QUEUED'::text, 'IN_PROGRESS'::text]));

CREATE INDEX device_job_status_stage_unreleased_idx ON public.device_job_status USING btree (job_id, stage, id) WHERE ((released_at IS NULL) AND (status = 'QUEUED'::text) AND (stage IS NOT NULL));

CREATE INDEX device_job_status_timeout_idx ON public.device_job_status USING btree (timeout_at) WHERE ((status = ANY (ARRAY['QUEUED'::text, 'IN_PROGRESS'::text])) AND (timeout_at IS NOT NULL));

CREATE INDEX device_job_status_unreleased_idx ON public.device_job_status USING btree (job_id, id) WHERE ((released_at IS NULL) AND (status = 'QUEUED'::text));

CREATE INDEX device_signatures_attributes_gin ON public.device_signatures USING gin (attributes jsonb_path_ops);

CREATE INDEX device_signatures_type_idx ON public.device_signatures USING btree (device_type);

CREATE INDEX devices_attributes_gin ON public.devices USING gin (attributes jsonb_path_ops);

CREATE UNIQUE INDEX devices_hardware_id_idx ON public.devices USING btree (hardware_id) WHERE (hardware_id IS NOT NULL);

CREATE INDEX devices_inventory_gin ON public.devices USING gin (inventory jsonb_path_ops);

CREATE INDEX devices_name_trgm_idx ON public.devices USING gin (device_name public.gin_trgm_ops);

CREATE INDEX devices_type_idx ON public.devices USING btree (device_type, uuid);

CREATE INDEX fact_signatures_attributes_gin ON public.fact_signatures USING gin (attributes jsonb_path_ops);

CREATE INDEX fact_signatures_inventory_gin ON public.fact_signatures USING gin (inventory jsonb_path_ops);

CREATE INDEX fact_signatures_type_idx ON public.fact_signatures USING btree (device_type);

CREATE INDEX job_artifacts_artifact_id ON public.job_artifacts USING btree (artifact_id);

CREATE INDEX job_events_job_idx ON ONLY public.job_events USING btree (job_id, id) WHERE (job_id IS NOT NULL);

CREATE INDEX job_events_default_job_id_id_idx ON public.job_events_default USING btree (job_id, id) WHERE (job_id IS NOT NULL);

CREATE INDEX job_events_occurred_brin ON ONLY public.job_events USING brin (occurred_at);

CREATE INDEX job_events_default_occurred_at_idx ON public.job_events_default USING brin (occurred_at);

CREATE INDEX job_events_target_idx ON ONLY public.job_events USING btree (target_type, target_id, id);

CREATE INDEX job_events_default_target_type_target_id_id_idx ON public.job_events_default USING btree (target_type, target_id, id);

CREATE INDEX job_executions_end_due_idx ON public.job_executions USING btree (end_at) WHERE ((end_at IS NOT NULL) AND (end_applied_at IS NULL) AND (status = ANY (ARRAY['SCHEDULED'::text, 'QUEUED'::text, 'IN_PROGRESS'::text])));

CREATE INDEX job_executions_fanout_pending_idx ON public.job_executions USING btree (fanout_enqueued_at) WHERE (fanout_status <> 'DONE'::text);

CREATE INDEX job_executions_finished_idx ON public.job_executions USING btree (completed_at) WHERE (status = ANY (ARRAY['SUCCEEDED'::text, 'FAILED'::text, 'CANCELED'::text]));

CREATE INDEX job_executions_live_windows ON public.job_executions USING btree (window_closes_at) WHERE ((window_closes_at IS NOT NULL) AND (status = ANY (ARRAY['SCHEDULED'::text, 'QUEUED'::text, 'IN_PROGRESS'::text])));

CREATE INDEX job_executions_recurring_due_idx ON public.job_executions USING btree (next_run_at) WHERE ((execution_type = 'recurring'::text) AND (status = 'SCHEDULED'::text));

CREATE INDEX job_executions_rollout_waiting_idx ON public.job_executions USING btree (id DESC) WHERE (rollout_state = ANY (ARRAY['WAITING_FOR_APPROVAL'::text, 'PAUSED'::text]));

CREATE UNIQUE INDEX job_executions_run_slot_idx ON public.job_executions USING btree (parent_job_id, scheduled_for) WHERE (parent_job_id IS NOT NULL);

CREATE INDEX job_executions_runs_idx ON public.job_executions USING btree (parent_job_id, id DESC) WHERE (parent_job_id IS NOT NULL);

CREATE INDEX job_executions_start_due_idx ON public.job_executions USING btree (start_at) WHERE ((status = 'SCHEDULED'::text) AND (execution_type <> 'recurring'::text));

CREATE INDEX job_executions_status_idx ON public.job_executions USING btree (status, id DESC);

CREATE INDEX job_executions_target_group_idx ON public.job_executions USING btree (target_group) WHERE (target_group IS NOT NULL);

CREATE INDEX job_stages_released_idx ON public.job_stages USING btree (released_at) WHERE (state = 'RELEASED'::text);

CREATE INDEX job_templates_category_idx ON public.job_templates USING btree (category);

CREATE INDEX portal_sessions_api_token_id ON public.portal_sessions USING btree (api_token_id);

CREATE INDEX portal_sessions_last_seen_at ON public.portal_sessions USING btree (last_seen_at);

CREATE INDEX rollout_waves_job_idx ON public.rollout_waves USING btree (job_id, released_at);

ALTER INDEX public.job_events_job_idx ATTACH PARTITION public.job_events_default_job_id_id_idx;

ALTER INDEX public.job_events_occurred_brin ATTACH PARTITION public.job_events_default_occurred_at_idx;

ALTER INDEX public.job_events_pkey ATTACH PARTITION public.job_events_default_pkey;

ALTER INDEX public.job_events_target_idx ATTACH PARTITION public.job_events_default_target_type_target_id_id_idx;

CREATE TRIGGER device_job_status_count_delete AFTER DELETE ON public.device_job_status REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.job_status_counts_apply();

CREATE TRIGGER device_job_status_count_insert AFTER INSERT ON public.device_job_status REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.job_status_counts_apply();

CREATE TRIGGER device_job_status_count_update AFTER UPDATE ON public.device_job_status REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.job_status_counts_apply();

CREATE TRIGGER device_job_status_notify_queued AFTER INSERT ON public.device_job_status REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.notify_idle_devices_queued();

CREATE TRIGGER device_job_status_notify_repending AFTER UPDATE OF status ON public.device_job_status FOR EACH ROW WHEN (((old.status <> ALL (ARRAY['QUEUED'::text, 'IN_PROGRESS'::text])) AND (new.status = ANY (ARRAY['QUEUED'::text, 'IN_PROGRESS'::text])))) EXECUTE FUNCTION public.notify_idle_device_job();

CREATE TRIGGER device_job_status_stage_count_delete AFTER DELETE ON public.device_job_status REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.job_stage_counts_apply();

CREATE TRIGGER device_job_status_stage_count_insert AFTER INSERT ON public.device_job_status REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.job_stage_counts_apply();

CREATE TRIGGER device_job_status_stage_count_update AFTER UPDATE ON public.device_job_status REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.job_stage_counts_apply();

CREATE TRIGGER devices_fact_signature_insert AFTER INSERT ON public.devices REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.fact_signatures_insert();

CREATE TRIGGER devices_fact_signature_update AFTER UPDATE OF device_type, attributes, inventory ON public.devices FOR EACH ROW WHEN (((old.device_type IS DISTINCT FROM new.device_type) OR ((old.attributes)::text IS DISTINCT FROM (new.attributes)::text) OR ((old.inventory)::text IS DISTINCT FROM (new.inventory)::text))) EXECUTE FUNCTION public.fact_signature_move();

CREATE TRIGGER devices_inventory_numbers_insert AFTER INSERT ON public.devices REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.inventory_numbers_insert();

CREATE TRIGGER devices_inventory_numbers_update AFTER UPDATE OF inventory ON public.devices FOR EACH ROW WHEN (((old.inventory)::text IS DISTINCT FROM (new.inventory)::text)) EXECUTE FUNCTION public.inventory_numbers_update();

CREATE TRIGGER devices_notify_deleted AFTER DELETE ON public.devices REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.notify_idle_devices_deleted();

CREATE TRIGGER devices_notify_token AFTER UPDATE OF token_hash ON public.devices FOR EACH ROW WHEN ((old.token_hash IS DISTINCT FROM new.token_hash)) EXECUTE FUNCTION public.notify_idle_device();

CREATE TRIGGER devices_signature_delete AFTER DELETE ON public.devices REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.device_signatures_apply();

CREATE TRIGGER devices_signature_insert AFTER INSERT ON public.devices REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.device_signatures_apply();

CREATE TRIGGER devices_signature_truncate AFTER TRUNCATE ON public.devices FOR EACH STATEMENT EXECUTE FUNCTION public.device_signatures_clear();

CREATE TRIGGER devices_signature_update AFTER UPDATE ON public.devices REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.device_signatures_apply();

ALTER TABLE ONLY public.device_fact_signatures
    ADD CONSTRAINT device_fact_signatures_device_uuid_fkey FOREIGN KEY (device_uuid) REFERENCES public.devices(uuid) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.device_group_members
    ADD CONSTRAINT device_group_members_device_uuid_fkey FOREIGN KEY (device_uuid) REFERENCES public.devices(uuid) ON DELETE CASCADE;

ALTER TABLE ONLY public.device_group_members
    ADD CONSTRAINT device_group_members_group_name_fkey FOREIGN KEY (group_name) REFERENCES public.device_groups(name) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.device_inventory_numbers
    ADD CONSTRAINT device_inventory_numbers_device_uuid_fkey FOREIGN KEY (device_uuid) REFERENCES public.devices(uuid) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.device_job_status
    ADD CONSTRAINT device_job_status_device_uuid_fkey FOREIGN KEY (device_uuid) REFERENCES public.devices(uuid) ON DELETE CASCADE;

ALTER TABLE ONLY public.device_job_status
    ADD CONSTRAINT device_job_status_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.job_artifacts
    ADD CONSTRAINT job_artifacts_artifact_id_fkey FOREIGN KEY (artifact_id) REFERENCES public.artifacts(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.job_artifacts
    ADD CONSTRAINT job_artifacts_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.job_device_signatures
    ADD CONSTRAINT job_device_signatures_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.job_executions
    ADD CONSTRAINT job_executions_parent_job_id_fkey FOREIGN KEY (parent_job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.job_executions
    ADD CONSTRAINT job_executions_template_id_fkey FOREIGN KEY (template_id) REFERENCES public.job_templates(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.job_stage_counts
    ADD CONSTRAINT job_stage_counts_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.job_stages
    ADD CONSTRAINT job_stages_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.job_status_counts
    ADD CONSTRAINT job_status_counts_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.pending_enrollments
    ADD CONSTRAINT pending_enrollments_enrollment_token_id_fkey FOREIGN KEY (enrollment_token_id) REFERENCES public.enrollment_tokens(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.portal_sessions
    ADD CONSTRAINT portal_sessions_api_token_id_fkey FOREIGN KEY (api_token_id) REFERENCES public.api_tokens(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.rollout_waves
    ADD CONSTRAINT rollout_waves_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.job_executions(job_id) ON DELETE CASCADE;
