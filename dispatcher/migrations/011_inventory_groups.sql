-- Device inventory: the facts a device reports about itself (os-release, kernel, disk, its
-- inventory.d scripts), kept apart from the operator's attributes so that a device can never
-- change what an operator set. Exact matches in target filters are JSON containment, served by
-- a GIN index as on attributes.
ALTER TABLE devices
    ADD COLUMN inventory jsonb NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT devices_inventory_check CHECK (jsonb_typeof(inventory) = 'object'),
    ADD COLUMN inventory_updated_at timestamptz;

CREATE INDEX devices_inventory_gin ON devices USING gin (inventory jsonb_path_ops);

-- Continuous jobs now match devices with the compiled filter language
-- (dispatcher.fleet.filters), one job at a time.
DROP FUNCTION device_matches_target(text, jsonb, text, jsonb);

-- Named groups: dynamic (a stored filter, members follow it) or static (a list of devices).
CREATE TABLE device_groups (
    name text PRIMARY KEY
        CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    description text NOT NULL DEFAULT '',
    -- NULL for a static group.
    filter jsonb CHECK (filter IS NULL OR jsonb_typeof(filter) = 'object'),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device_group_members (
    group_name text NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE
        ON UPDATE CASCADE,
    device_uuid uuid NOT NULL REFERENCES devices (uuid) ON DELETE CASCADE,
    PRIMARY KEY (group_name, device_uuid)
);

CREATE INDEX device_group_members_device_idx ON device_group_members (device_uuid);

-- A job on a group keeps the group's name: its fan-out and, for a continuous job, every
-- reconcile read the group as it is then.
ALTER TABLE job_executions ADD COLUMN target_group text;

CREATE INDEX job_executions_target_group_idx ON job_executions (target_group)
    WHERE target_group IS NOT NULL;
